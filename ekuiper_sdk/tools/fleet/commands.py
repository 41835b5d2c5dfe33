"""The ``rollout`` and ``fleet status`` commands of ``ekuiper-plugin``.

``cli.build_parser`` adds them with one call, :func:`add_fleet_commands`; each command's
function takes the parsed arguments and the two output streams and returns the exit code.

Example::

    $ ekuiper-plugin rollout demo-2.0.zip --fleet fleet.txt --canary 1 --parallel 10
    $ ekuiper-plugin fleet status demo --fleet fleet.txt --json
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import IO, Any

from ...errors import RestError
from ..rest import VIAS
from .releases import Release, ReleaseHistory, default_folder


def _positive(kind: type, low: float) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low:g}, got {text}")
        return value
    return parse


def _history(args: argparse.Namespace) -> ReleaseHistory:
    return ReleaseHistory(Path(args.releases) if args.releases else default_folder())


def _cmd_rollout(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    # Loaded when the command runs, so that building the parser stays cheap.
    from .inventory import read_fleet
    from .rollout import Options, rollout
    from .tables import rollout_table

    release = Release.of_zip(args.zip, args.name)
    previous = Release.of_zip(args.previous, release.plugin) if args.previous else None
    if previous is not None and previous.plugin != release.plugin:
        raise RestError(f"--previous {args.previous} is plugin {previous.plugin}, not "
                        f"{release.plugin}", hint="pass a zip of the same plugin")
    servers = read_fleet(args.fleet, groups=args.group or (), default_token=args.token)
    history = _history(args)
    if previous is not None:
        history.store(previous)
    options = Options(canary=args.canary, parallel=args.parallel, settle=args.settle,
                      timeout=args.timeout, read_timeout=args.read_timeout,
                      skip_unreachable=args.skip_unreachable,
                      previous=previous, no_rollback=args.no_rollback, via=args.via,
                      observe=min(args.settle, 2.0))
    # With --json the steps go to stderr and stdout holds one JSON object.
    result = rollout(servers, release, history, options, out=err if args.json else out)
    if args.json:
        out.write(json.dumps(result.to_dict()) + "\n")
    else:
        out.write(rollout_table(result) + "\n")
    return result.exit_code


def _cmd_fleet_status(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from .inventory import read_fleet
    from .status import fleet_status, plugins_on
    from .tables import status_table

    servers = read_fleet(args.fleet, groups=args.group or (), default_token=args.token)
    history = _history(args)
    names = [args.name] if args.name else plugins_on(servers, width=args.parallel,
                                                     timeout=args.timeout)
    reports = [fleet_status(servers, name, history, width=args.parallel, timeout=args.timeout)
               for name in names]
    if args.json:
        data: Any = reports[0].to_dict() if args.name else {
            "ok": all(r.ok for r in reports), "plugins": [r.to_dict() for r in reports]}
        out.write(json.dumps(data) + "\n")
    elif not reports:
        out.write(f"no portable plugin on any of the {len(servers)} server(s)\n")
    else:
        out.write("\n\n".join(status_table(r) for r in reports) + "\n")
    # Drift, an unreachable server or a plugin in error fail the command, for scripts.
    return 0 if all(r.ok for r in reports) else 1


def _common(p: argparse.ArgumentParser, timeout: float, timeout_help: str) -> None:
    p.add_argument("--fleet", required=True, metavar="FILE",
                   help="the servers: one URL a line (# comments), or .yaml/.toml/.json "
                   "with url, name, token or token_env, groups")
    p.add_argument("--group", action="append", metavar="NAME",
                   help="only the servers in this group of the fleet file (repeatable)")
    p.add_argument("--token", default=os.environ.get("EKUIPER_TOKEN"),
                   help="Authorization header for servers without a token of their own "
                   "(default: $EKUIPER_TOKEN)")
    p.add_argument("--timeout", type=_positive(float, 0.1), default=timeout,
                   help=f"{timeout_help} (default: {timeout:g})")
    p.add_argument("--parallel", type=_positive(int, 1), default=10,
                   help="servers handled at once (default: 10)")
    p.add_argument("--releases", metavar="DIR",
                   help=f"the release history folder (default: {default_folder()})")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def add_fleet_commands(sub: Any) -> None:
    """Add ``rollout`` and ``fleet`` (``fleet status``) to the subcommands ``sub``."""
    p = sub.add_parser("rollout", help="update a plugin on many servers: canary, waves, "
                       "health checks, automatic rollback",
                       description="Update (or install) the zip on the canary servers, then "
                       "in waves; watch each server for --settle seconds; when one fails, "
                       "put every server changed back. Exit 0: done; 1: refused, nothing "
                       "changed; 3: failed and rolled back; 4: failed and not all back; "
                       "130: interrupted.")
    p.add_argument("zip", help="the plugin zip")
    p.add_argument("--name", help="plugin name, when the zip root holds several manifests")
    _common(p, 120.0, "seconds each install or update may take (eKuiper answers once the "
            "plugin has started)")
    p.add_argument("--canary", type=_positive(int, 0), default=1,
                   help="servers changed first, alone (default: 1; the first in the file)")
    p.add_argument("--settle", type=_positive(float, 0), default=30.0,
                   help="seconds each changed server must stay healthy (default: 30)")
    p.add_argument("--read-timeout", type=_positive(float, 0.1), default=10.0,
                   help="seconds each other REST call may take: reading a server, each look "
                   "of the settle window (default: 10)")
    p.add_argument("--skip-unreachable", action="store_true",
                   help="go on without the servers that do not answer")
    p.add_argument("--previous", metavar="ZIP",
                   help="the zip the servers run now, for those whose version the release "
                   "history does not know")
    p.add_argument("--no-rollback", action="store_true",
                   help="on a failure, leave the changed servers as they are")
    p.add_argument("--via", choices=VIAS, default="auto",
                   help="how each eKuiper gets the zip (as for install; default: auto)")
    p.set_defaults(func=_cmd_rollout)

    fleet = sub.add_parser("fleet", help="the fleet's state: `fleet status`")
    fleet_sub = fleet.add_subparsers(dest="fleet_command", metavar="COMMAND")
    fleet_sub.required = True
    p = fleet_sub.add_parser("status", help="each server's version, status and rules, and "
                             "the drift from the version most servers run (exit 1 on drift, "
                             "an unreachable server or a plugin in error)")
    p.add_argument("name", nargs="?", help="the plugin (default: every portable plugin found)")
    _common(p, 10.0, "seconds each REST call may take")
    p.set_defaults(func=_cmd_fleet_status)
