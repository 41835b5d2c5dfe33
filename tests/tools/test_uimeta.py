"""``pack`` writes the UI metadata files the author did not: from the docstrings, the
declared configuration, the yaml defaults and the signatures, in eKuiper's shapes."""

from __future__ import annotations

import io
import json
import textwrap
import zipfile
from pathlib import Path
from typing import Any

from helpers.ekuiper_meta_shapes import CHECKS
from helpers.fake_ekuiper_rest import FakeEkuiper
from helpers.pack_helpers import manifest_of, new_plugin, unique_name

from ekuiper_sdk.tools import pack as pack_mod
from ekuiper_sdk.tools import rest
from ekuiper_sdk.tools.validate import validate


def _metadata(zip_path: Path) -> dict[str, Any]:
    with zipfile.ZipFile(zip_path) as zf:
        return {n: json.loads(zf.read(n)) for n in zf.namelist()
                if n.endswith(".json") and "/" in n}


def test_init_project_gets_every_file_in_ekuipers_shape_and_installs_them(
        tmp_path: Path) -> None:
    plugin = new_plugin(tmp_path)
    assert not list(plugin.glob("*/*.json")), "init writes no metadata by hand any more"
    m = manifest_of(plugin)
    out = tmp_path / "p.zip"
    pack_mod.pack(plugin, out)
    with FakeEkuiper(tmp_path / "ek") as ek:
        rest.install_zip(rest.RestClient(ek.url, timeout=30), out, log=io.StringIO())
        for kind in ("sources", "sinks", "functions"):
            [symbol] = m[kind]
            for base in ("etc", "data"):
                data = json.loads((ek.root / base / kind / f"{symbol}.json").read_text())
                assert CHECKS[kind](data) == [], (kind, data)
    files = _metadata(out)
    [source] = m["sources"]
    [interval] = files[f"sources/{source}.json"]["properties"]["default"]
    assert (interval["name"], interval["type"], interval["default"]) == ("interval", "int", 1000)
    assert interval["hint"]["en_US"] == "Milliseconds between two tuples"
    [sink] = m["sinks"]
    [prefix] = files[f"sinks/{sink}.json"]["properties"]
    assert (prefix["name"], prefix["type"], prefix["optional"]) == ("prefix", "string", True)
    [function] = m["functions"]
    [fn] = files[f"functions/{function}.json"]["functions"]
    assert fn["example"] == f"{function}(text)" and fn["hint"]["en_US"] == \
        "The text in upper case."


DECORATED = textwrap.dedent('''
    from dataclasses import dataclass, field
    from typing import Literal
    from ekuiper_sdk import Plugin

    app = Plugin("NAME")

    @dataclass
    class ReadConf:
        url: str = field(metadata={"hint": "Where to read"})
        mode: Literal["fast", "safe"] = "safe"

    @app.source("NAME_read", config=ReadConf)
    def read(ctx, datasource, conf):
        """Reads records from a URL.

        More words that stay out of the description.
        """
        yield {"url": conf.url}

    @app.function("NAME_scale")
    def scale(ctx, x: float, factor: float = 2.0) -> float:
        """Multiplies x by factor."""
        return x * factor

    @app.function("NAME_total", aggregate=True)
    def total(values: list) -> float:
        return sum(values)

    if __name__ == "__main__":
        app.run()
''')


def _decorated(tmp_path: Path) -> tuple[Path, str]:
    name = unique_name("deco")
    plugin = tmp_path / name
    (plugin / "sources").mkdir(parents=True)
    (plugin / "main.py").write_text(DECORATED.replace("NAME", name))
    (plugin / "sources" / f"{name}_read.yaml").write_text(
        "default:\n  url: http://localhost\n  retries: 3\n  flags: []\n")
    (plugin / f"{name}.json").write_text(json.dumps({
        "version": "1", "language": "python", "executable": "main.py",
        "sources": [f"{name}_read"], "functions": [f"{name}_scale", f"{name}_total"]}))
    return plugin, name


def test_decorated_code_says_descriptions_properties_and_arguments(tmp_path: Path) -> None:
    plugin, name = _decorated(tmp_path)
    out = tmp_path / "d.zip"
    pack_mod.pack(plugin, out)
    files = _metadata(out)
    for path, data in files.items():
        assert CHECKS[path.split("/")[0]](data) == [], path
    source = files[f"sources/{name}_read.json"]
    assert source["about"]["description"]["en_US"] == "Reads records from a URL."
    props = {p["name"]: p for p in source["properties"]["default"]}
    assert list(props) == ["url", "mode", "retries", "flags"]
    # the yaml's default wins over the code's; the yaml's own keys follow
    assert (props["url"]["default"], props["url"]["optional"]) == ("http://localhost", False)
    assert props["url"]["hint"]["en_US"] == "Where to read"
    assert (props["mode"]["control"], props["mode"]["values"]) == ("select", ["fast", "safe"])
    assert (props["retries"]["type"], props["flags"]["type"]) == ("int", "list_string")
    [scale] = files[f"functions/{name}_scale.json"]["functions"]
    assert scale["example"] == f"{name}_scale(x)"
    assert [(a["name"], a["type"], a["optional"]) for a in scale["args"]] == \
        [("x", "float", False), ("factor", "float", True)]
    assert scale["return"]["type"] == "float"
    [total] = files[f"functions/{name}_total.json"]["functions"]
    assert total["aggregate"] is True


def test_the_authors_files_win_and_validate_warns_for_the_missing_ones(tmp_path: Path) -> None:
    plugin = new_plugin(tmp_path)
    m = manifest_of(plugin)
    [sink] = m["sinks"]
    own = b'{"about": {"trial": true}, "properties": []}\n'
    (plugin / "sinks").mkdir()
    (plugin / "sinks" / f"{sink}.json").write_bytes(own)
    warnings = [str(w) for w in validate(plugin).warnings]
    missing = [w for w in warnings if "pack` will write it" in w]
    assert len(missing) == 2 and all("\n" not in w for w in missing)
    assert not any(f"{sink}.json" in w for w in missing)
    out = tmp_path / "own.zip"
    result = pack_mod.pack(plugin, out)
    assert not any("pack` will write it" in str(w) for w in result.warnings)
    with zipfile.ZipFile(out) as zf:
        assert zf.read(f"sinks/{sink}.json") == own


def test_without_the_code_the_files_come_from_names_and_yaml(tmp_path: Path) -> None:
    plugin = new_plugin(tmp_path)
    out = tmp_path / "nc.zip"
    pack_mod.pack(plugin, out, check_code=False)
    files = _metadata(out)
    assert len(files) == 3
    for path, data in files.items():
        assert CHECKS[path.split("/")[0]](data) == [], path
