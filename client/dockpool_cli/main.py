"""`dockpool`: the client's command line (see docs/cli.md for every command and exit code)."""
from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import Any, Optional

from dockpool.request_options import cli_flags

from .errors import FAILED, CliError
from .fleet import forget, providers
from .instances import FILLED_BY_CLI, act, ls, rm, ssh, up
from .login import login
from .moves import move
from .render import err
from .replicas import replicas, replicate, restore
from .settings import Settings
from .speedtest import speedtest
from .usage import usage


def _add_up(sub: Any) -> None:  # argparse's subparsers (a private type)
    """`up`: what a create request takes, as flags."""
    p = sub.add_parser("up", help="create an instance, wait until SSH answers and write its SSH entry")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--provider", help="a provider you are logged in to (default: the last one)")
    where.add_argument("--best", action="store_true", help="the reachable provider with room and the lowest latency")
    p.add_argument("--desktop", action="store_true", help="the desktop image, reached in the browser through noVNC")
    for flag, keywords in cli_flags(filled=FILLED_BY_CLI):  # the create request's fields, as the core declares them
        p.add_argument(flag, **keywords)
    p.add_argument("--key", help="the private SSH key to log in with (its .pub beside it)")
    p.add_argument("--wait", type=float, default=60.0, help="seconds to wait for SSH through the jump host")
    p.add_argument("--no-check", action="store_true", help="do not log in through the jump host to check")
    p.add_argument("--json", action="store_true")


def _add_replicas(sub: Any) -> None:
    for verb, text in (("replicate", "refresh the copy of an instance another member of the fleet keeps"),
                       ("replicas", "where an instance's copy is kept, and how old it is")):
        p = sub.add_parser(verb, help=text)
        p.add_argument("name")
        p.add_argument("--provider")
        p.add_argument("--json", action="store_true")

    p = sub.add_parser("restore", help="start an instance from its replica when its provider is gone from the fleet")
    p.add_argument("name")
    p.add_argument("--key", help="the private SSH key the instance takes (default: the one `up` used)")
    p.add_argument("--wait", type=float, default=60.0, help="seconds to wait for SSH on the replica's holder")
    p.add_argument("--no-check", action="store_true", help="do not log in through the holder's jump host to check")
    p.add_argument("--json", action="store_true")


def _add_usage(sub: Any) -> None:
    p = sub.add_parser("usage", help="what your instances used, per instance and in total, on every provider")
    p.add_argument("--provider")
    p.add_argument("--since", help="ISO 8601 or seconds since the epoch (default: the start of this month)")
    p.add_argument("--until", help="ISO 8601 or seconds since the epoch (default: now)")
    p.add_argument("--json", action="store_true")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="dockpool", description="Get a Docker instance from a dockpool provider and reach it by SSH.")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("login", help="keep a provider's URL and your token (in a 0600 file)")
    p.add_argument("url")
    p.add_argument("--token", help="your API token (else $DOCKPOOL_TOKEN, else asked without echo)")
    p.add_argument("--fingerprint", help="the SHA-256 of a self-signed provider's certificate, as its operator gave it")
    p.add_argument("--insecure-http", action="store_true", help="send the token over plain HTTP to another machine")

    p = sub.add_parser("providers", help="the provider's peer table, with latency measured from here")
    p.add_argument("--provider", help="ask this provider (default: the one you logged in to last)")
    p.add_argument("--json", action="store_true")

    _add_up(sub)

    p = sub.add_parser("ls", help="your instances on every provider you are logged in to")
    p.add_argument("--provider")
    p.add_argument("--json", action="store_true")

    for verb, text in (("stop", "stop an instance (it keeps its disk)"), ("start", "start a stopped instance"),
                       ("rm", "remove an instance and its SSH entry")):
        p = sub.add_parser(verb, help=text)
        p.add_argument("name")
        p.add_argument("--provider")

    p = sub.add_parser("move", help="move an instance, with everything on its disk, to another provider")
    p.add_argument("name")
    p.add_argument("--to", required=True, help="a provider you are logged in to")
    p.add_argument("--key", help="the private SSH key the instance takes (default: the one `up` used)")
    p.add_argument("--wait", type=float, default=60.0, help="seconds to wait for SSH on the target")
    p.add_argument("--no-check", action="store_true", help="do not log in through the target's jump host to check")

    _add_replicas(sub)

    p = sub.add_parser("forget", help="remove an entry from a provider's peer table (the provider's administrators)")
    p.add_argument("peer", help="the entry's name, or its address")
    p.add_argument("--provider")

    p = sub.add_parser("ssh", help="log in to an instance through its provider's jump host")
    p.add_argument("name")
    p.add_argument("remote", nargs=argparse.REMAINDER, help="a command to run instead of a shell")

    _add_usage(sub)

    p = sub.add_parser("speedtest", help="download and upload Mbit/s to a provider")
    p.add_argument("url", nargs="?", help="the provider (default: the last one logged in to)")
    p.add_argument("--bytes", type=int, default=50 * 1024 * 1024, help="bytes each way (default and most: 50 MiB)")
    p.add_argument("--json", action="store_true")
    return top


def confirm(question: str) -> bool:
    err.print(question, highlight=False)
    return input("Type yes to trust it: ").strip().lower() == "yes"


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "login":
        token = args.token or os.environ.get("DOCKPOOL_TOKEN") or (getpass.getpass("Token: ") if sys.stdin.isatty() else "")
        return login(settings, args.url, token.strip(), args.fingerprint, args.insecure_http,
                     confirm if sys.stdin.isatty() else None)
    if args.command == "providers":
        return providers(settings, args.provider, args.json)
    if args.command == "up":
        return up(settings, args)
    if args.command == "ls":
        return ls(settings, args.provider, args.json)
    if args.command in ("stop", "start"):
        return act(settings, args.command, args.name, args.provider)
    if args.command == "rm":
        return rm(settings, args.name, args.provider)
    if args.command == "move":
        return move(settings, args.name, args.to, args.key, args.wait, args.no_check)
    if args.command in ("replicate", "replicas"):
        return (replicate if args.command == "replicate" else replicas)(settings, args.name, args.provider, args.json)
    if args.command == "restore":
        return restore(settings, args.name, args.key, args.wait, args.no_check, args.json)
    if args.command == "forget":
        return forget(settings, args.peer, args.provider)
    if args.command == "usage":
        return usage(settings, args.provider, args.since, args.until, args.json)
    if args.command == "ssh":
        return ssh(settings, args.name, args.remote[1:] if args.remote[:1] == ["--"] else args.remote)
    return speedtest(settings, args.url, args.bytes, args.json)


def main(argv: Optional[list[str]] = None) -> int:
    args = parser().parse_args(argv)
    try:
        return run(args, Settings.load())
    except CliError as exc:
        err.print(f"[red]dockpool: {exc.message}[/]", highlight=False)
        if exc.detail:
            err.print(f"  detail: {exc.detail}", highlight=False)
        return exc.code
    except KeyboardInterrupt:
        return FAILED


if __name__ == "__main__":
    sys.exit(main())
