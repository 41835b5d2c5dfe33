"""One plugin process's life, whatever part it plays: from start-up to ``os._exit``.

A plugin process is one of three (``roles``): the plugin in one process, a supervisor,
or a supervisor's worker. Each serves commands from a control channel, and all three live
the same way, written here once: logging set up, the host's argument read, SIGTERM and
SIGINT turned into a shutdown request, the channel connected and served on a thread of
its own, the parent process watched, the main thread parked until a shutdown is asked for,
then everything closed and the process ended. What differs is the :class:`Service` (what
answers the commands and what closing means) and where its commands come from.

Threads: the main thread only waits for a reason to shut down (a signal, the parent's
death, a broken control channel); the control thread answers the commands.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from dataclasses import dataclass
from typing import Callable, NoReturn, Protocol

import pynng

from .. import hosts
from ..errors import ProtocolError
from . import channels, protocol
from .parent import watch_parent

log = logging.getLogger("ekuiper_sdk")

#: The main thread only waits; a signal or another thread wakes it (a long timeout
#: is there only so that the wait is never unbounded).
SHUTDOWN_CHECK_S = 3600.0

LOG_LEVEL_ENV = "EKUIPER_SDK_LOG_LEVEL"
DEFAULT_SEND_TIMEOUT_MS = 1000


@dataclass(frozen=True)
class HostOptions:
    """What the host passes in ``argv[1]``."""

    send_timeout_ms: int = DEFAULT_SEND_TIMEOUT_MS


def parse_host_args(argv: list[str]) -> HostOptions:
    """Read the host's JSON argument; tolerate it missing, extra keys and bad values.

    >>> parse_host_args(["pysam.py", '{"sendTimeout": 500, "future": 1}'])
    HostOptions(send_timeout_ms=500)
    """
    if len(argv) < 2:
        return HostOptions()
    try:
        obj = json.loads(argv[1])
    except ValueError:
        log.warning("ignoring an argument that is not JSON: %.80r", argv[1])
        return HostOptions()
    timeout = obj.get("sendTimeout") if isinstance(obj, dict) else None
    if isinstance(timeout, int) and not isinstance(timeout, bool) and timeout > 0:
        return HostOptions(send_timeout_ms=timeout)
    if timeout is not None:
        log.warning("ignoring sendTimeout %r: not a positive number of milliseconds", timeout)
    return HostOptions()


def configure_logging() -> None:
    """Send log lines to stderr, which eKuiper copies into its own log.

    Like a program's ``main``, the plugin sets up the root logger unless the plugin's
    code already did, so plain ``logging.info`` calls in plugin code show up too.
    stdout and stderr become line-buffered: eKuiper starts a conda plugin without
    ``python -u``, and a pipe is block-buffered by default, so a ``print`` or a log line
    could sit in a buffer until the plugin exits.
    """
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(line_buffering=True)
            except (ValueError, OSError):  # a replaced or closed stream: leave it
                pass
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
        root.setLevel(os.environ.get(LOG_LEVEL_ENV, "INFO").upper())


def exit_process(code: int) -> NoReturn:
    """Flush the log and the output, then end the process at once."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    # Daemon threads may sit inside nng calls; a plain exit would wait on interpreter
    # finalisation that can block on them.
    os._exit(code)


class CommandChannel(Protocol):
    """Where commands come from: eKuiper's control channel, or a supervisor's."""

    def on_disconnect(self, callback: Callable[[], None]) -> None: ...

    def serve(self, handle: Callable[[bytes], bytes], stopped: threading.Event) -> None: ...


def connect_to_ekuiper(plugin: str) -> channels.InvertedReplier:
    """Dial eKuiper's control channel for ``plugin``; exits the process when none listens."""
    url = protocol.control_url(plugin)
    # No keepalive unless every host generation skips one: a host before 2.1.3 reads a
    # queued handshake as the answer to its next command. A host that is gone is seen
    # by the channel's disconnect and the parent watch, on every generation.
    idle_ms = channels.IDLE_KEEPALIVE_MS if hosts.every_host_skips_keepalives() else None
    try:
        return channels.InvertedReplier(url, idle_ms=idle_ms, what="control channel")
    except ConnectionError:
        log.error("no eKuiper is listening at %s: a portable plugin is started by eKuiper "
                  "(or by ekuiper_sdk.testing), not by hand", url)
        exit_process(1)


class ShutdownRequest(threading.Event):
    """Set once the process should close everything and exit; ``reason`` says why.

    >>> request = ShutdownRequest(); request.ask("signal SIGTERM"); request.ask("later")
    >>> request.is_set(), request.reason
    (True, 'signal SIGTERM')
    """

    def __init__(self) -> None:
        super().__init__()
        self.reason = ""

    def ask(self, reason: str) -> None:
        """Ask for the shutdown; the first reason given is the one kept."""
        if not self.is_set():
            self.reason = reason
            self.set()


