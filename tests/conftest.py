"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os

import pytest

from benchmarks.official_sdk import OfficialSDKUnavailable, official_python
from ekuiper_sdk.hosts import GENERATIONS, HostGeneration


@pytest.fixture(scope="session")
def official_sdk_python() -> str:
    """A Python that runs the official ``ekuiper`` SDK, in an environment of its own.

    Our own tests run on the pynng that pip resolves for ekuiper-sdk alone; the official
    SDK, which pins pynng 0.8.1, is only ever run in its own interpreter. Without a
    package index the side-by-side tests skip, except in CI, where they must run.
    """
    try:
        return official_python()
    except OfficialSDKUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))


@pytest.fixture(params=GENERATIONS, ids=[generation.name for generation in GENERATIONS])
def host_generation(request: pytest.FixtureRequest) -> HostGeneration:
    """Each eKuiper generation in turn, for the control, ack and tools tests that must
    hold on every one (``ekuiper_sdk.hosts``)."""
    generation: HostGeneration = request.param
    return generation


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--kuiperd", default=None, metavar="PATH",
                     help="a kuiperd binary for the tests that start a private eKuiper "
                          "(tests/benchmarks; default: $EKUIPER_KUIPERD; without it they skip)")
