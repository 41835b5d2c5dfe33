"""pytest fixtures for testing portable plugins against :mod:`ekuiper_sdk.testing`.

Installed with the package and loaded by pytest on its own (entry point ``ekuiper_sdk``):

    def test_revert(plugin_host_factory, unique_name):
        name = unique_name()
        host = plugin_host_factory(name, "plugins/pysam/pysam.py", env={"PLUGIN_NAME": name})
        assert host.function("revert").call("abc") == "cba"

Every IPC path lives in ``/tmp``, shared by every test run on the machine, so tests use
names from ``unique_name`` for plugins, rules and functions.
"""

from __future__ import annotations

import itertools
import os
import random
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Callable

import pytest

if TYPE_CHECKING:
    from .testing import PluginHost
    from .testing.real import RealEkuiper

_counter = itertools.count(1)


def make_unique_name(prefix: str = "t") -> str:
    """A name no other test, process or run on this machine uses at the same time.

    Process id, a counter and random bits: short, since IPC paths are limited to 107 bytes.

    >>> make_unique_name() != make_unique_name()
    True
    """
    return f"{prefix}{os.getpid()}_{next(_counter)}_{random.getrandbits(24):06x}"


@pytest.fixture
def unique_name() -> Callable[..., str]:
    """A function returning a new unique name on each call, like ``t4242_7_a1b2c3``.

    Example::

        def test_two_rules(unique_name):
            rule_a, rule_b = unique_name(), unique_name("r")
    """
    return make_unique_name


@pytest.fixture
def plugin_host_factory() -> Iterator[Callable[..., PluginHost]]:
    """A function ``(name, executable, **options) -> PluginHost``, already started.

    Options are those of :class:`~ekuiper_sdk.testing.PluginHost`. Every host made is
    closed at teardown (processes killed, socket files removed).

    Example::

        def test_source(plugin_host_factory, unique_name):
            name = unique_name()
            host = plugin_host_factory(name, "main.py", env={"PLUGIN_NAME": name})
            assert host.start_source("pyjson", unique_name()).recv().message
    """
    from .testing import PluginHost

    hosts: list[PluginHost] = []

    def factory(name: str, executable: str | os.PathLike[str],
                **options: Any) -> PluginHost:
        host = PluginHost(name, executable, **options)
        hosts.append(host)
        host.start()
        return host

    yield factory
    for host in reversed(hosts):
        host.close()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ekuiper_sdk")
    group.addoption("--ekuiper-url", default=None, metavar="URL",
                    help="a running eKuiper's REST API for the tests that use the "
                         "ekuiper_server fixture (default: $EKUIPER_URL; without it they skip)")
    group.addoption("--ekuiper-python", default=None, metavar="X.Y",
                    help="that eKuiper's Python version, for the vendored wheels "
                         "(default: $EKUIPER_PYTHON_VERSION or 3.12)")
    group.addoption("--ekuiper-capture", default=None, metavar="NAME",
                    help="the name of the capture sink plugin installed there (default: "
                         "$EKUIPER_CAPTURE_PLUGIN or sdkcapture<port>)")
    group.addoption("--snapshot-update", action="store_true", default=False,
                    help="write the snapshots ekuiper_sdk.testing.assert_snapshot compares "
                         "with, instead of comparing")


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--snapshot-update", default=False):
        from .testing.snapshot import UPDATE_ENV

        os.environ[UPDATE_ENV] = "1"


@pytest.fixture
def ekuiper_server(request: pytest.FixtureRequest) -> Iterator[RealEkuiper]:
    """A :class:`~ekuiper_sdk.testing.RealEkuiper` on the server that
    ``--ekuiper-url`` or ``EKUIPER_URL`` names; the test skips without one. Whatever the
    test creates there is removed at teardown, also when it fails.

    Example::

        def test_on_ekuiper(ekuiper_server):
            ekuiper_server.install("plugins/mine")
    """
    from .testing.real import CAPTURE_ENV, URL_ENV, RealEkuiper

    url = request.config.getoption("--ekuiper-url") or os.environ.get(URL_ENV)
    if not url:
        pytest.skip(f"no real eKuiper: pass --ekuiper-url or set {URL_ENV}")
    python = (request.config.getoption("--ekuiper-python")
              or os.environ.get("EKUIPER_PYTHON_VERSION") or "3.12")
    capture = request.config.getoption("--ekuiper-capture") or os.environ.get(CAPTURE_ENV)
    server = RealEkuiper(url, python_version=python, capture_plugin=capture or None)
    try:
        yield server
    finally:
        server.close()
