"""The client's layers (issue 32): only the Provider class (api.py) builds an HTTP request; every
command goes through one of its typed methods, named for what the route does."""
import ast

from support.paths import ROOT

CLIENT = ROOT / "client" / "dockpool_cli"


def raw_calls(path) -> list[str]:
    """Each ``x.call(...)`` outside ``class Provider``, and each use of ``requests``/``session``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    inside = {id(n) for c in ast.walk(tree) if isinstance(c, ast.ClassDef) and c.name == "Provider" for n in ast.walk(c)}
    found = []
    for node in ast.walk(tree):
        if id(node) in inside or not isinstance(node, ast.Attribute):
            continue
        if node.attr in ("call", "session", "request") or (isinstance(node.value, ast.Name) and node.value.id == "requests"):
            found.append(f"{path.name}:{node.lineno} .{node.attr}")
    return found


def test_only_the_provider_class_calls_the_api():
    modules = sorted(CLIENT.glob("*.py"))
    assert {"instances.py", "moves.py", "replicas.py", "fleet.py", "usage.py", "main.py"} <= {p.name for p in modules}
    found = [hit for path in modules for hit in raw_calls(path)]
    assert not found, "raw API calls outside Provider:\n" + "\n".join(found)


def test_the_check_sees_a_raw_call(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text('def fleet(provider):\n    return provider.call("GET", "/v1/fleet")["provider"]\n')
    assert raw_calls(sample) == ["sample.py:2 .call"]
