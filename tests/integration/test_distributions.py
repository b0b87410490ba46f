"""The two distributions as pip builds them: the client installs into an empty virtual
environment and every module it ships imports there; the provider's ships the service whole."""
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from support.paths import ROOT

# Run inside the client's fresh environment: import every module its RECORD lists.
IMPORT_ALL = """
import importlib, importlib.metadata, importlib.util, json
shipped = sorted(
    str(f)[:-3].replace("/", ".").removesuffix(".__init__")
    for f in importlib.metadata.files("dockpool") if str(f).endswith(".py")
)
failed = {}
for name in shipped:
    try:  # a package's __main__ runs the program when imported: found, not run
        importlib.util.find_spec(name) if name.endswith(".__main__") else importlib.import_module(name)
    except Exception as exc:
        failed[name] = repr(exc)
from dockpool.engine import connect
from dockpool.libraries import MissingLibrary
try:
    connect()
    missing = None
except MissingLibrary as exc:
    missing = exc.message
print(json.dumps({"shipped": shipped, "failed": failed, "missing": missing}))
"""


def build_wheel(parts: list[str], out: Path) -> Path:
    """Build from a copy holding only ``parts`` of the checkout: a build writes beside its sources,
    and the wheel must not depend on anything its pyproject.toml does not name."""
    source = out / "source"
    for part in parts:
        copy = shutil.copytree if (ROOT / part).is_dir() else shutil.copy2
        (source / part).parent.mkdir(parents=True, exist_ok=True)
        copy(ROOT / part, source / part, **({"ignore": shutil.ignore_patterns("__pycache__")} if copy is shutil.copytree else {}))
    project = source / Path(parts[0]).parent
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(project)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = out.glob("*.whl")
    return wheel


@pytest.fixture(scope="module")
def client_env(tmp_path_factory):
    work = tmp_path_factory.mktemp("client")
    wheel = build_wheel(["pyproject.toml", "docs/cli.md", "plugins/module_utils/dockpool", "client"], work)
    subprocess.run([sys.executable, "-m", "venv", str(work / "venv")], check=True, timeout=300)
    python = work / "venv" / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel)],
                   check=True, capture_output=True, timeout=600)
    return work / "venv" / "bin"


def test_the_client_installs_alone_and_every_module_it_ships_imports(client_env):
    pip_list = subprocess.run([str(client_env / "python"), "-m", "pip", "list", "--format=json"],
                              check=True, capture_output=True, text=True, timeout=120).stdout
    installed = {p["name"].lower() for p in json.loads(pip_list)}
    assert {"dockpool", "requests", "rich"} <= installed
    assert not installed & {"docker", "psutil", "bottle", "waitress", "dockpool-provider"}, installed
    done = subprocess.run([str(client_env / "python"), "-c", IMPORT_ALL], cwd="/", capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["failed"] == {}
    assert {"dockpool.engine", "dockpool.instances", "dockpool.units", "dockpool_cli.main"} <= set(result["shipped"])
    assert not [name for name in result["shipped"] if name.startswith("dockpool_api")]
    # The engine side says what is missing instead of failing to import.
    assert "'docker' is needed" in result["missing"]
    usage = subprocess.run([str(client_env / "dockpool"), "--help"], check=True, capture_output=True, text=True, timeout=60)
    assert "up" in usage.stdout


def test_the_provider_distribution_ships_the_service_and_its_page(tmp_path):
    wheel = build_wheel(["provider/pyproject.toml", "provider/dockpool_api"], tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"dockpool_api/app.py", "dockpool_api/__main__.py", "dockpool_api/templates/status.html"} <= names
    assert not [n for n in names if n.startswith(("dockpool/", "dockpool_cli/"))]
    metadata = next(n for n in names if n.endswith("/METADATA"))
    requires = [line for line in zipfile.ZipFile(wheel).read(metadata).decode().splitlines() if line.startswith("Requires-Dist:")]
    assert {"dockpool", "docker", "psutil", "bottle", "waitress"} <= {r.split()[1].split(">")[0].split("=")[0] for r in requires}
