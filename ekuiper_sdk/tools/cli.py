"""``ekuiper-plugin``: create, check, pack, run and install eKuiper portable plugins.

A thin layer over the tools beside it (``templates``, ``validate``, ``pack``, ``vendor``,
``rest``, ``usage``, ``dev``), the run engine (``run/``) and the fleet tools (``fleet/``,
whose two commands add their own options): it parses the command line, calls one
function, prints its result, and turns errors into one line each and a non-zero exit
status. The REST client's errors name the parameter that fixes them; only the command
line knows that parameter as an option, so it words them (:func:`option_wording`).

Example::

    $ ekuiper-plugin init demo && ekuiper-plugin pack demo --vendor -o demo.zip
    $ ekuiper-plugin install demo.zip --server http://127.0.0.1:9081
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Callable

from .. import __version__
from ..errors import HostError, PackagingError, Problem, RestError
from ..status_file import describe as describe_status
from ..status_file import find_status
from . import rest
from .fleet.commands import add_fleet_commands
from .manifest import KINDS
from .pack import pack
from .record import add_record_parser
from .replay_cli import add_replay_argument, cmd_replay
from .uimeta import MISSING_MESSAGE
from .usage import describe_rules
from .validate import validate

if TYPE_CHECKING:  # loaded only by `pack --vendor`
    from .vendor import VendorOptions

    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]

EXIT_OK = 0
EXIT_FAIL = 1
EXIT_USAGE = 2


def option_wording(name: str, value: str | None) -> str:
    """A REST call's parameter as this command line's option (see ``RestError.worded``).

    >>> option_wording("serve_address", None), option_wording("via", "upload")
    ('--serve-address', '--via upload')
    >>> option_wording("vendor", "True")
    '--vendor'
    """
    option = "--" + name.replace("_", "-")
    return option if value in (None, "True") else f"{option} {value}"


def _print_problems(problems: Sequence[Problem], err: IO[str]) -> None:
    for problem in problems:
        err.write(f"{problem}\n" if problem.warning else f"error: {problem}\n")


def _cmd_init(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from .templates import init_project, symbol_names

    root = init_project(args.name, args.dir, force=args.force)
    names = symbol_names(args.name)
    out.write(f"created {root}/ with source {names['source']!r}, function {names['function']!r}"
              f" and sink {names['sink']!r}\n"
              f"next: ekuiper-plugin validate {root} && ekuiper-plugin run {root}\n")
    return EXIT_OK


def _cmd_validate(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    result = validate(args.dir, name=args.name, python=args.python,
                                check_code=not args.no_code, excludes=args.exclude)
    if args.json:
        out.write(json.dumps({
            "ok": result.ok, "name": result.manifest.name if result.manifest else None,
            "errors": [p.text() for p in result.errors],
            "warnings": [p.text() for p in result.warnings], "defined": result.defined}) + "\n")
        return EXIT_OK if result.ok else EXIT_FAIL
    _print_problems(result.problems, err)
    if not result.ok or result.manifest is None:
        err.write(f"{args.dir}: {len(result.errors)} problem(s) found\n")
        return EXIT_FAIL
    checked = "manifest, files and code" if result.defined is not None else "manifest and files"
    out.write(f"ok: {result.manifest.summary()} ({checked} checked)\n")
    return EXIT_OK


def _vendor_options(args: argparse.Namespace) -> VendorOptions | None:
    if not args.vendor:
        return None
    from .vendor import DEFAULT_PLATFORMS, VendorOptions

    chosen = [p.strip() for value in (args.platform or []) for p in value.split(",")]
    platforms = tuple(p for p in chosen if p) or DEFAULT_PLATFORMS
    options = VendorOptions(python_version=args.python_version, platforms=platforms,
                            glibc=args.glibc, sdk_wheel=args.sdk_wheel,
                            shared_python=args.shared_python,
                            find_links=tuple(getattr(args, "find_links", None) or ()))
    from .doctor import retarget
    return retarget(args, options, sys.stderr)


def _cmd_pack(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    result = pack(args.dir, args.output, name=args.name, layout=args.layout,
                            excludes=args.exclude, vendor=_vendor_options(args),
                            python=args.python, check_code=not args.no_code, log=err)
    _print_problems(result.warnings, err)
    if args.json:
        out.write(json.dumps({
            "ok": True, "name": result.manifest.name,
            "zip": str(result.zip_path) if result.zip_path else None,
            "layout": str(result.layout_dir) if result.layout_dir else None,
            "sha256": result.sha256, "size": result.size,
            "files": [e.name for e in result.entries],
            "warnings": [p.text() for p in result.warnings]}) + "\n")
        return EXIT_OK
    if result.zip_path is not None:
        out.write(f"wrote {result.zip_path}: {len(result.entries)} files, {result.size} bytes, "
                  f"sha256 {result.sha256[:16]}\n")
    if result.layout_dir is not None:
        out.write(f"wrote {result.layout_dir}/plugins/portable/{result.manifest.name}/ and its "
                  f"etc/ and data/ files\n")
    return EXIT_OK


def _run_inputs(args: argparse.Namespace) -> dict[str, Any]:
    """The run's configs, calls and records from the command line (one-line ValueErrors)."""
    from .run.inputs import evaluate, parse_arguments, parse_property, read_json_lines

    def props(base: dict[str, Any] | None, pairs: list[str]) -> dict[str, Any] | None:
        if not pairs:
            return base
        merged = dict(base or {})
        merged.update(parse_property(pair) for pair in pairs)
        return merged

    calls: list[Any] | None = None
    if args.call or args.calls:
        calls = [[evaluate(e, None) for e in parse_arguments(text)] for text in args.call]
        if args.calls:
            calls.extend(value if isinstance(value, (list, Exception)) else ValueError(
                f"{args.calls}: {json.dumps(value)[:40]} is not a JSON array of arguments")
                for value in read_json_lines(args.calls, "--calls"))
    if args.args is not None:
        parse_arguments(args.args)  # a typo is a usage error before the plugin starts
    return {
        "source_config": props(args.source_config, args.source_prop),
        "sink_config": props(args.sink_config, args.sink_prop),
        "calls": calls,
        "records": read_json_lines(args.records, "--records") if args.records else None,
    }


