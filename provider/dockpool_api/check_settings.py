"""``dockpool-check-settings policy|api FILE``: the roles' ``validate:`` command.

A settings file is checked by the parser that will read it, through the installed launcher,
so no role needs to know where the packages live (see roles/dockpool_core, launcher.j2).
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable, Optional

from dockpool.errors import DockpoolError
from dockpool.policy import load_policy

from .config import check_narrowing, load_config


def check_api(path: str) -> None:
    """api.json, and its clients' limits against the provider's (provider.json, written first)."""
    config = load_config(path)
    check_narrowing(config, load_policy(config.policy_file).limits)


PARSERS: dict[str, Callable[[str], object]] = {"policy": load_policy, "api": check_api}


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="dockpool-check-settings", description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=sorted(PARSERS), help="policy: provider.json; api: api.json")
    parser.add_argument("file")
    args = parser.parse_args(argv)
    try:
        PARSERS[args.kind](args.file)
    except DockpoolError as exc:
        where = "" if args.file in exc.message else f"{args.file}: "
        print(f"{where}{exc.message}" + (f" (field {exc.field})" if exc.field else ""), file=sys.stderr)
        return 1
    return 0