def shut_down_on_signals(shutdown: Callable[[str], None]) -> None:
    """SIGTERM and SIGINT call ``shutdown`` with the signal's name.

    Python installs handlers from the main thread only; elsewhere (a plugin started from
    a thread of its own) the signals keep their default action.
    """
    if threading.current_thread() is not threading.main_thread():
        return

    def on_signal(signum: int, _frame: object) -> None:
        shutdown(f"signal {signal.Signals(signum).name}")

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)


# -- commands: what every role does with a command before its own part


def refusal(cmd: str, control: protocol.Control, problem: str,
            trace: BaseException | None = None) -> bytes:
    """Log why a command was refused (with ``trace``'s traceback), and the one-line answer.

    >>> refusal("start", protocol.Control("revert", protocol.FUNC), "no such function")
    b"cannot start function 'revert': no such function"
    """
    log.error("cannot %s %s: %s", cmd, control.label(), problem, exc_info=trace)
    return protocol.control_answer(f"cannot {cmd} {control.label()}: {problem}")


def answer_command(data: bytes, handle: Callable[[protocol.Command], bytes]) -> bytes:
    """Decode one command and let ``handle`` answer it; a command that cannot be read is
    refused here, in the same words whichever role the process plays.

    >>> answer_command(b"{not json", lambda command: protocol.OK)[:16]
    b'invalid command:'
    """
    try:
        command = protocol.decode_command(data)
    except ProtocolError as exc:
        log.warning("refused a command: %s", exc)
        return protocol.control_answer(f"invalid command: {exc}")
    return handle(command)


# -- the life itself


class Service(Protocol):
    """What a process serves: answers to commands, and what closing it means."""

    def handle_command(self, data: bytes) -> bytes:
        """Answer one command; never raises."""
        ...

    def begin(self) -> None:
        """Start what runs beside the control channel (called before it connects)."""
        ...

    def close(self) -> None:
        """Close everything, bounded in time; the process exits next."""
        ...


@dataclass(frozen=True)
class Identity:
    """How a process names itself in its log, and who sends its commands."""

    #: The process in the start-up line: ``plugin`` or ``worker``.
    title: str
    #: Its pid in that line: ``pid`` or ``supervisor pid``.
    pid_label: str
    #: Who sends the commands and started the process: ``eKuiper`` or ``the supervisor``.
    host: str
    #: What a dropped channel is called in the shutdown's reason.
    channel: str


class ProcessLife:
    """One process's life: options, shutdown, and :meth:`serve` until the end.

    >>> life = ProcessLife("demo", ["main.py", '{"sendTimeout": 200}'])
    >>> life.options.send_timeout_ms, life.shutdown.is_set()
    (200, False)
    """

    def __init__(self, plugin: str, argv: list[str]) -> None:
        self.plugin = plugin
        self.options = parse_host_args(argv)
        self.shutdown = ShutdownRequest()

    def serve(self, service: Service, role: Identity,
              connect: Callable[[], CommandChannel]) -> NoReturn:
        """Serve ``service`` over the channel ``connect`` opens until shut down; exits.

        ``connect`` raising ``ConnectionError`` ends the process with status 1.
        """
        configure_logging()
        log.info("%s %s starting (%s %d, sendTimeout %d ms)", role.title, self.plugin,
                 role.pid_label, os.getpid(), self.options.send_timeout_ms)
        shut_down_on_signals(self.shutdown.ask)
        service.begin()
        try:
            control = connect()
        except ConnectionError as exc:
            log.error("%s %s: %s is gone: %s", role.title, self.plugin, role.host, exc)
            exit_process(1)
        control.on_disconnect(lambda: self.shutdown.ask(f"{role.host} closed {role.channel}"))
        threading.Thread(target=self._serve_control, args=(control, service, role),
                         name="control", daemon=True).start()
        # The host died (even by SIGKILL): leave rather than linger as an orphan that a
        # restarted host's sockets could be shared with.
        watch_parent(lambda pid: self.shutdown.ask(f"{role.host} (pid {pid}) is gone"))
        while not self.shutdown.wait(SHUTDOWN_CHECK_S):
            pass
        service.close()
        log.info("plugin %s stopped: %s", self.plugin, self.shutdown.reason)
        exit_process(0)

    def _serve_control(self, control: CommandChannel, service: Service,
                       role: Identity) -> None:
        try:
            control.serve(service.handle_command, self.shutdown)
        except pynng.NNGException as exc:
            self.shutdown.ask(f"control channel failed: {exc}")
        except Exception:  # noqa: BLE001 - reported, then the process exits cleanly
            log.exception("control channel failed")
            self.shutdown.ask("control channel failed")
        else:
            self.shutdown.ask(f"{role.host} closed {role.channel}")


#: eKuiper's control channel, for the plugin in one process and for a supervisor.
EKUIPER = Identity("plugin", "pid", "eKuiper", "the control channel")
