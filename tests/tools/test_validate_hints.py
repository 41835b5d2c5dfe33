"""``validate`` speaks the plugin's own style, locates a manifest's JSON syntax error, keeps
the ``warning: `` mark out of ``--json``; ``install --name`` of a zip of another plugin."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from helpers.pack_helpers import (
    manifest_of,
    new_plugin,
    unique_name,
    write_manifest,
    zip_folder,
)

from ekuiper_sdk.errors import PackagingError
from ekuiper_sdk.tools import manifest
from ekuiper_sdk.tools import validate as validate_mod
from ekuiper_sdk.tools.cli import main

DECORATED = '''
from ekuiper_sdk import Plugin

app = Plugin(NAME)

@app.function("clamp_FN")
def clamp(x: float, lo: float, hi: float) -> float:
    return max(lo, min(hi, x))

if __name__ == "__main__":
    app.run()
'''


def decorator_plugin(tmp_path: Path, code_name: str | None = None) -> Path:
    name = unique_name("dec")
    folder = tmp_path / name
    folder.mkdir()
    (folder / "main.py").write_text(f"NAME = {code_name or name!r}\n"
                                    + DECORATED.replace("FN", name))
    (folder / f"{name}.json").write_text(json.dumps({
        "version": "1.0.0", "language": "python", "executable": "main.py",
        "functions": [f"clamp_{name}"]}))
    return folder


def problems(folder: Path) -> list[str]:
    """The errors (the warnings about UI metadata files that pack writes are not hints)."""
    return [str(p) for p in validate_mod.validate(folder).errors]


def test_decorator_plugins_get_decorator_hints(tmp_path: Path) -> None:
    folder = decorator_plugin(tmp_path)
    assert problems(folder) == []
    data = manifest_of(folder)
    write_manifest(folder, dict(data, functions=[*data["functions"], "ghost"]))
    [line] = problems(folder)
    assert "decorate a function with @app.function('ghost')" in line
    assert "PluginConfig" not in line

    renamed = decorator_plugin(tmp_path, code_name="other")
    [line] = problems(renamed)
    assert "Plugin names the plugin 'other'" in line
    assert f"use Plugin({renamed.name!r})" in line and "PluginConfig" not in line

    (renamed / "main.py").write_text("from ekuiper_sdk import Plugin\napp = Plugin('x')\n")
    [line] = problems(renamed)
    assert "call `app.run()`" in line and "PluginConfig" not in line


def test_class_plugins_keep_class_hints(tmp_path: Path) -> None:
    plugin = new_plugin(tmp_path)
    data = manifest_of(plugin)
    write_manifest(plugin, dict(data, functions=[*data["functions"], "ghost"]))
    [line] = problems(plugin)
    assert "add 'ghost' to the functions of PluginConfig" in line


def test_style_of_source_text() -> None:
    assert validate_mod.Style.of("svc = ekuiper_sdk.Plugin('a')").app == "svc"
    assert validate_mod.Style.of("@p.sink('s')\ndef s(ctx, data): ...").app == "p"
    assert validate_mod.Style.of("plugin.start(PluginConfig('a', {}, {}, {}))").app is None


def test_a_manifest_with_a_syntax_error_is_located(tmp_path: Path) -> None:
    plugin = new_plugin(tmp_path)
    path = plugin / f"{plugin.name}.json"
    path.write_text('{\n  "version": "1.0.0",\n  "language": "python"\n  "executable": "m.py"\n}')
    out, err = io.StringIO(), io.StringIO()
    assert main(["validate", str(plugin)], out=out, err=err) == 1
    first = err.getvalue().splitlines()[0]
    assert first == (f"error: {path}:4:3: is not valid JSON: Expecting ',' delimiter; "
                     f"fix the syntax")
    # named explicitly, it is read by load_manifest: the same report
    [line] = problems_named(plugin)
    assert line == f"{path}:4:3: is not valid JSON: Expecting ',' delimiter; fix the syntax"


def problems_named(plugin: Path) -> list[str]:
    return [str(p) for p in validate_mod.validate(plugin, name=plugin.name).problems]


def test_json_warnings_have_no_warning_prefix(tmp_path: Path) -> None:
    plugin = new_plugin(tmp_path)
    write_manifest(plugin, dict(manifest_of(plugin), sinks=[]))
    out = io.StringIO()
    assert main(["validate", str(plugin), "--json"], out=out, err=io.StringIO()) == 0
    warnings = json.loads(out.getvalue())["warnings"]
    assert warnings and all(not w.startswith("warning") for w in warnings)
    assert any("is defined but not declared" in w for w in warnings)


def test_install_name_of_another_plugins_zip(tmp_path: Path) -> None:
    plugin = new_plugin(tmp_path)
    zip_path = zip_folder(plugin, tmp_path / "p.zip")
    with pytest.raises(PackagingError) as info:
        manifest.read_zip_manifest(zip_path, "other")
    text = str(info.value.problems[0])
    assert f"--name other: the zip's manifest is {plugin.name}.json" in text
    assert f"install it without --name (as {plugin.name!r})" in text
    assert "top folder" not in text
    err = io.StringIO()
    code = main(["install", str(zip_path), "--name", "other", "--server",
                 "http://127.0.0.1:9"], out=io.StringIO(), err=err)
    assert code == 1 and "the zip's manifest is" in err.getvalue()


def test_an_import_the_server_will_not_have_is_one_line(tmp_path: Path) -> None:
    """PyYAML is installed here (a test requirement), so the developer's Python imports
    it; eKuiper's Python has only what requirements.txt names (and --vendor ships)."""
    from ekuiper_sdk.tools.validate import validate

    plugin = new_plugin(tmp_path)
    main_py = plugin / "main.py"
    future = "from __future__ import annotations\n"
    text = main_py.read_text()
    assert future in text
    main_py.write_text(text.replace(future, future + "import yaml  # noqa\n"))
    problems = [str(p) for p in validate(plugin).errors]
    assert len(problems) == 1, problems
    assert "imports 'yaml' (distribution PyYAML)" in problems[0]
    assert "No module named 'yaml'" in problems[0]
    assert problems[0].endswith(f"add PyYAML to {plugin / 'requirements.txt'}")
    assert "\n" not in problems[0]
    (plugin / "requirements.txt").write_text("pyyaml>=6\n")
    assert validate(plugin).ok
    # A dependency of a named distribution comes with it: jsonschema brings referencing.
    main_py.write_text(main_py.read_text().replace(future, future + "import referencing\n"))
    (plugin / "requirements.txt").write_text("pyyaml\njsonschema\n")
    assert validate(plugin).ok, [str(p) for p in validate(plugin).errors]


