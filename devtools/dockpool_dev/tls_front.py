"""The provider's HTTPS front as the provider_api role runs it: nginx with the role's own
template, rendered here with its variables, in front of an API process on loopback."""
from __future__ import annotations

import hashlib
import shutil
import ssl
import subprocess
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import jinja2
import requests
import yaml

from dockpool_dev.api_process import free_port
from dockpool_dev.paths import ROOT

TEMPLATE = ROOT / "roles" / "provider_api" / "templates" / "nginx.conf.j2"
ROLE_DEFAULTS = yaml.safe_load((ROOT / "roles" / "provider_api" / "defaults" / "main.yml").read_text())


@dataclass
class Front:
    url: str
    port: int
    certificate: Path
    key: Path
    conf: Path
    process: subprocess.Popen


def self_signed(directory: Path, name: str = "api") -> tuple[Path, Path]:
    """A certificate and key as openssl makes them (what community.crypto makes on a provider)."""
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:secp384r1", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=testprov",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True, timeout=60)
    return cert, key


def signed_by_a_ca(directory: Path, name: str = "api") -> tuple[Path, Path, Path]:
    """A certificate for 127.0.0.1 signed by a CA of the test's own; returns (CA, certificate, key)."""
    ca_cert, ca_key = self_signed(directory, f"{name}-ca")
    cert, key, request = directory / f"{name}.crt", directory / f"{name}.key", directory / f"{name}.csr"
    extensions = directory / f"{name}.ext"
    extensions.write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
    for argv in (["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                  "-keyout", str(key), "-out", str(request), "-subj", "/CN=127.0.0.1"],
                 ["openssl", "x509", "-req", "-in", str(request), "-CA", str(ca_cert), "-CAkey", str(ca_key),
                  "-CAcreateserial", "-days", "2", "-out", str(cert), "-extfile", str(extensions)]):
        subprocess.run(argv, check=True, capture_output=True, timeout=60)
    return ca_cert, cert, key


def fingerprint_of(cert: Path) -> str:
    """SHA-256 of the certificate's DER, computed here independently of the client's code."""
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(cert.read_text())).hexdigest()


def render(directory: Path, api_port: int, tls_port: int, cert: Path, key: Path, max_upload: int,
           api_host: str = "127.0.0.1") -> Path:
    text = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(TEMPLATE.read_text()).render(
        ansible_managed="rendered by dockpool_dev/tls_front.py", provider_api_tls_port=tls_port,
        provider_api__upstream=f"{api_host}:{api_port}", provider_api__nginx_user="www-data",
        provider_api__tls_cache_dir=str(directory), provider_api__tls_pid_file=str(directory / "nginx.pid"),
        provider_api__tls_certificate_path=str(cert), provider_api__tls_key_path=str(key), provider_api_max_upload_bytes=max_upload,
        **{name: ROLE_DEFAULTS[name] for name in ("provider_api_connections_per_source", "provider_api_header_timeout")})
    conf = directory / "nginx.conf"
    conf.write_text(text)
    return conf


@contextmanager
def tls_front(directory: Path, api_port: int, max_upload: int = 1024**2, tls_port: int = 0,
              cert_name: str = "api", answered: int = 200, pair: Optional[tuple[Path, Path]] = None,
              api_host: str = "127.0.0.1") -> Iterator[Front]:
    """nginx on https://127.0.0.1:<tls_port> in front of the API on ``api_host:api_port``; stopped afterwards."""
    directory.mkdir(parents=True, exist_ok=True)
    port = tls_port or free_port()
    cert, key = pair or self_signed(directory, cert_name)
    conf = render(directory, api_port, port, cert, key, max_upload, api_host)
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    subprocess.run([nginx, "-q", "-t", "-c", str(conf)], check=True, capture_output=True, timeout=30)
    process = subprocess.Popen([nginx, "-c", str(conf), "-g", "daemon off;"], stdout=subprocess.DEVNULL,
                               stderr=open(directory / "nginx.log", "w"))  # the child keeps it
    url = f"https://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            while True:
                try:
                    if requests.get(f"{url}/openapi.json", verify=False, timeout=2).status_code == answered:
                        break
                except requests.RequestException:
                    pass
                if time.monotonic() > deadline or process.poll() is not None:
                    raise TimeoutError(f"nginx did not serve {url}: {(directory / 'nginx.log').read_text()[-1000:]}")
                time.sleep(0.1)
        yield Front(url, port, cert, key, conf, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