def _cmd_run(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    # Imported here: only `run` needs the built-in host, and it loads the socket library.
    from .run.pipeline import RunOptions, RunSummary, run_pipeline

    if args.replay:
        return cmd_replay(args, out, err)
    try:
        inputs = _run_inputs(args)
    except (ValueError, OSError) as exc:
        err.write(f"error: {exc}\n")
        return EXIT_USAGE
    result = validate(args.dir, python=args.python or sys.executable,
                      check_code=not args.no_code)
    # The UI metadata files matter to eKuiper's UI, not to a run here.
    _print_problems([p for p in result.problems if p.message != MISSING_MESSAGE], err)
    if not result.ok:
        return EXIT_FAIL
    summary = RunSummary()
    try:
        options = RunOptions(source=args.source, function=args.function, sink=args.sink,
                             count=args.count, timeout=args.timeout,
                             datasource=args.datasource, conf_key=args.conf_key,
                             use_function=not args.no_function, args=args.args,
                             python=args.python, **inputs)
        run_pipeline(Path(args.dir), options, out=out, log=err, verbose=args.verbose,
                     summary=summary)
    except (HostError, LookupError, ValueError, RuntimeError, OSError, TimeoutError) as exc:
        err.write(f"error: {args.dir}: {exc}\n" + (f"{summary}\n" if summary.started else ""))
        return EXIT_FAIL
    err.write(f"{summary}\n")
    return EXIT_FAIL if summary.errors else EXIT_OK


def _cmd_dev(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from .dev import dev_loop, watch

    changes = watch(args.dir, args.exclude)
    out.write(f"watching {args.dir}; every change is validated, packed and sent to "
              f"{args.server} (Ctrl-C stops)\n")
    cycles = dev_loop(args.dir, _client(args), changes, out=out, vendor=_vendor_options(args),
                      python=args.python, excludes=args.exclude, via=args.via,
                      wording=option_wording)
    return EXIT_OK if cycles and cycles[-1].ok else EXIT_FAIL


def _json_object(text: str) -> dict[str, Any]:
    """An option's JSON object, or argparse's one-line error."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object, got {type(value).__name__}")
    return value


def _client(args: argparse.Namespace) -> rest.RestClient:
    return rest.RestClient(args.server, token=args.token, timeout=args.timeout)


def _emit(args: argparse.Namespace, out: IO[str], data: Any, text: str) -> None:
    out.write((json.dumps(data) if args.json else text) + "\n")


def _cmd_install(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from .failed_install import install_cleanly

    if args.check:
        from .zip_fit import refuse_unfit
        refuse_unfit(_client(args), args.zip, log=err)
    result = install_cleanly(_client(args), args.zip, update=args.command == "update",
                             via=args.via, name=args.name, serve_address=args.serve_address,
                             advertise=args.advertise, shell_paras=args.shell_para or (),
                             log=err, settle=args.settle)
    status = (result.status or {}).get("status")
    problem = (result.status or {}).get("errMsg")
    text = f"{result.message} (via {result.via})" + (f"; status: {status}" if status else "")
    if problem:
        text += f" ({problem})"
    if status == "running" and args.settle > 0:
        text += f" after {args.settle:g} s"
    _emit(args, out, dict(result.to_dict(), ok=status != "error"),
          text + _server_note(result.status))
    # A plugin that started and died within the settle time failed to install, for a script.
    return EXIT_FAIL if status == "error" else EXIT_OK


def _server_note(status: dict[str, Any] | None) -> str:
    """What the server is, after a status line: its version, and on 1.x why no state."""
    server = (status or {}).get("server")
    if not isinstance(server, dict):
        return ""
    note = f" [eKuiper {server.get('version')}, generation {server.get('generation')}]"
    return note + (f"; {status['note']}" if status and status.get("note") else "")


def _cmd_delete(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    message = _client(args).delete(args.name)
    _emit(args, out, {"ok": True, "name": args.name, "message": message}, message)
    return EXIT_OK


def _cmd_list(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    plugins = _client(args).list_plugins()
    if args.json:
        out.write(json.dumps(plugins) + "\n")
        return EXIT_OK
    if not plugins:
        out.write("no portable plugins installed\n")
    for p in sorted(plugins, key=lambda p: str(p.get("name"))):
        symbols = "; ".join(f"{kind}: {', '.join(p.get(kind) or [])}" for kind in KINDS
                            if p.get(kind))
        out.write(f"{p.get('name')} {p.get('version') or '-'} ({p.get('language')}) {symbols}\n")
    return EXIT_OK


def _cmd_status(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    status = _client(args).plugin_status(args.name)
    state = status.get("status")
    refs = status.get("refCount") or {}
    text = f"{args.name}: {state}"
    if status.get("errMsg"):
        text += f" ({status['errMsg']})"
    try:
        rules = describe_rules(_client(args), args.name, refs)
    except RestError as exc:
        rules = [(rule, f"state unknown: {exc.worded(option_wording).message}")
                 for rule in sorted(refs)]
    if rules:
        text += "; used by " + ", ".join(f"{rule} ({state})" for rule, state in rules)
    extra: dict[str, Any] = {}
    # The plugin's own view (restarts, hung calls), when its status file can be read here.
    found = find_status(args.name, args.data_dir)
    if found is not None:
        extra["plugin_view"] = found[1]
    view_text = (f"\n  the plugin says: {describe_status(extra['plugin_view'])} ({found[0]})"
                 if found is not None else "")
    _emit(args, out, dict(status, ok=state != "error", name=args.name, **extra),
          text + _server_note(status) + view_text)
    # A plugin in "error" makes the command fail, so scripts can test it.
    return EXIT_FAIL if state == "error" else EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The ``ekuiper-plugin`` argument parser.

    >>> build_parser().parse_args(["pack", "demo", "--vendor"]).vendor
    True
    """
    parser = argparse.ArgumentParser(
        prog="ekuiper-plugin",
        description="Create, check, pack, run and install eKuiper portable plugins.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add in (_add_init, _add_validate_and_pack, _add_run, _add_server_commands,
                add_fleet_commands, _add_record, _add_doctor):
        add(sub)
    return parser


def _add_init(sub: Subparsers) -> None:
    p = sub.add_parser("init", help="create a plugin project that works at once")
    p.add_argument("name", help="plugin name (letters, digits, '_', '-')")
    p.add_argument("--dir", help="folder to create (default: ./NAME)")
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    p.set_defaults(func=_cmd_init)


def _plugin_dir_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", help="plugin folder (holds <name>.json)")
    p.add_argument("--name", help="plugin name, when the folder holds several manifests")
    p.add_argument("--python", help="interpreter to load the plugin with "
                   "(default: this one; it needs the plugin's requirements)")
    p.add_argument("--no-code", action="store_true",
                   help="do not load the code to compare its symbols with the manifest")
    p.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                   help="leave matching files out (repeatable; tests/, caches, hidden "
                   "files and build folders are always left out)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _add_validate_and_pack(sub: Subparsers) -> None:
    p = sub.add_parser("validate", help="check manifest, files and symbols against the code")
    _plugin_dir_args(p)
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("pack", help="validate, then write the zip eKuiper installs")
    _plugin_dir_args(p)
    p.add_argument("-o", "--output", help="zip to write (default: ./<name>.zip)")
    p.add_argument("--layout", metavar="DIR", help="also (or, without -o, only) write the "
                   "folders eKuiper loads at start-up: DIR/plugins/portable/<name>/, "
                   "DIR/etc/..., DIR/data/...")
    p.add_argument("--vendor", action="store_true",
                   help="ship wheels of the requirements and ekuiper-sdk, with install.sh")
    p.add_argument("--python-version", default="3.12",
                   help="target interpreter of the wheels (default: 3.12, as in the "
                   "slim-python image)")
    p.add_argument("--platform", action="append", metavar="PLATFORM",
                   help="target platform, repeatable or comma-separated: x86_64, aarch64 or a "
                   "pip platform tag such as musllinux_1_2_x86_64 (default: x86_64,aarch64)")
    p.add_argument("--glibc", default="2.36",
                   help="newest glibc of the targets (default: 2.36, Debian bookworm)")
    p.add_argument("--sdk-wheel", help="ship this ekuiper-sdk wheel instead of building one "
                   "from the installed package")
    p.add_argument("--shared-python", action="store_true",
                   help="with --vendor: install.sh installs the wheels into eKuiper's Python, "
                   "shared by every plugin, instead of the plugin's own __pypackages__/")
    from .doctor import add_target_args

    add_target_args(p)
    p.set_defaults(func=_cmd_pack)


def _add_run(sub: Subparsers) -> None:
    p = sub.add_parser("run", help="run the plugin under the built-in host and show what flows",
                       description="Run the plugin like a small rule: records from its source "
                       "(or --records) through its function into its sink; or only calls of "
                       "its function (--call, --calls). Steps go to stdout; the plugin's "
                       "warnings and errors (everything with -v), per-record errors and a "
                       "summary go to stderr. Exit 1 when anything failed.")
    p.add_argument("dir", help="plugin folder")
    p.add_argument("--source", help="source to read (default: the first)")
    p.add_argument("--function", help="function to apply (default: the first)")
    p.add_argument("--no-function", action="store_true", help="do not apply a function")
    p.add_argument("--args", metavar="EXPRS", help="the function's arguments as SQL-like "
                   "expressions over each record: field names, numbers, 'strings', true, "
                   "false, null, [lists], e.g. \"x, 0, 100\" (default: the first string "
                   "field)")
    p.add_argument("--sink", help="sink to write to (default: the first)")
    p.add_argument("--count", type=int, default=5, help="records to read from the source "
                   "(default: 5)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait (default: 30)")
    p.add_argument("--datasource", default="", help="the stream's DATASOURCE")
    p.add_argument("--conf-key", help="the stream's CONF_KEY: the section of "
                   "sources/<name>.yaml written over its default section (one that is missing "
                   "is a warning, and the default section alone applies, as in eKuiper)")
    p.add_argument("--source-config", type=_json_object, default=None, metavar="JSON",
                   help="the stream's properties, written over the yaml's sections")
    p.add_argument("--source-prop", action="append", default=[], metavar="KEY=VALUE",
                   help="one source property (repeatable; the value is JSON when it parses "
                   "as JSON, else a string); over --source-config")
    p.add_argument("--sink-config", type=_json_object, default=None, metavar="JSON",
                   help="the sink action's properties")
    p.add_argument("--sink-prop", action="append", default=[], metavar="KEY=VALUE",
                   help="one sink property (repeatable, as --source-prop)")
    p.add_argument("--call", action="append", default=[], metavar="ARGS",
                   help="call the function alone with these literal arguments, e.g. "
                   "'1, 2, 3' (repeatable)")
    p.add_argument("--calls", metavar="FILE", help="call the function alone once per line "
                   "of FILE, each a JSON array of arguments ('-': stdin)")
    p.add_argument("--records", metavar="FILE", help="records for the function and sink "
                   "instead of the source: one JSON object a line ('-': stdin)")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="show every line the plugin writes, not only warnings and errors")
    p.add_argument("--python", help="interpreter that runs the plugin (default: this one)")
    p.add_argument("--no-code", action="store_true",
                   help="do not ask the code for its symbols before the run (a plugin on the "
                   "official ekuiper package cannot list them)")
    add_replay_argument(p)
    p.set_defaults(func=_cmd_run)


def _add_record(sub: Subparsers) -> None:
    add_record_parser(sub, _server_args)


def _add_doctor(sub: Subparsers) -> None:
    from .doctor import add_doctor_parser

    add_doctor_parser(sub, _server_args)


def _server_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", default=os.environ.get("EKUIPER_SERVER", rest.DEFAULT_SERVER),
                   help="eKuiper REST API (default: $EKUIPER_SERVER or "
                   f"{rest.DEFAULT_SERVER})")
    p.add_argument("--token", default=os.environ.get("EKUIPER_TOKEN"),
                   help="Authorization header value, when eKuiper runs with authentication "
                   "(default: $EKUIPER_TOKEN)")
    p.add_argument("--timeout", type=float, default=120.0,
                   help="seconds to wait for eKuiper (default: 120; an install waits for "
                   "the plugin to start)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _add_server_commands(sub: Subparsers) -> None:
    for command, text in (("install", "install a plugin zip"),
                          ("update", "replace an installed plugin with a zip")):
        p = sub.add_parser(command, help=text)
        p.add_argument("zip", help="the plugin zip")
        p.add_argument("--settle", type=float, default=rest.SETTLE_S, metavar="SECONDS",
                       help="watch the plugin's status this long before reporting it, so a "
                       f"plugin that dies just after it started shows (default: {rest.SETTLE_S:g})")
        p.add_argument("--name", help="plugin name, when the zip root holds several manifests")
        p.add_argument("--via", choices=rest.VIAS, default="auto",
                       help="how eKuiper gets the zip: file:// URL, upload to its data/uploads, "
                       "or serve it from here (default: auto: file for a local server, "
                       "else upload)")
        p.add_argument("--serve-address", default="", metavar="HOST:PORT",
                       help="with --via serve: where to listen (default: all interfaces, any port)")
        p.add_argument("--advertise", metavar="HOST",
                       help="with --via serve: host name eKuiper uses to reach this machine")
        p.add_argument("--shell-para", action="append", metavar="ARG",
                       help="argument passed to the zip's install.sh (repeatable)")
        p.add_argument("--check", action="store_true", help="first ask the server (as "
                       "`doctor` does) and refuse a zip that cannot run there")
        _server_args(p)
        p.set_defaults(func=_cmd_install)

    p = sub.add_parser("dev", help="watch a plugin folder; on every change validate, pack and "
                       "install or update it on the server, then show its status and rules")
    p.add_argument("dir", help="plugin folder (holds <name>.json)")
    p.add_argument("--python", help="interpreter to load the plugin with (default: this one)")
    p.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                   help="leave matching files out of the zip and of the watch")
    p.add_argument("--vendor", action="store_true",
                   help="ship wheels of the requirements and ekuiper-sdk (as pack --vendor)")
    p.add_argument("--python-version", default="3.12", help="with --vendor: as for pack")
    p.add_argument("--platform", action="append", metavar="PLATFORM",
                   help="with --vendor: as for pack")
    p.add_argument("--glibc", default="2.36", help="with --vendor: as for pack")
    p.add_argument("--sdk-wheel", help="with --vendor: as for pack")
    p.add_argument("--shared-python", action="store_true", help="with --vendor: as for pack")
    p.add_argument("--via", choices=rest.VIAS, default="auto",
                   help="how eKuiper gets the zip (as for install)")
    _server_args(p)
    p.set_defaults(func=_cmd_dev)

    p = sub.add_parser("delete", help="delete an installed plugin")
    p.add_argument("name")
    _server_args(p)
    p.set_defaults(func=_cmd_delete)

    p = sub.add_parser("list", help="list installed portable plugins")
    _server_args(p)
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("status", help="show whether a plugin runs (exit 1 when in error)")
    p.add_argument("name")
    p.add_argument("--data-dir", metavar="DIR",
                   help="eKuiper's data folder, where the plugin writes its own status "
                        "(restarts, hung calls); tried by default: $EKUIPER_SDK_STATE_DIR, "
                        "/kuiper/data, /usr/local/kuiper/data")
    _server_args(p)
    p.set_defaults(func=_cmd_status)


def main(argv: list[str] | None = None, *, out: IO[str] | None = None,
         err: IO[str] | None = None) -> int:
    """Run ``ekuiper-plugin`` with ``argv`` (default ``sys.argv[1:]``); return the exit status.

    >>> main(["validate", "does-not-exist"], err=io.StringIO())       # doctest: +SKIP
    1
    """
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    handler: Callable[[argparse.Namespace, IO[str], IO[str]], int] = args.func
    try:
        return handler(args, out, err)
    except PackagingError as exc:
        _print_problems(exc.problems, err)
        return EXIT_FAIL
    except RestError as exc:
        worded = exc.worded(option_wording)
        if getattr(args, "json", False):
            out.write(json.dumps(worded.to_dict()) + "\n")
        err.write(f"error: {worded}\n")
        return EXIT_FAIL
    except KeyboardInterrupt:
        err.write("interrupted\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
