"""Supervision: the process eKuiper starts keeps the control channel, a worker serves.

eKuiper does not restart a plugin process that dies (docs/protocol.md, "Death"), so the
process it starts hands the symbols to a worker process (a fresh interpreter running the
same script, never a fork: nng's threads are already running) and restarts the worker when
it dies, whatever the cause. The worker owns every socket to eKuiper; the supervisor
forwards each command to it and relays its answer, so a start is answered only once the
worker serves it. It remembers the starts answered ``ok`` and replays them into a new
worker, so rules carry on. Deaths in a row back off (0.1 s doubling to 30 s); an instance
during whose start the worker died three times in a row is no longer started.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, NoReturn

import pynng

from .. import channels, protocol
from ..control import SymbolTable
from ..process import EKUIPER, Identity, ProcessLife, answer_command, connect_to_ekuiper, refusal
from ..roles import FALSE_WORDS
from . import inflight, sinkboard
from .worker import EXIT_HUNG, REFUSE_CALLS, REJOIN_ENV
from .worker_process import WorkerDied, WorkerProcess

log = logging.getLogger("ekuiper_sdk")

#: ``0`` starts a worker only when one died, instead of keeping a spare ready.
SPARE_ENV = "EKUIPER_SDK_SPARE_WORKER"
BACKOFF_FIRST_S = 0.1
BACKOFF_MAX_S = 30.0
#: A worker that lived this long resets the count of deaths in a row.
STABLE_S = 10.0
#: From this many deaths in a row on, the log and the start answers call it a crash loop.
CRASH_LOOP_DEATHS = 3
#: An instance during whose start the worker died this many times in a row is dropped.
STRIKES_TO_DROP = 3
#: How many workers a function's start is tried on when they die during it.
FUNCTION_START_ATTEMPTS = 5
#: How long a command waits for a worker that is being started.
COMMAND_WAIT_S = 10.0
#: How long a new worker may take to import the plugin and connect.
READY_TIMEOUT_S = 60.0
#: How long the worker gets to close its symbols when the supervisor stops.
WORKER_STOP_S = 2.0
#: How long the error ack of a lost sink frame may wait for eKuiper's ack listener.
ACK_DIAL_S = 0.5
#: How many calls that killed a worker are refused, per function (the latest ones).
POISON_KEPT = 64
#: How the supervisor names itself: the plugin, as eKuiper sees it.
SUPERVISOR = Identity("plugin", "supervisor pid", EKUIPER.host, EKUIPER.channel)


@dataclass
class Started:
    """A start answered ``ok``, as eKuiper sent it, to replay into a new worker."""

    control: protocol.Control
    raw: bytes


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


class Supervisor:
    """Keeps eKuiper's control channel and one worker serving the symbols."""

    def __init__(self, config: SymbolTable, argv: list[str], command: list[str]) -> None:
        self.config = config
        self.life = ProcessLife(config.name, argv)
        self.options = self.life.options
        self.command = command
        self._cond = threading.Condition()
        self._worker: WorkerProcess | None = None   # set while a worker is ready
        self._spare: WorkerProcess | None = None    # started in advance, takes over a death
        self._live: set[WorkerProcess] = set()      # every worker not yet reaped
        #: Keep a spare worker (``EKUIPER_SDK_SPARE_WORKER=0`` turns it off).
        self.spare = os.environ.get(SPARE_ENV, "1").strip().lower() not in FALSE_WORDS
        self._numbers = 0
        self._started: dict[str, Started] = {}
        self._strikes: dict[str, int] = {}
        self._dropped: dict[str, str] = {}           # key -> why it is no longer started
        self._poison: dict[str, list[list[Any]]] = {}  # calls a worker must not run
        self._deaths = 0                             # in a row
        self._last_death = ""
        self._restart_at = time.monotonic()          # when the next worker starts
        self._shutdown = self.life.shutdown
        # Per sink key, the socket that gave eKuiper an error ack for a frame lost with a
        # worker; kept until the sink stops, so that the ack is never cut off in nng.
        self._ack_sockets: dict[str, pynng.Socket] = {}
        self._status: Any = None                     # the status file, from the first change
        self._restarts = 0                           # serving workers that died
        self._hung = 0                               # of which because a call was stuck

    # -- process lifecycle

    def serve_forever(self) -> NoReturn:
        """Start the worker, serve eKuiper's commands until shut down; exits the process."""
        self.life.serve(self, SUPERVISOR, lambda: connect_to_ekuiper(self.config.name))

    def shutdown(self, reason: str) -> None:
        """Stop the worker (its symbols close) and exit."""
        self._shutdown.ask(reason)

    def begin(self) -> None:
        threading.Thread(target=self._start_worker, name="worker start", daemon=True).start()

    def close(self) -> None:
        with self._cond:
            self._worker = None
            workers = list(self._live)  # ready or not: no worker outlives the supervisor
            self._cond.notify_all()
        for worker in workers:
            worker.terminate(WORKER_STOP_S)
        for worker in workers:
            worker.close()

    # -- the worker

    def _spawn(self) -> WorkerProcess:
        """A new worker process, not yet ready; ``OSError`` when it cannot be started."""
        with self._cond:
            self._numbers += 1
            number = self._numbers
            poison = json.dumps(self._poison)
        calls = sinks = -1
        try:
            calls = inflight.create(list(self.config.functions))
            sinks = sinkboard.create()
            env = {inflight.CALLS_ENV: str(calls), inflight.POISON_ENV: poison,
                   sinkboard.SINKS_ENV: str(sinks),
                   # Only the first worker joins the host's function sockets by itself
                   # (PluginRuntime._rejoin_functions); later ones get the recorded starts.
                   REJOIN_ENV: "1" if number == 1 else "0"}
            worker = WorkerProcess(self.config.name, self.command, number, self._on_exit,
                                   env, pass_fds=(calls, sinks))
        except OSError:
            _close(calls)
            _close(sinks)
            raise
        with self._cond:
            self._live.add(worker)
        if self._shutdown.is_set():  # close may have looked before it was added
            worker.kill()
        return worker

    def _start_worker(self, spare: WorkerProcess | None = None) -> None:
        """Bring a worker in (``spare``, or a new one) and replay every recorded start into
        it; then start the next spare (a thread of its own)."""
        while not self._shutdown.is_set():
            if spare is not None:
                worker, spare = spare, None
                # Its life as the serving worker starts now: a spare that waited for an
                # hour and died in its first second is a death in a row, not a stable one.
                worker.started_at = time.monotonic()
                with self._cond:
                    self._restart_at = worker.started_at  # commands wait for it, not refuse
            else:
                try:
                    worker = self._spawn()
                except OSError as exc:
                    self._died(None, f"cannot start a worker: {exc}")
                    if self._shutdown.wait(max(0.0, self._restart_at - time.monotonic())):
                        return
                    continue
            try:
                worker.wait_ready(READY_TIMEOUT_S)
                # A spare was started before the last death: it learns the calls not to run.
                with self._cond:
                    poison = json.dumps(self._poison).encode()
                worker.exchange(REFUSE_CALLS + poison)
                self._replay(worker)
            except WorkerDied:
                return  # _on_exit reports it and schedules the next one
            with self._cond:
                if self._shutdown.is_set() or worker.exited.is_set():
                    return
                self._worker = worker
                self._cond.notify_all()
            log.info("worker %d (pid %d) serves plugin %s", worker.number, worker.pid,
                     self.config.name)
            self._write_status(worker_pid=worker.pid)
            self._keep_spare()
            return

    def _keep_spare(self) -> None:
        """Start a spare worker, which imports the plugin and waits: when the serving one
        dies, the spare takes over without an interpreter start (docs/reliability.md)."""
        with self._cond:
            if self._spare is not None or self._worker is None or not self.spare:
                return
        try:
            spare = self._spawn()
        except OSError as exc:
            log.warning("cannot start a spare worker for plugin %s: %s", self.config.name, exc)
            return
        with self._cond:
            self._spare = spare
        try:
            spare.wait_ready(READY_TIMEOUT_S)
        except WorkerDied:
            return  # _on_exit reports it and starts another
        log.info("spare worker %d (pid %d) of plugin %s is ready to take over", spare.number,
                 spare.pid, self.config.name)

    def _replay(self, worker: WorkerProcess) -> None:
        """Restart every recorded instance: sinks, sources, then functions.

        Functions come last: the host sends a function's pending call again to a new
        worker, and a call that killed the last worker must not be taken for the death of
        an instance being started.
        """
        order = {protocol.SINK: 0, protocol.SOURCE: 1, protocol.FUNC: 2}
        with self._cond:
            starts = sorted(self._started.items(), key=lambda kv: order[kv[1].control.plugin_type])
        for key, start in starts:
            try:
                answer = worker.exchange(start.raw)
            except WorkerDied:
                self._strike(key, start.control)
                raise
            if answer == protocol.OK:
                log.info("restored %s", start.control.label())
            else:
                log.error("could not restore %s: %s", start.control.label(),
                          answer.decode("utf-8", "replace"))

    def _on_exit(self, worker: WorkerProcess) -> None:
        """A worker exited (the waiter thread): report it, then bring in the next one."""
        with self._cond:
            self._live.discard(worker)
            was_spare = self._spare is worker
            if was_spare:
                self._spare = None
            if self._worker is worker:
                self._worker = None
            serving = [s.control.label() for s in self._started.values()]
        worker.close()
        running = inflight.pending(worker.calls_fd, list(self.config.functions))
        _close(worker.calls_fd)
        unfinished = sinkboard.unfinished(worker.sinks_fd)
        _close(worker.sinks_fd)
        if self._shutdown.is_set():
            return
        lived = time.monotonic() - worker.started_at
        how = worker.exit_description()
        if was_spare:
            self._spare_died(worker, how, lived)
            return
        # First, before anything slower: eKuiper's sink waits for these acks.
        lost = "".join(self._answer_lost_frames(unfinished, how))
        lines = " | ".join(worker.last_lines()) or "(nothing)"
        with self._cond:
            # The host sends those calls again to the next worker, and a source may send
            # the record again: later workers answer them with an error (see inflight).
            for name, (size, crc) in running.items():
                known = self._poison.setdefault(name, [])
                known[:] = [*known, [size, crc, how]][-POISON_KEPT:]
            spare, self._spare = self._spare, None
        calling = "".join(f"; it was running a call of function {name!r}" for name in running)
        delay = self._died(worker, how, lived)
        loop = (f"; crash loop: {self._deaths} deaths in a row"
                if self._deaths >= CRASH_LOOP_DEATHS else "")
        self._restarts += 1
        self._hung += worker.proc.returncode == EXIT_HUNG
        self._write_status(worker_pid=None, restarts=self._restarts, last_cause=how,
                           last_death=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                           deaths_in_a_row=self._deaths,
                           crash_loop=self._deaths >= CRASH_LOOP_DEATHS, hung_calls=self._hung)
        # A spare already running takes over at once: no interpreter starts, so there is
        # nothing to back off from (the next spare starts only once a worker serves).
        if spare is not None and spare.exited.is_set():
            spare = None
        then = (f"worker {spare.number} (pid {spare.pid}), started in advance, takes over"
                if spare is not None else f"restarting it in {delay:g} s")
        log.error("worker %d (pid %d) of plugin %s died after %.1f s: %s; it served %s%s%s; "
                  "its last lines: %s; %s%s", worker.number, worker.pid,
                  self.config.name, lived, how, ", ".join(serving) or "nothing", calling,
                  lost, lines, then, loop)
        if spare is not None:
            self._start_worker(spare)
        elif not self._shutdown.wait(delay):
            self._start_worker()

    def _write_status(self, **changes: Any) -> None:
        """The plugin's status file (``status_file``), rewritten on a change only."""
        if self._status is None:
            # Imported here, as everywhere in the runtime: the state module's imports.
            from ...state import state_dir
            from ...status_file import StatusFile, status_path

            self._status = StatusFile(status_path(state_dir(), self.config.name))
            changes = {"mode": "supervised", "pid": os.getpid(), "restarts": 0,
                       "hung_calls": 0, "crash_loop": False, **changes}
        self._status.update(**changes)

    def _spare_died(self, worker: WorkerProcess, how: str, lived: float) -> None:
        """A spare died before it served: report it, start another after the back-off."""
        lines = " | ".join(worker.last_lines()) or "(nothing)"
        delay = self._died(worker, how, lived)
        log.error("spare worker %d (pid %d) of plugin %s died after %.1f s, before it served: "
                  "%s; its last lines: %s; starting another in %g s", worker.number,
                  worker.pid, self.config.name, lived, how, lines, delay)
        if not self._shutdown.wait(delay):
            self._keep_spare()

    def _answer_lost_frames(self, unfinished: list[sinkboard.Unfinished],
                            how: str) -> list[str]:
        """Send an error ack for each frame a dead worker owed one; say what was lost.

        With ``requireAck`` eKuiper sends a sink's next frame only after the ack of the
        last one, so a sink owes at most one; eKuiper takes the error as an IO error, which
        its ``resendInterval`` or cache resends. Without acks nobody waits: the frames are
        only counted in the log.
        """
        with self._cond:
            started = {key: self._started.get(key) for key in (u.key for u in unfinished)}
        said = []
        for lost in unfinished:
            start = started.get(lost.key)
            if start is None or start.control.plugin_type != protocol.SINK:
                continue  # stopped meanwhile: eKuiper no longer waits for it
            label = start.control.label()
            if not lost.require_ack:
                said.append(f"; {label} lost {lost.frames} frame(s) it had received but not "
                            "collected")
            elif self._send_error_ack(lost.key, start.control, how):
                said.append(f"; {label} was collecting a frame: eKuiper got an error ack "
                            "for it")
            else:
                said.append(f"; {label} was collecting a frame whose ack could not be sent")
        return said

    def _send_error_ack(self, key: str, control: protocol.Control, how: str) -> bool:
        url = protocol.sink_ack_url(control.meta)
        if not os.path.exists(protocol.url_path(url)):
            return False  # eKuiper closed the rule's ack channel: nobody waits
        error = protocol.encode_ack(f"the plugin's worker process died ({how}) before this "
                                    "frame was collected; it was not written")
        # A socket of its own, dialled briefly (the next worker waits for this): the host
        # listens there for as long as the rule runs.
        sock = pynng.Push0(send_timeout=self.options.send_timeout_ms)
        try:
            channels.dial(sock, url, ACK_DIAL_S, "sink's ack channel")
            sock.send(error)
        except (ConnectionError, pynng.NNGException) as exc:
            sock.close()
            log.warning("cannot send %s an error ack: %s", control.label(), exc)
            return False
        with self._cond:
            old = self._ack_sockets.pop(key, None)
            self._ack_sockets[key] = sock
        if old is not None:
            old.close()
        return True

    def _died(self, worker: WorkerProcess | None, how: str, lived: float = 0.0) -> float:
        """Count a death in a row; the back-off before the next worker."""
        with self._cond:
            if lived >= STABLE_S:
                self._deaths = 0
                self._strikes.clear()
            self._deaths += 1
            self._last_death = how
            delay: float = min(BACKOFF_FIRST_S * 2.0 ** (self._deaths - 1), BACKOFF_MAX_S)
            self._restart_at = time.monotonic() + delay
            self._cond.notify_all()
        return delay

    def _strike(self, key: str, control: protocol.Control) -> None:
        """The worker died while ``key`` was starting: after the third time, drop it.

        Not functions: their start runs no plugin code beyond the factory, and a call in
        flight is a likelier cause of a death during it.
        """
        if control.plugin_type == protocol.FUNC:
            return
        with self._cond:
            self._strikes[key] = strikes = self._strikes.get(key, 0) + 1
            if strikes < STRIKES_TO_DROP:
                return
            self._started.pop(key, None)
            self._dropped[key] = (f"the plugin's worker process died during each of its last "
                                  f"{strikes} starts")
        log.error("no longer starting %s: the worker died during each of its last %d starts; "
                  "fix the plugin, then stop and start the rule", control.label(), strikes)

    def _ready_worker(self) -> WorkerProcess | str:
        """The serving worker, waiting for one being started; else why there is none."""
        give_up = time.monotonic() + COMMAND_WAIT_S
        with self._cond:
            while self._worker is None:
                now = time.monotonic()
                if self._shutdown.is_set():
                    return "the plugin is shutting down"
                if self._restart_at > give_up:
                    return (f"the plugin's worker process is restarting after {self._deaths} "
                            f"deaths in a row (last: {self._last_death}); next try in "
                            f"{self._restart_at - now:.1f} s")
                if now >= give_up:
                    return (f"the plugin's worker process did not become ready within "
                            f"{COMMAND_WAIT_S:g} s")
                self._cond.wait(min(0.1, give_up - now))
            return self._worker

    # -- commands

    def handle_command(self, data: bytes) -> bytes:
        """Forward one of eKuiper's commands to the worker and relay its answer."""
        return answer_command(data, lambda command: self._forward(command, data))

    def _forward(self, command: protocol.Command, data: bytes) -> bytes:
        control, start = command.control, command.cmd == protocol.CMD_START
        key = control.instance_key
        with self._cond:
            dropped = self._dropped.get(key) if start else self._dropped.pop(key, None)
        if start and dropped:
            return refusal(command.cmd, control, f"{dropped}; stop and start the rule once "
                           "the plugin is fixed")
        # A function's start runs no plugin code beyond its factory, so a worker that dies
        # during one was killed by a call in flight; an error answer here would fail the
        # function for good (seen on a real eKuiper: a replayed start answered with an
        # error sets the plugin's status to error), so it is tried again on the next one.
        attempts = FUNCTION_START_ATTEMPTS if start and control.plugin_type == protocol.FUNC else 1
        for attempt in range(1, attempts + 1):
            worker = self._ready_worker()
            if isinstance(worker, str):
                if start:
                    return refusal(command.cmd, control, worker)
                return self._forget(control, key)
            try:
                answer, served = worker.exchange(data), worker
                break
            except WorkerDied:
                worker.exited.wait(1.0)
                if not start:
                    return self._forget(control, key)
                if attempt == attempts:
                    self._strike(key, control)
                    return refusal(command.cmd, control, "the plugin's worker process died "
                                   f"while starting it ({worker.exit_description()}); a new "
                                   "one is starting")
                with self._cond:  # wait until the death is counted, then for the next one
                    while self._worker is worker:
                        self._cond.wait(0.1)
        if answer != protocol.OK:
            served.flush_output()  # the worker's traceback first, as in one process
        if answer == protocol.OK:
            with self._cond:
                if start:
                    self._started[key] = Started(control, data)
                elif control.plugin_type != protocol.FUNC:
                    self._started.pop(key, None)
            if not start:
                self._close_ack_socket(key)
        return answer

    def _close_ack_socket(self, key: str) -> None:
        with self._cond:
            sock = self._ack_sockets.pop(key, None)
        if sock is not None:
            sock.close()

    def _forget(self, control: protocol.Control, key: str) -> bytes:
        """A stop with no worker: the instance runs nowhere; forget it, as the worker would."""
        try:
            self.config.get(control.plugin_type, control.symbol_name)
        except LookupError as exc:
            return refusal("stop", control, str(exc))
        if control.plugin_type != protocol.FUNC:
            with self._cond:
                self._started.pop(key, None)
            self._close_ack_socket(key)
        log.info("stopped %s (no worker was running it)", control.label())
        return protocol.OK

