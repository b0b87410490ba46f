"""The shape the codebase keeps (issue 23): no function over 60 lines in the code that ships,
so a newcomer reads each unit whole."""
import ast

from support.paths import ROOT

SHIPPED = ("plugins", "provider", "client", "library", "devtools")
LONGEST = 60


def test_no_function_over_60_lines():
    long = []
    for folder in SHIPPED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    lines = node.end_lineno - node.lineno + 1
                    if lines > LONGEST:
                        long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {lines} lines")
    assert not long, "functions over 60 lines:\n" + "\n".join(long)
