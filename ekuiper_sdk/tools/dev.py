"""``ekuiper-plugin dev DIR --server URL``: edit a plugin and see it live in eKuiper.

On start and on every change in the folder: validate and pack the plugin, install it the
first time and update it after, then print its status and the rules that use it. A step
that fails prints one line and the loop waits for the next change; an update eKuiper
refuses (which leaves the plugin deleted, since eKuiper deletes before it installs) is
followed by installing the last good zip again. Ctrl-C stops watching and leaves the last
good version installed.

Watching uses ``watchfiles`` (the ``watch`` extra: ``pip install ".[tools,watch]"`` in a checkout);
:func:`dev_loop` takes any iterable of changes, so it is driven without a watcher in tests.

Example::

    dev_loop("myplugin", RestClient("http://127.0.0.1:9081"), watch("myplugin"))
"""

from __future__ import annotations

import importlib
import io
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

from ..errors import PackagingError, Problem, RestError, Wording, python_wording
from . import rest
from .archive import DEFAULT_EXCLUDES, is_excluded
from .manifest import PathLike
from .pack import pack
from .usage import rules_using
from .vendor import VendorOptions


@dataclass
class Cycle:
    """What one turn of the loop did."""

    ok: bool
    step: str                      # the step that failed, or "done"
    message: str = ""
    status: dict[str, Any] | None = None
    rules: list[tuple[str, str]] = field(default_factory=list)


class DevSession:
    """The state the loop keeps between changes: whether the plugin is installed, and the
    last zip eKuiper took."""

    def __init__(self, plugin_dir: PathLike, client: rest.RestClient, *,
                 vendor: VendorOptions | None = None, python: str | None = None,
                 excludes: Sequence[str] = (), via: str = "auto",
                 out: IO[str] | None = None, settle: float = rest.SETTLE_S,
                 wording: Wording = python_wording) -> None:
        self.plugin_dir = Path(plugin_dir)
        #: How a REST error names the parameter that fixes it (the CLI: as its option).
        self.wording = wording
        self.client = client
        self.vendor = vendor
        self.python = python
        self.excludes = list(excludes)
        self.via = via
        self.settle = settle
        self.out = out if out is not None else sys.stdout
        self.work = Path(tempfile.mkdtemp(prefix="ekuiper-dev-"))
        self.last_good: Path | None = None
        self.installed: bool | None = None

    def close(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)

    def _say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def _is_installed(self, name: str) -> bool:
        if self.installed is None:
            self.installed = any(p.get("name") == name for p in self.client.list_plugins())
        return self.installed

    def cycle(self) -> Cycle:
        """Validate, pack, install or update, report; never raises for a failed step.
        pip's and the installer's chatter is dropped: the loop prints one line a cycle."""
        candidate = self.work / "candidate.zip"
        try:
            result = pack(self.plugin_dir, candidate, vendor=self.vendor, python=self.python,
                          excludes=self.excludes, log=io.StringIO())
        except PackagingError as exc:
            first = exc.problems[0] if exc.problems else exc
            more = f" (and {len(exc.problems) - 1} more)" if len(exc.problems) > 1 else ""
            return self._failed("pack", f"{first}{more}")
        name = result.manifest.name
        update = bool(self.installed)
        try:
            update = self._is_installed(name)
            done = rest.install_zip(self.client, candidate, update=update, via=self.via,
                                    log=io.StringIO(), settle=self.settle)
        except (RestError, PackagingError) as exc:
            message = self._text(exc).splitlines()[0]
            if self.installed and self.last_good is not None:
                # eKuiper deleted the plugin before failing to install the new zip.
                try:
                    rest.install_zip(self.client, self.last_good, via=self.via, log=io.StringIO(),
                                     settle=0)
                    message += "; the last good version is installed again"
                except (RestError, PackagingError) as again:
                    self.installed = False
                    message += ("; reinstalling the last good version failed too: "
                                f"{self._text(again)}")
            return self._failed("update" if update else "install", message)
        self.installed = True
        good = self.work / "last-good.zip"
        candidate.replace(good)
        self.last_good = good
        try:
            rules = rules_using(self.client, result.manifest)
        except RestError as exc:
            rules = [("?", f"rules unknown: {self._text(exc)}")]
        status = done.status or {}
        state = status.get("status", "unknown")
        err = f" ({status['errMsg']})" if status.get("errMsg") else ""
        if status.get("note"):  # eKuiper 1.x: no status; the plugin runs while a rule does
            err = f" ({status['note']})"
        server = status.get("server")
        if isinstance(server, dict):  # what the server is, as install and status say it
            state += f" [eKuiper {server.get('version')}, generation {server.get('generation')}]"
        used = ", ".join(f"{rid} ({st})" for rid, st in rules) or "no rule"
        if any(rest.ACK_SOCKET_IN_USE.search(st) for _, st in rules):
            used += f"; {rest.ACK_SOCKET_HINT}"
        self._say(f"ok: {name} {result.manifest.version} {'updated' if update else 'installed'}"
                  f"; status {state}{err}; used by {used}")
        return Cycle(True, "done", done.message, status, rules)

    def _text(self, exc: Exception) -> str:
        return str(exc.worded(self.wording) if isinstance(exc, RestError) else exc)

    def _failed(self, step: str, message: str) -> Cycle:
        self._say(f"failed at {step}: {message}")
        return Cycle(False, step, message)


def dev_loop(plugin_dir: PathLike, client: rest.RestClient, changes: Iterable[object], *,
             out: IO[str] | None = None, **options: Any) -> list[Cycle]:
    """Run one cycle now and one per item of ``changes``; return what each did.

    Ctrl-C (``KeyboardInterrupt``) ends the loop; whatever was last installed stays.

    >>> dev_loop("myplugin", RestClient(), [])[0].ok               # doctest: +SKIP
    True
    """
    session = DevSession(plugin_dir, client, out=out, **options)
    cycles = []
    try:
        cycles.append(session.cycle())
        for _ in changes:
            cycles.append(session.cycle())
    except KeyboardInterrupt:
        session._say("stopped; the last good version stays installed" if session.last_good
                     else "stopped; nothing was installed")
    finally:
        session.close()
    return cycles


def watch(plugin_dir: PathLike, excludes: Sequence[str] = ()) -> Iterator[object]:
    """Each batch of changes to the files ``pack`` would take, from ``watchfiles``.

    >>> next(watch("myplugin"))                                     # doctest: +SKIP
    {(<Change.modified: 2>, '/abs/myplugin/main.py')}
    """
    try:
        watchfiles = importlib.import_module("watchfiles")
    except ImportError:
        raise PackagingError([Problem("watchfiles", "is not installed; `dev` needs it to "
                                      "watch the folder", "pip install watchfiles (or the "
                                      "SDK's watch extra: pip install \".[watch]\" in a "
                                      "checkout)")]) from None
    root = Path(plugin_dir).resolve()
    patterns = list(DEFAULT_EXCLUDES) + list(excludes) + ["*.zip"]

    def wanted(change: object, path: str) -> bool:
        try:
            rel = Path(path).resolve().relative_to(root)
        except ValueError:
            return False
        return not is_excluded(PurePosixPath(rel.as_posix()), patterns)

    # Imported above, before the first change: a missing watcher is named at once.
    return iter(watchfiles.watch(root, watch_filter=wanted, raise_interrupt=True))