def test_keys_the_stream_overwrites_are_warned_about(tmp_path: Path) -> None:
    from ekuiper_sdk.tools.stream_keys import STREAM_PROPERTIES
    from ekuiper_sdk.tools.validate import validate

    plugin = tmp_path / "kw"
    (plugin / "sources").mkdir(parents=True)
    (plugin / "main.py").write_text(
        "from dataclasses import dataclass\n"
        "from ekuiper_sdk import Plugin\n"
        "app = Plugin('kw')\n"
        "@dataclass\n"
        "class Conf:\n"
        "    interval: float = 1.0\n"
        "    timestampFormat: str = ''\n"
        "@app.source('src', config=Conf)\n"
        "def src(ctx, datasource, conf: Conf):\n"
        "    yield {}\n"
        "if __name__ == '__main__':\n"
        "    app.run()\n")
    (plugin / "sources" / "src.yaml").write_text(
        "default:\n  interval: 1\n  delimiter: ';'   # never reaches configure\n"
        "other:\n  \"retainSize\": 3\n  # format: csv\n")
    (plugin / "kw.json").write_text(json.dumps({
        "version": "1", "language": "python", "executable": "main.py", "sources": ["src"]}))
    result = validate(plugin)
    assert result.ok, [str(p) for p in result.errors]
    found = [str(w).removeprefix("warning: ") for w in result.warnings
             if "overwritten by eKuiper" in w.message]
    assert len(found) == 3, found
    yaml_path = plugin / "sources" / "src.yaml"
    assert found[0].startswith(f"{yaml_path}:3: key 'delimiter' is overwritten by eKuiper "
                               "with the stream's DELIMITER property")
    assert found[1].startswith(f"{yaml_path}:5: key 'retainSize'") and "RETAIN_SIZE" in found[1]
    assert found[2].startswith(f"{plugin / 'main.py'}: source 'src': configuration field "
                               "'timestampFormat'") and "TIMESTAMP_FORMAT" in found[2]
    assert all("\n" not in line for line in found)
    # The list is eKuiper's (internal/topo/node/conf/source.go), nine keys.
    assert sorted(STREAM_PROPERTIES) == sorted(
        ["format", "key", "datasource", "schemaId", "delimiter", "retainSize",
         "strictValidation", "timestamp", "timestampFormat"])
