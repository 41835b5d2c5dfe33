"""Noticing a call into plugin code that has run past its limit, without waking an idle plugin.

A function's ``exec`` that never returns (native code stuck on a device, a deadlock in a
library) leaves eKuiper timing out every later call, since the function's one thread is
still inside the first; a ``collect`` that never returns stalls its rule. Nothing in the
process is dead, so nothing else notices. The watchdog does, at a price the data path does
not see:

- a call is marked by two attribute stores on its :class:`CallSlot` (when it started, on
  which thread) and a flag read; no lock, no notify, no allocation per call;
- the watchdog's thread waits with no timeout while no call is marked; the first call
  after a quiet period arms it (it sets an Event only when the flag flips), it looks every
  ``min(limit / 2, 1 s)`` while calls are in flight, and it disarms itself at a look that
  finds none in flight;
- when a call has run past its slot's limit, one log block names the stuck frame and holds
  every thread's stack, then the slot's ``on_stuck`` heals (a function serves its next
  calls from a new thread that answers them with one line; a supervised worker exits so a
  fresh one takes over).

Whether the call returned just as it was found stuck is settled without a lock on the
call's side: the call clears its start time and then reads the slot's ``stuck``, the
watchdog sets ``stuck`` and then reads the start time again, both under the interpreter's
lock, so at least one sees the other; the watchdog's decision (and the call's reading of
it, on the rare slow path) is taken under the watchdog's own lock.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

log = logging.getLogger("ekuiper_sdk")

T = TypeVar("T")

#: Seconds after which a call counts as stuck, for every symbol (``0`` turns it off); it
#: wins over the plugin's ``call_limit``, a symbol's own ``call_limit`` wins over it.
CALL_LIMIT_ENV = "EKUIPER_SDK_CALL_LIMIT"
#: The default limit, in multiples of the ``sendTimeout`` eKuiper passes on the command
#: line: every generation passes 1000 ms, so 5 s, which is also how long eKuiper waits for
#: a function's answer (its ``portable.recvTimeout``, per its source) before it times out.
SEND_TIMEOUT_MULTIPLE = 5
#: The longest time between two looks while calls are in flight.
MAX_LOOK_S = 1.0

_SDK_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_clock = time.monotonic
_ident = threading.get_ident


#: Per thread that waits for a coroutine running on an event loop's thread, that coroutine:
#: its frames, not the waiting thread's, tell where such a call is (set by
#: ``decorators/event_loops.py``; a dict's store and delete per async call).
AWAITING: dict[int, Any] = {}


def coroutine_frames(coro: Any) -> list[traceback.FrameSummary]:
    """The frames of a suspended coroutine and of what it awaits, outermost first.

    >>> async def inner(): pass
    >>> coro = inner(); [f.name for f in coroutine_frames(coro)]
    ['inner']
    >>> coro.close()
    """
    found = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            found.append(traceback.FrameSummary(frame.f_code.co_filename, frame.f_lineno,
                                                frame.f_code.co_name))
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return found


class Superseded(BaseException):
    """Raised in a call's thread when it returns after another thread took its place.

    A ``BaseException``, so that the runner's ``except Exception`` lets it through to the
    loop that owns the thread, which then ends without touching what the newer thread
    serves.
    """


def default_limit(send_timeout_ms: int) -> float:
    """The limit a plugin gets when nobody sets one, from eKuiper's ``sendTimeout``.

    >>> default_limit(1000)
    5.0
    """
    return SEND_TIMEOUT_MULTIPLE * send_timeout_ms / 1000.0


def parse_limit(value: object, what: str) -> float | None:
    """A limit in seconds (``0`` is off), or None when ``value`` is not one (logged).

    >>> parse_limit("2.5", "test"), parse_limit(0, "test")
    (2.5, 0.0)
    """
    if value is None or isinstance(value, bool):
        return None
    try:
        limit = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        limit = -1.0
    if limit != limit or limit < 0 or limit == float("inf"):  # NaN, negative, endless
        log.warning("ignoring %s %r: give the seconds after which a call counts as stuck "
                    "(0 turns the watchdog off)", what, value)
        return None
    return limit


def resolve_limit(symbol: object, plugin_limit: float | None, send_timeout_ms: int) -> float:
    """The limit of one symbol: its own ``call_limit``, else ``EKUIPER_SDK_CALL_LIMIT``,
    else the plugin's, else :func:`default_limit`.

    >>> class Slow:
    ...     call_limit = 60
    >>> resolve_limit(Slow(), 10.0, 1000), resolve_limit(object(), 10.0, 1000)
    (60.0, 10.0)
    """
    own = parse_limit(getattr(symbol, "call_limit", None), "call_limit")
    if own is not None:
        return own
    env = os.environ.get(CALL_LIMIT_ENV, "").strip()
    from_env = parse_limit(env, CALL_LIMIT_ENV) if env else None
    if from_env is not None:
        return from_env
    if plugin_limit is not None:
        return plugin_limit
    return default_limit(send_timeout_ms)


def own_frame(frame: Any) -> traceback.FrameSummary | None:
    """The innermost frame of the plugin's own code in ``frame``'s stack (a stack itself
    when given a list; not the SDK's, not an installed package's), else the innermost."""
    stack = frame if isinstance(frame, list) else traceback.extract_stack(frame)
    if not stack:
        return None
    own = [f for f in stack
           if not f.filename.startswith((_SDK_DIR, sys.prefix, sys.base_prefix))]
    return own[-1] if own else stack[-1]


def where_is(thread_id: int) -> str:
    """``file:line`` of the plugin's innermost frame on the thread ``thread_id``.

    >>> where_is(threading.get_ident()).startswith("<doctest")
    True
    """
    awaited = AWAITING.get(thread_id)
    if awaited is not None:  # an async call: where its coroutine is suspended
        found = own_frame(coroutine_frames(awaited))
        if found is not None:
            return f"{os.path.basename(found.filename)}:{found.lineno}"
    frame = sys._current_frames().get(thread_id)
    found = own_frame(frame) if frame is not None else None
    if found is None:
        return "an unknown place"
    return f"{os.path.basename(found.filename)}:{found.lineno}"


def stack_block(stuck_id: int, headline: str) -> str:
    """``headline``, then every thread's stack, the stuck thread's first and marked.

    >>> block = stack_block(threading.get_ident(), "demo")
    >>> block.splitlines()[0], "(the stuck call)" in block
    ('demo', True)
    """
    names = {t.ident: t.name for t in threading.enumerate()}
    frames = sys._current_frames()
    order = sorted(frames, key=lambda ident: ident != stuck_id)
    lines = [headline]
    for ident in order:
        mark = " (the stuck call)" if ident == stuck_id else ""
        lines.append(f"Thread {names.get(ident, '?')!r} ({ident}){mark}, most recent call last:")
        lines.extend(line.rstrip("\n")
                     for line in traceback.format_stack(frames[ident]))
        awaited = AWAITING.get(ident)
        if awaited is not None:
            lines.append("  ... waiting for a coroutine, suspended at, most recent await last:")
            lines.extend(line.rstrip("\n") for line in
                         traceback.format_list(coroutine_frames(awaited)))
    return "\n".join(lines)


@dataclass(frozen=True)
class Stuck:
    """A call found past its limit: where it was, since when (monotonic)."""

    what: str
    where: str
    since: float
    thread_id: int

    def line(self, name: str) -> str:
        """The one line later calls are answered with.

        >>> Stuck("Exec", "hang.py:3", time.monotonic() - 12.2, 1).line("f")
        'f is stuck in hang.py:3 since 12 s'
        """
        return f"{name} is stuck in {self.where} since {_clock() - self.since:.0f} s"


class CallSlot:
    """Where one thread's calls into plugin code are marked; see :meth:`call`.

    ``on_stuck(stuck)`` runs on the watchdog's thread once a call is found past ``limit``;
    with ``supersede``, that call's thread raises :class:`Superseded` when it returns.
    """

    __slots__ = ("since", "thread_id", "stuck", "limit", "what", "_dog", "_committed",
                 "_on_stuck", "_supersede")

    def __init__(self, dog: Watchdog, what: str, limit: float,
                 on_stuck: Callable[[Stuck], None] | None, supersede: bool) -> None:
        self.since = 0.0           # start of the call in flight, 0.0 when none
        self.thread_id = 0
        self.stuck: Stuck | None = None
        self.limit = limit
        self.what = what
        self._dog = dog
        self._committed = False
        self._on_stuck = on_stuck
        self._supersede = supersede

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)``, marked for the watchdog."""
        self.thread_id = _ident()
        self.since = _clock()
        dog = self._dog
        if not dog.armed:
            dog.arm()
        try:
            result = fn(*args)
        except BaseException:
            self._end()
            raise
        self._end()
        return result

    def _end(self) -> None:
        self.since = 0.0
        if self.stuck is not None:  # rare: the watchdog looked at this call
            self._returned()

    def _returned(self) -> None:
        with self._dog.lock:
            stuck, committed = self.stuck, self._committed
            self.stuck, self._committed = None, False
        if not committed or stuck is None:
            return  # it returned as the watchdog looked: nothing was done
        with self._dog.lock:
            self._dog.hung_now -= 1
        log.warning("%s returned after %.1f s; it was stuck in %s", self.what,
                    _clock() - stuck.since, stuck.where)
        self._dog.changed()
        if self._supersede:
            self._dog.forget(self)
            raise Superseded(self.what)

    def close(self) -> None:
        """Stop watching this slot (its thread ends)."""
        self._dog.forget(self)


