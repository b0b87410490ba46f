"""Speed-test routes against nginx on loopback: /50 and /v1/speedtest/download against
nginx serving a 50 MiB file (sendfile), the upload route against nginx discarding a
body; curl is the client for both. Goal: >= 0.8 x nginx."""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from bench.common import save, table

SIZE = 50 * 2**20
GOAL = 0.8
NGINX_CONF = """worker_processes 1;
daemon off;
user root;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{}}
http {{
    access_log off;
    sendfile on;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location = /50 {{ alias {dir}/50.bin; default_type application/octet-stream; }}
        location = /upload {{ client_max_body_size 300m; return 200 "ok"; }}
    }}
}}
"""


def curl(url: str, upload: Path | None = None) -> float:
    """Bytes per second as curl measures them."""
    argv = ["curl", "-s", "-o", "/dev/null", "--fail"]
    if upload is not None:
        argv += ["--data-binary", f"@{upload}", "-H", "Content-Type: application/octet-stream", "-w", "%{speed_upload}"]
    else:
        argv += ["-w", "%{speed_download}"]
    return float(subprocess.run(argv + [url], capture_output=True, text=True, check=True, timeout=300).stdout)


def run(n: int = 5) -> dict[str, Any]:
    from dockpool_dev.api_config import make_config
    from dockpool_dev.api_process import api_process, free_port

    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    work = Path(tempfile.mkdtemp(prefix="dockpool-bench-"))
    blob = work / "50.bin"
    with open(blob, "wb") as handle:
        handle.truncate(SIZE)
    port = free_port()
    (work / "nginx.conf").write_text(NGINX_CONF.format(dir=work, port=port))
    server = subprocess.Popen([nginx, "-c", str(work / "nginx.conf")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    speeds: dict[str, list[float]] = {k: [] for k in ("nginx_download", "api_50", "api_download", "nginx_upload", "api_upload")}
    try:
        nginx_url = f"http://127.0.0.1:{port}"
        for _ in range(50):
            try:
                curl(f"{nginx_url}/upload", blob)
                break
            except subprocess.CalledProcessError:
                import time

                time.sleep(0.1)
        with api_process(work, make_config(work, max_upload_bytes=SIZE + 2**20)) as url:
            for _ in range(n):  # alternate, so drift hits both alike
                speeds["nginx_download"].append(curl(f"{nginx_url}/50"))
                speeds["api_50"].append(curl(f"{url}/50"))
                speeds["api_download"].append(curl(f"{url}/v1/speedtest/download?bytes={SIZE}"))
                speeds["nginx_upload"].append(curl(f"{nginx_url}/upload", blob))
                speeds["api_upload"].append(curl(f"{url}/v1/speedtest/upload", blob))
    finally:
        server.terminate()
        server.wait(timeout=10)
    medians = {k: statistics.median(v) for k, v in speeds.items()}
    ratios = {"/50": medians["api_50"] / medians["nginx_download"],
              "/v1/speedtest/download": medians["api_download"] / medians["nginx_download"],
              "/v1/speedtest/upload": medians["api_upload"] / medians["nginx_upload"]}
    return {"goal": f">= {GOAL} x nginx", "n": n, "median_bytes_per_s": medians, "ratios": ratios,
            "met": all(r >= GOAL for r in ratios.values())}


def report(result: dict[str, Any]) -> str:
    m = result["median_bytes_per_s"]
    rows = [["/50", m["api_50"] / 1e9, m["nginx_download"] / 1e9, result["ratios"]["/50"]],
            ["/v1/speedtest/download", m["api_download"] / 1e9, m["nginx_download"] / 1e9, result["ratios"]["/v1/speedtest/download"]],
            ["/v1/speedtest/upload", m["api_upload"] / 1e9, m["nginx_upload"] / 1e9, result["ratios"]["/v1/speedtest/upload"]]]
    return (table(rows, ["route", "API GB/s", "nginx GB/s", "ratio"])
            + f"\ngoal >= {GOAL} x nginx: {'met' if result['met'] else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=5)
    result = run(parser.parse_args().n)
    save("speed", result)
    print(report(result))


if __name__ == "__main__":
    main()
