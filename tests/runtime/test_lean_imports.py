"""pynng's asyncio helper is loaded only when something awaits a pynng socket."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_runtime_loads_no_asyncio_and_pynng_async_still_works() -> None:
    out = run("""
        import sys
        import ekuiper_sdk.runtime.control
        import pynng
        print("asyncio" in sys.modules, "ssl" in sys.modules)
        import asyncio

        async def echo():
            with pynng.Pair0(listen="inproc://lean") as a, pynng.Pair0(dial="inproc://lean") as b:
                await b.asend(b"hi")
                return await a.arecv()

        print(asyncio.run(echo()))
    """)
    assert out.splitlines() == ["False False", "b'hi'"]


def test_a_plugin_that_imported_pynng_first_is_left_as_it_is() -> None:
    out = run("""
        import sys
        import pynng
        from ekuiper_sdk.runtime.lean_imports import defer_pynng_asyncio
        print(defer_pynng_asyncio(), "asyncio" in sys.modules)
    """)
    assert out == "False True"
