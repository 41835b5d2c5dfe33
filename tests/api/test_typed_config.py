"""Declared configuration (ekuiper_sdk.typed_config): conversion rules, and a real plugin
process whose source and sink receive it checked and converted, or refuse it in one line."""

from __future__ import annotations

import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, List, Literal, Optional, TypedDict  # noqa: UP035

import pytest

from ekuiper_sdk import Plugin
from ekuiper_sdk.errors import ConfigError
from ekuiper_sdk.testing import HostError, wait_for
from ekuiper_sdk.typed_config import convert, describe_fields


# typing.List and Optional: the hints are evaluated at run time, on Python 3.9 too.
@dataclass
class Conf:
    url: str
    retries: int = 3
    ratio: float = 0.5
    verbose: bool = False
    mode: Literal["up", "down"] = "up"
    tags: List[str] = field(default_factory=list)  # noqa: UP006
    limit: Optional[int] = None  # noqa: UP045


class Typed(TypedDict, total=False):
    topic: str
    qos: int


def test_values_are_converted_as_yaml_and_json_give_them() -> None:
    got = convert(Conf, {"url": "http://x", "retries": "5", "ratio": 1, "verbose": "true",
                         "mode": "down", "tags": ["a", 2], "limit": 7.0, "sendSingle": True})
    assert got == Conf("http://x", 5, 1.0, True, "down", ["a", "2"], 7)
    assert convert(Conf, {"url": "u"}) == Conf("u")
    assert convert(Typed, {"qos": "1"}) == {"qos": 1}


@pytest.mark.parametrize("conf, message", [
    ({}, "property 'url' is required; set it in the configuration"),
    ({"url": "u", "retries": "many"}, "property 'retries': expected an integer, got 'many'"),
    ({"url": "u", "verbose": "yes"}, "property 'verbose': expected true or false, got 'yes'"),
    ({"url": "u", "mode": "left"}, "property 'mode': expected one of 'up', 'down', got 'left'"),
    ({"url": "u", "tags": "a"}, "property 'tags': expected a list, got 'a'"),
    ({"url": ["u"]}, "property 'url': expected a string, got ['u']"),
])
def test_a_value_that_does_not_fit_is_named_in_one_line(conf: dict[str, Any],
                                                         message: str) -> None:
    with pytest.raises(ConfigError) as info:
        convert(Conf, conf)
    assert str(info.value) == message


def test_fields_are_described_with_ekuipers_types_and_controls() -> None:
    by_name = {f["name"]: f for f in describe_fields(Conf)}
    assert (by_name["url"]["type"], by_name["url"]["optional"]) == ("string", False)
    assert "default" not in by_name["url"]
    assert (by_name["retries"]["type"], by_name["retries"]["default"]) == ("int", 3)
    assert (by_name["verbose"]["type"], by_name["verbose"]["control"]) == ("bool", "radio")
    assert by_name["mode"]["control"] == "select" and by_name["mode"]["values"] == ["up", "down"]
    assert by_name["tags"]["type"] == "list_string"


def test_the_decorators_refuse_a_config_that_is_not_a_class() -> None:
    app = Plugin("p")
    with pytest.raises(TypeError, match="dataclass or TypedDict"):
        app.source("s", config=dict)


PLUGIN = textwrap.dedent('''
    from dataclasses import dataclass
    from ekuiper_sdk import Plugin, Sink

    app = Plugin("NAME")

    @dataclass
    class TickConf:
        interval: int = 10
        label: str = "t"

    @app.source("NAME_ticks", config=TickConf)
    def ticks(ctx, datasource, conf):
        yield {"interval": conf.interval, "kind": type(conf).__name__, "label": conf.label}

    @dataclass
    class OutConf:
        prefix: str

    class Out(Sink):
        config_type = OutConf

        def configure(self, conf):
            print("CONFIGURED", type(conf).__name__, conf.prefix, flush=True)

        def collect(self, ctx, data):
            pass

    app.sink("NAME_out")(Out)

    if __name__ == "__main__":
        app.run()
''')


@pytest.fixture
def typed_host(tmp_path: Path, plugin_host_factory: Callable[..., Any],
               unique_name: Callable[[str], str]) -> tuple[Any, str]:
    name = unique_name("typed")
    main = tmp_path / "main.py"
    main.write_text(PLUGIN.replace("NAME", name))
    (tmp_path / "sources").mkdir()
    (tmp_path / "sources" / f"{name}_ticks.yaml").write_text("default:\n  interval: 20\n")
    return plugin_host_factory(name, main, python=sys.executable), name


def test_a_source_gets_its_declared_configuration_converted(typed_host: tuple[Any, str]
                                                           ) -> None:
    host, name = typed_host
    src = host.start_source(f"{name}_ticks", "r1", config={"interval": "250"})
    [item] = src.take(1)
    assert item.message == {"interval": 250, "kind": "TickConf", "label": "t"}


def test_a_bad_property_fails_the_start_in_one_line_and_the_plugin_serves_on(
        typed_host: tuple[Any, str]) -> None:
    host, name = typed_host
    with pytest.raises(HostError) as info:
        host.start_source(f"{name}_ticks", "r2", config={"interval": "soon"})
    assert "property 'interval': expected an integer, got 'soon'" in str(info.value)
    assert "\n" not in str(info.value)
    with pytest.raises(HostError, match="property 'prefix' is required"):
        host.start_sink(f"{name}_out", "r3", config={})
    host.start_sink(f"{name}_out", "r4", config={"prefix": "> "})
    wait_for(lambda: any("CONFIGURED OutConf > " in line for line in host.output))