class Watchdog:
    """The process's watcher of :class:`CallSlot` s; its thread starts on the first call.

    >>> dog = Watchdog()
    >>> slot = dog.slot("demo", limit=5.0)
    >>> slot.call(sum, [1, 2]), dog.armed
    (3, True)
    """

    def __init__(self) -> None:
        self.armed = False
        self.lock = threading.Lock()
        self._wake = threading.Event()
        self._slots: set[CallSlot] = set()
        self._thread: threading.Thread | None = None
        #: What to do once a call is stuck, before the slot's own healing (a supervised
        #: worker exits there); set by the runtime.
        self.on_stuck: Callable[[Stuck, str], None] | None = None
        self.hung_total = 0   # calls found stuck in this process
        self.hung_now = 0     # of which have not returned
        #: Called (no arguments) when a call is found stuck and when a stuck one returns:
        #: the runtime writes the plugin's status file then.
        self.on_change: Callable[[], None] | None = None

    def slot(self, what: str, limit: float,
             on_stuck: Callable[[Stuck], None] | None = None,
             supersede: bool = False) -> CallSlot:
        """A slot for one thread's calls; ``limit`` 0 gives one that is never found stuck."""
        slot = CallSlot(self, what, limit, on_stuck, supersede)
        if limit > 0:
            with self.lock:
                self._slots.add(slot)
        return slot

    def forget(self, slot: CallSlot) -> None:
        with self.lock:
            self._slots.discard(slot)

    def arm(self) -> None:
        """The first call after a quiet period: wake the watchdog (once per period)."""
        if self.armed:
            return
        self.armed = True
        if self._thread is None:
            with self.lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._watch, name="watchdog",
                                                    daemon=True)
                    self._thread.start()
        self._wake.set()

    def _watch(self) -> None:
        while True:
            self._wake.wait()  # no timeout: an idle plugin is never woken
            self._wake.clear()
            while self.armed:
                time.sleep(self._period())
                if not self.look():
                    # Disarm, then look again: a call that started in between read the
                    # flag before it was cleared, so this look sees it.
                    self.armed = False
                    if self.look():
                        self.armed = True

    def _period(self) -> float:
        with self.lock:
            limits = [s.limit for s in self._slots]
        return min([MAX_LOOK_S, *(limit / 2 for limit in limits)])

    def look(self, now: float | None = None) -> bool:
        """Find the calls past their limit; whether any call is in flight."""
        now = _clock() if now is None else now
        with self.lock:
            slots = list(self._slots)
        busy = False
        for slot in slots:
            since = slot.since
            if not since:
                continue
            busy = True
            if slot.stuck is None and now - since >= slot.limit:
                self._declare(slot, since, now)
        return busy

    def _declare(self, slot: CallSlot, since: float, now: float) -> None:
        where = where_is(slot.thread_id)
        stuck = Stuck(slot.what, where, since, slot.thread_id)
        with self.lock:
            slot.stuck = stuck
            if slot.since != since:  # it returned (or another call began) meanwhile
                slot.stuck = None
                return
            slot._committed = True
            self.hung_total += 1
            self.hung_now += 1
        heal = self._heal_words(slot)
        log.error("%s", stack_block(slot.thread_id, (
            f"{slot.what} is stuck: it has run for {now - since:.1f} s (limit {slot.limit:g} s), "
            f"in {where}; {heal} (a call that may take this long needs a higher call_limit); "
            "every thread's stack follows")))
        self.changed()
        if self.on_stuck is not None:
            self.on_stuck(stuck, slot.what)
        if slot._on_stuck is not None:
            slot._on_stuck(stuck)

    def stuck_now(self) -> list[str]:
        """The calls stuck now, each as ``<what> in <file:line>``."""
        with self.lock:
            found = [s.stuck for s in self._slots if s.stuck is not None and s._committed]
        return [f"{stuck.what} in {stuck.where}" for stuck in found if stuck is not None]

    def changed(self) -> None:
        listener = self.on_change
        if listener is not None:
            try:
                listener()
            except Exception:  # noqa: BLE001 - the status is a convenience
                log.exception("writing the plugin's status failed")

    def _heal_words(self, slot: CallSlot) -> str:
        if self.on_stuck is not None:
            return "this worker process exits and a fresh one takes over"
        if slot._supersede:
            return "later calls are answered at once with an error until it returns"
        return "it is left to return"


#: The process's watchdog: one thread for every slot, started by the first call.
WATCHDOG = Watchdog()
