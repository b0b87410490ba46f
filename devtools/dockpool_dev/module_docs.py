"""Write the create request's options into the dockpool_container module's DOCUMENTATION.

DOCUMENTATION must be a literal for ansible-doc, so the request options (declared once in
the core's spec.py) are rendered into it between its BEGIN and END markers:
``python -m dockpool_dev.module_docs`` after changing a field; tests fail until it ran.
"""
from __future__ import annotations

import sys
from pathlib import Path

import yaml

from dockpool.request_options import module_documentation

MODULE = Path(__file__).resolve().parents[2] / "library" / "dockpool_container.py"
BEGIN = "  # BEGIN request options (generated from spec.py: python -m dockpool_dev.module_docs)\n"
END = "  # END request options\n"


def rendered(text: str) -> str:
    """The module's source with its request options rendered anew from the declaration."""
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    block = yaml.safe_dump(module_documentation(), sort_keys=False, width=110, default_flow_style=False)
    return head + BEGIN + "".join(f"  {line}\n" for line in block.splitlines()) + END + tail


def main() -> int:
    text = MODULE.read_text(encoding="utf-8")
    new = rendered(text)
    if new != text:
        MODULE.write_text(new, encoding="utf-8")
        print(f"rewrote the request options of {MODULE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
