"""Running a plugin's ``async def`` code from the runtime's threads.

The runtime is threaded: each source and sink instance has threads of its own and each
function name has one, so user code never runs on the control thread. Async code gets
an event loop per instance:

- an async source runs its loop on the source's own thread, for as long as it runs;
- an async sink or function gets a loop in a thread of its own, started on its first
  async call and kept until it closes, so tasks it starts in the background (keepalives,
  a client's reader) keep running between two records. Handing a call to that thread
  costs about a tenth of a millisecond.
"""

from __future__ import annotations

import concurrent.futures
import inspect
import logging
import threading
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Callable, TypeVar

if TYPE_CHECKING:
    # asyncio is imported where a loop is made: a plugin with no async code never loads
    # it (about 6 MiB; see runtime/lean_imports.py).
    import asyncio

from ..errors import CallTimeout
from ..runtime.watchdog import AWAITING

T = TypeVar("T")

log = logging.getLogger("ekuiper_sdk")

#: How long closing a loop waits for its remaining tasks to finish after cancelling them.
LOOP_CLOSE_WAIT_S = 2.0


def is_async_callable(fn: Any) -> bool:
    """True for an ``async def`` function or method, or an object whose ``__call__`` is one.

    >>> async def f() -> None: ...
    >>> is_async_callable(f), is_async_callable(print)
    (True, False)
    """
    if inspect.iscoroutinefunction(fn):
        return True
    # An instance whose class defines ``async def __call__``.
    return callable(fn) and inspect.iscoroutinefunction(type(fn).__call__)


def finish_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what is still running on a stopped loop, let it clean up, and close the loop."""
    import asyncio

    try:
        pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.wait(pending, timeout=LOOP_CLOSE_WAIT_S))
        loop.run_until_complete(loop.shutdown_asyncgens())
    except Exception:  # noqa: BLE001 - clean-up is best effort; the loop is closed anyway
        log.debug("closing an event loop failed", exc_info=True)
    finally:
        loop.close()


class LoopThread:
    """An asyncio event loop running in a daemon thread, serving one instance's calls.

    >>> async def double(x: int) -> int: return 2 * x
    >>> loop = LoopThread("example"); loop.call(double(21))
    42
    >>> loop.close()
    """

    def __init__(self, name: str) -> None:
        import asyncio

        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=f"asyncio {name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import asyncio

        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            finish_loop(self.loop)

    def call(self, awaitable: Awaitable[T], timeout: float | None = None) -> T:
        """Run ``awaitable`` on the loop and wait for its result (or exception).

        On ``timeout`` the task is cancelled and :class:`CallTimeout` is raised.
        """
        import asyncio

        future = asyncio.run_coroutine_threadsafe(_await(awaitable), self.loop)
        # A call stuck in the coroutine is found by the watchdog where it is suspended.
        me = threading.get_ident()
        AWAITING[me] = awaitable
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise CallTimeout(f"did not finish within {timeout:g} s") from None
        finally:
            AWAITING.pop(me, None)

    def close(self, wait: float = LOOP_CLOSE_WAIT_S + 1.0) -> None:
        """Stop the loop after cancelling its tasks; returns once it is closed (bounded)."""
        if self.loop.is_closed():
            return
        try:
            self.loop.call_soon_threadsafe(self.loop.stop)
        except RuntimeError:
            return  # closed in the meantime
        if threading.current_thread() is not self._thread:
            self._thread.join(wait)


async def _await(awaitable: Awaitable[T]) -> T:
    return await awaitable


def call_maybe_async(loop_for: Callable[[], LoopThread], fn: Callable[..., Any],
                     *args: Any) -> Any:
    """Call ``fn``; if it returned an awaitable, run that on the instance's loop.

    Checking the result, not the function, also covers a plain function that returns a
    coroutine, and a callable object whose ``__call__`` is async.
    """
    result = fn(*args)
    # Most calls return None; skipping the awaitable check for them is a tenth of a
    # decoded sink record's cost.
    if result is not None and inspect.isawaitable(result):
        return loop_for().call(result)
    return result
