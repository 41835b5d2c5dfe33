"""A private eKuiper for one benchmark run (``python -m benchmarks --kuiperd PATH``).

Given a ``kuiperd`` binary, :class:`PrivateKuiperd` makes a run folder of its own in the
temporary directory (``bin/kuiperd`` a link to the binary, a copy of the ``etc/`` beside
the binary's ``bin/``, empty ``data/``, ``log/`` and ``plugins/``), picks free ports for
the REST API, the old CLI port and the httppush server, binds every listener to
127.0.0.1, turns prometheus and pprof off, and starts plugins with the Python it is given.
When the run ends, also on Ctrl-C or an error, it stops the server, ends whatever plugin
process the server left behind, removes the IPC socket files of the run's plugins, and
removes the folder.

Example::

    with PrivateKuiperd(Path("/opt/ekuiper/bin/kuiperd"), python="/usr/bin/python3") as k:
        urllib.request.urlopen(k.url + "/")
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

#: The plugin folders eKuiper expects under ``plugins/``, and the ``etc/`` folders it writes
#: into when plugins are installed.
PLUGIN_DIRS = ("portable", "sources", "sinks", "functions", "wasm")
ETC_DIRS = ("sources", "sinks", "services/schemas")
#: Seconds to wait for the REST API, and for the server to stop after SIGTERM (its own
#: graceful shutdown gives rules 10 s by default).
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
LOG_NAME = "kuiperd.out"
FOLDER_PREFIX = "ekuiper-bench-kuiperd-"
#: In the run folder: the benchmark's pid and the run's name prefixes, for a later sweep.
OWNER_FILE = "owner.json"
#: What eKuiper before 2.2 logs when its fixed pprof port is taken; new ports cannot help.
PPROF_IN_USE = "listen tcp :6060: bind: address already in use"


class KuiperdError(RuntimeError):
    """The private server could not be prepared or started (one line: what, and the fix)."""


@dataclass(frozen=True)
class Ports:
    """The TCP ports the private server listens on, all on 127.0.0.1."""

    rest: int
    cli: int
    http: int


def free_ports() -> Ports:
    """Three distinct free ports on 127.0.0.1, as the kernel hands them out now.

    >>> p = free_ports(); len({p.rest, p.cli, p.http})
    3
    """
    sockets = [socket.socket() for _ in range(3)]
    try:
        for s in sockets:  # held open together, so the three differ
            s.bind(("127.0.0.1", 0))
        rest, cli, http = (s.getsockname()[1] for s in sockets)
    finally:
        for s in sockets:
            s.close()
    return Ports(rest, cli, http)


def find_etc(binary: Path, etc: Path | None = None) -> Path:
    """The ``etc/`` folder to copy: ``etc`` when given, else the one beside ``bin/``.

    >>> try:
    ...     find_etc(Path("/nowhere/bin/kuiperd"))
    ... except KuiperdError as exc:
    ...     print(exc)  # doctest: +ELLIPSIS
    no /nowhere/etc/kuiper.yaml beside the kuiperd binary; pass --kuiperd-etc DIR ...
    """
    folder = etc if etc is not None else binary.resolve().parent.parent / "etc"
    if not (folder / "kuiper.yaml").is_file():
        where = "in --kuiperd-etc" if etc is not None else "beside the kuiperd binary"
        raise KuiperdError(f"no {folder / 'kuiper.yaml'} {where}; pass --kuiperd-etc DIR "
                           "(eKuiper's etc/ folder)")
    return folder


def check_binary(binary: Path) -> Path:
    """``binary`` made absolute, or a one-line error if it cannot be run.

    >>> try:
    ...     check_binary(Path("/nowhere/kuiperd"))
    ... except KuiperdError as exc:
    ...     print(exc)
    no kuiperd at /nowhere/kuiperd; pass the path of a built eKuiper's bin/kuiperd
    """
    path = binary.expanduser().absolute()
    if not path.is_file():
        raise KuiperdError(f"no kuiperd at {path}; pass the path of a built eKuiper's "
                           "bin/kuiperd")
    if not os.access(path, os.X_OK):
        raise KuiperdError(f"{path} is not executable; chmod +x it or pass another kuiperd")
    return path


def prepare_folder(run: Path, binary: Path, etc: Path) -> None:
    """Lay out eKuiper's base folder in ``run`` (an empty folder).

    ``bin/kuiperd`` links to the binary; ``etc/`` is a copy, so that what installs write
    there (a plugin's source configuration) never reaches the original.
    """
    (run / "bin").mkdir()
    (run / "bin" / "kuiperd").symlink_to(binary)
    shutil.copytree(etc, run / "etc", symlinks=True)
    for sub in ETC_DIRS:
        (run / "etc" / sub).mkdir(parents=True, exist_ok=True)
    for sub in ("data", "log"):
        (run / sub).mkdir()
    for sub in PLUGIN_DIRS:
        (run / "plugins" / sub).mkdir(parents=True)


def server_env(base: Mapping[str, str], run: Path, ports: Ports, python: str) -> dict[str, str]:
    """The environment of the private server: ``base`` without any eKuiper settings of its
    own, plus the run folder, the ports, loopback only, no prometheus or pprof, the
    console log, and the Python its plugins start with.

    >>> env = server_env({"PATH": "/bin", "KUIPER__BASIC__RESTPORT": "9081"}, Path("/r"),
    ...                  Ports(1, 2, 3), "/py")
    >>> env["KUIPER__BASIC__RESTPORT"], env["KuiperBaseKey"], env["PATH"]
    ('1', '/r', '/bin')
    """
    env = {k: v for k, v in base.items() if not k.startswith("KUIPER__") and k != "KuiperBaseKey"}
    env.update({
        "KuiperBaseKey": str(run),
        "KUIPER__BASIC__RESTIP": "127.0.0.1",
        "KUIPER__BASIC__RESTPORT": str(ports.rest),
        "KUIPER__BASIC__IP": "127.0.0.1",
        "KUIPER__BASIC__PORT": str(ports.cli),
        "KUIPER__SOURCE__HTTPSERVERIP": "127.0.0.1",
        "KUIPER__SOURCE__HTTPSERVERPORT": str(ports.http),
        # The prometheus server would bind 0.0.0.0 whatever the settings say.
        "KUIPER__BASIC__PROMETHEUS": "false",
        "KUIPER__BASIC__PPROF": "false",
        "KUIPER__BASIC__CONSOLELOG": "true",
        "KUIPER__BASIC__FILELOG": "false",
        "KUIPER__PORTABLE__PYTHONBIN": python,
    })
    return env


def log_tail(path: Path, lines: int = 3) -> str:
    """The last ``lines`` non-empty lines of a log, joined into one line.

    >>> import tempfile; f = Path(tempfile.mkstemp()[1]); _ = f.write_text("a\\n\\nb\\nc\\n")
    >>> log_tail(f, 2)
    'b | c'
    """
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    kept = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
    return " | ".join(kept) or "(empty log)"


def _parent_death_signal() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the kernel SIGTERM the server if this process dies without
    stopping it (a SIGKILL), so that no kuiperd outlives the benchmark; None off Linux."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM)

    return preexec


def remove_ipc_files(markers: list[str], tmp: Path = Path("/tmp")) -> None:
    """Remove the socket files in ``tmp`` whose names contain one of ``markers``."""
    for marker in markers:
        for path in tmp.glob(f"*{marker}*.ipc"):
            path.unlink(missing_ok=True)


def sweep_abandoned(tmp: Path) -> list[Path]:
    """Remove the folders (and socket files) of earlier runs whose benchmark process is
    gone: a SIGKILL leaves them, though the kernel stops their server (see
    :func:`_parent_death_signal`). A folder whose owner still runs, or that has no owner
    file yet, is left alone. Returns the folders removed."""
    removed = []
    for folder in tmp.glob(FOLDER_PREFIX + "*"):
        try:
            owner = json.loads((folder / OWNER_FILE).read_text())
            os.kill(int(owner["pid"]), 0)
            continue  # still running
        except ProcessLookupError:
            pass
        except (OSError, ValueError, KeyError, TypeError):
            continue  # no owner yet, or not ours to judge
        remove_ipc_files([str(m) for m in owner.get("markers", [])], tmp)
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


class PrivateKuiperd:
    """One eKuiper server of the benchmark's own, for a ``with`` block.

    :meth:`add_ipc_marker`: the run's plugin and rule names share this prefix; socket
    files in ``/tmp`` whose names contain it are removed after the server stops (a stopped
    eKuiper leaves its plugins' control sockets behind).
    """

    def __init__(self, binary: Path, python: str, etc: Path | None = None, *,
                 keep: bool = False, log: Callable[[str], None] = print) -> None:
        self.binary = check_binary(binary)
        self.etc = find_etc(self.binary, etc)
        self.python = python
        self.keep = keep
        self.log = log
        self.run_dir: Path | None = None
        self.ports: Ports | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.ipc_markers: list[str] = []

    def add_ipc_marker(self, marker: str) -> None:
        """Remove ``/tmp/*<marker>*.ipc`` when the server stops."""
        self.ipc_markers.append(marker)
        self._write_owner()

    def _write_owner(self) -> None:
        if self.run_dir is not None:
            (self.run_dir / OWNER_FILE).write_text(json.dumps(
                {"pid": os.getpid(), "markers": self.ipc_markers}))

    @property
    def url(self) -> str:
        if self.ports is None:
            raise KuiperdError("the private eKuiper is not started")
        return f"http://127.0.0.1:{self.ports.rest}"

    def __enter__(self) -> PrivateKuiperd:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def start(self) -> None:
        for folder in sweep_abandoned(Path(tempfile.gettempdir())):
            self.log(f"removed {folder}, left by a benchmark that was killed")
        self.run_dir = Path(tempfile.mkdtemp(prefix=FOLDER_PREFIX))
        self._write_owner()
        prepare_folder(self.run_dir, self.binary, self.etc)
        # A port picked here can be taken by another process before the server binds it;
        # a second set of ports then gets a second chance.
        for _ in range(3):
            self.ports = free_ports()
            self._spawn()
            if self._wait_rest():
                return
            self._end_process()
        raise KuiperdError(f"kuiperd found its ports taken three times; the end of its log: "
                           f"{log_tail(self.run_dir / LOG_NAME)}")

    def _spawn(self) -> None:
        assert self.run_dir is not None and self.ports is not None
        log = open(self.run_dir / LOG_NAME, "ab")
        try:
            self.proc = subprocess.Popen(
                [str(self.run_dir / "bin" / "kuiperd")], cwd=self.run_dir,
                env=server_env(os.environ, self.run_dir, self.ports, self.python),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                # A group of its own: Ctrl-C reaches the benchmark only, which stops the
                # server in order; and the plugins it starts can be found by the group.
                start_new_session=True, preexec_fn=_parent_death_signal())
        except OSError as exc:
            raise KuiperdError(f"cannot start {self.binary}: {exc.strerror}") from None
        finally:
            log.close()

    def _wait_rest(self) -> bool:
        """True once the REST API answers; False if the server quit because a port was
        taken; a one-line error with the end of its log otherwise."""
        assert self.proc is not None and self.run_dir is not None
        give_up = time.monotonic() + START_TIMEOUT
        while True:
            code = self.proc.poll()
            if code is not None:
                tail = log_tail(self.run_dir / LOG_NAME)
                if PPROF_IN_USE in tail:
                    raise KuiperdError(
                        "kuiperd exited: this build always serves pprof on port 6060 (eKuiper "
                        "before 2.2 does, on every interface, whatever kuiper.yaml says) and "
                        "another process holds the port; stop it, or run this in a network "
                        "namespace of its own (unshare --net)")
                if "address already in use" in tail:
                    return False
                raise KuiperdError(f"kuiperd exited with code {code} before its REST API "
                                   f"answered at {self.url}; the end of its log: {tail}")
            try:
                with urllib.request.urlopen(self.url + "/", timeout=1):
                    return True
            except urllib.error.HTTPError:
                return True  # it answered
            except OSError:
                pass
            if time.monotonic() > give_up:
                raise KuiperdError(f"kuiperd's REST API did not answer at {self.url} within "
                                   f"{START_TIMEOUT:g} s; the end of its log: "
                                   f"{log_tail(self.run_dir / LOG_NAME)}")
            time.sleep(0.2)

    def _end_process(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # it stops its rules and plugins
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        try:  # any plugin process it left behind is still in its group
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self) -> None:
        """Stop the server, its plugins, and remove what it made (safe to call twice)."""
        # A second Ctrl-C must not cut the cleanup short and leave a server behind.
        can_block = hasattr(signal, "pthread_sigmask")
        if can_block:
            blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            self._end_process()
            remove_ipc_files(self.ipc_markers)
            if self.run_dir is not None:
                if self.keep:
                    self.log(f"kept the private eKuiper's folder {self.run_dir}")
                else:
                    shutil.rmtree(self.run_dir, ignore_errors=True)
                self.run_dir = None
        finally:
            if can_block:
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
