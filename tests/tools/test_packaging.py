"""Manifest checks, validation, deterministic zips and the start-up layout."""

from __future__ import annotations

import json
import os
import stat
import zipfile
from pathlib import Path
from typing import Any

import pytest
from helpers import REPO
from helpers import ekuiper_install_rules as rules
from helpers.pack_helpers import (
    manifest_of,
    new_plugin,
    unique_name,
    write_manifest,
    zip_folder,
)

from ekuiper_sdk.errors import PackagingError
from ekuiper_sdk.tools import archive, manifest
from ekuiper_sdk.tools import pack as pack_mod
from ekuiper_sdk.tools import validate as validate_mod
from ekuiper_sdk.tools.archive import ZipEntry
from ekuiper_sdk.tools.manifest import Manifest

ROOT = REPO


def errors(result: validate_mod.Validation) -> list[str]:
    return [str(p) for p in result.errors]


# ---------------------------------------------------------------------------
# The schema


def test_the_root_schema_is_the_shipped_one() -> None:
    # The root file is what editors and raw URLs point at, the package copy what an
    # installed CLI reads; a symlink would be served as its target's path by raw URLs.
    assert (ROOT / "plugin.json").read_bytes() == manifest.schema_path().read_bytes()


def test_schema_is_a_valid_draft7_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft7Validator.check_schema(json.loads(manifest.schema_path().read_text()))


GOOD = {"version": "1.0.0", "language": "python", "executable": "main.py",
        "sources": ["src"], "sinks": ["snk"], "functions": ["fn"]}
CORPUS: list[Any] = [
    GOOD,
    {"version": "1", "language": "go", "executable": "bin/plugin", "functions": ["f_1"]},
    dict(GOOD, name="demo"),
    dict(GOOD, virtualEnvType="conda", env="py312"),
    dict(GOOD, name="other"),
    dict(GOOD, language="java"),
    {k: v for k, v in GOOD.items() if k != "language"},
    {k: v for k, v in GOOD.items() if k != "executable"},
    {k: v for k, v in GOOD.items() if k != "version"},
    dict(GOOD, executable="./main.py"),
    dict(GOOD, executable="/abs/main.py"),
    dict(GOOD, executable="lib/../main.py"),
    dict(GOOD, sources=[], sinks=[], functions=[]),
    {"version": "1", "language": "python", "executable": "main.py"},
    dict(GOOD, functions=["bad-name"]),
    dict(GOOD, functions=["9lives"]),
    dict(GOOD, sources=["a/b"]),
    dict(GOOD, sinks=["x", "x"]),
    dict(GOOD, sinks="x"),
    dict(GOOD, virtualEnvType="venv", env="e"),
    dict(GOOD, virtualEnvType="conda"),
    dict(GOOD, env="e"),
    dict(GOOD, function=["typo"]),
    dict(GOOD, version=1),
    ["not", "an", "object"],
]


@pytest.mark.parametrize("data", CORPUS, ids=range(len(CORPUS)))
def test_builtin_checks_agree_with_the_schema(data: Any) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(manifest.schema_path().read_text())
    schema_ok = jsonschema.Draft7Validator(schema).is_valid(data)
    # The schema cannot see the file name, so compare with the name the manifest claims.
    name = data.get("name", "demo") if isinstance(data, dict) else "demo"
    builtin = manifest.check_manifest(data, name, f"{name}.json")
    assert schema_ok == (not builtin), builtin


def test_manifest_problems_are_one_line_with_a_fix() -> None:
    for data in CORPUS[4:]:
        for problem in manifest.check_manifest(data, "demo", "demo.json"):
            text = str(problem)
            assert "\n" not in text and text.startswith("demo.json: ") and "; " in text, text


def test_typo_key_suggests_the_right_one() -> None:
    [problem] = manifest.check_manifest(dict(GOOD, function=["f"]), "demo")
    assert "did you mean 'functions'" in str(problem)


# ---------------------------------------------------------------------------
# validate


def test_a_new_project_validates_with_its_code_symbols(tmp_path: Path) -> None:
    plugin = new_plugin(tmp_path)
    result = validate_mod.validate(plugin)
    assert result.ok, errors(result)
    assert result.manifest is not None and result.defined is not None
    assert result.defined["functions"] == list(result.manifest.functions)


def test_missing_manifest(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text("")
    result = validate_mod.validate(tmp_path)
    [line] = errors(result)
    assert line.startswith(str(tmp_path)) and "no plugin manifest" in line


def test_manifest_one_folder_down_is_pointed_at(tmp_path: Path) -> None:
    plugin = new_plugin(tmp_path)
    [line] = errors(validate_mod.validate(tmp_path))
    assert f"did you mean {plugin}?" in line


def test_wrong_name_in_manifest(tmp_path: Path) -> None:
    plugin = new_plugin(tmp_path)
    data = manifest_of(plugin)
    write_manifest(plugin, dict(data, name="someone_else"))
    [line] = errors(validate_mod.validate(plugin))
    assert f"{plugin.name}.json" in line and "'someone_else'" in line


def test_wrong_name_in_code(tmp_path: Path) -> None:
    plugin = new_plugin(tmp_path)
    main = plugin / "main.py"
    main.write_text(main.read_text().replace(f'PluginConfig("{plugin.name}"',
                                             'PluginConfig("renamed"'))
    [line] = errors(validate_mod.validate(plugin))
    assert str(main) in line and f"use PluginConfig({plugin.name!r}" in line


def test_missing_source_yaml(tmp_path: Path) -> None:
    plugin = new_plugin(tmp_path)
    [yaml] = (plugin / "sources").glob("*.yaml")
    yaml.unlink()
    [line] = errors(validate_mod.validate(plugin))
    assert line.startswith(str(yaml)) and "missing" in line


def test_symbol_declared_but_not_defined(tmp_path: Path) -> None:
    plugin = new_plugin(tmp_path)
    data = manifest_of(plugin)
    data["functions"].append("ghost")
    write_manifest(plugin, data)
    [line] = errors(validate_mod.validate(plugin))
    assert "function 'ghost' is declared but" in line and "main.py" in line


def test_symbol_defined_but_not_declared_is_a_warning(tmp_path: Path) -> None:
    plugin = new_plugin(tmp_path)
    data = manifest_of(plugin)
    data["sinks"] = []
    write_manifest(plugin, data)
    result = validate_mod.validate(plugin)
    assert result.ok
    assert any("is defined but not declared" in str(w) for w in result.warnings)


def test_code_that_fails_to_load(tmp_path: Path) -> None:
    plugin = new_plugin(tmp_path)
    (plugin / "main.py").write_text("import no_such_module_xyz\n")
    [line] = errors(validate_mod.validate(plugin))
    assert "failed to list its symbols" in line and "no_such_module_xyz" in line


def test_code_that_never_lists_its_symbols_times_out(tmp_path: Path) -> None:
    plugin = new_plugin(tmp_path)
    (plugin / "main.py").write_text("import time\ntime.sleep(30)\n")
    m, _ = manifest.load_manifest(next(plugin.glob("*.json")))
    assert m is not None
    defined, problems = validate_mod.list_symbols(plugin, m, timeout=1.0)
    assert defined is None and "listed no symbols within 1 s" in str(problems[0])


def test_stray_and_nested_kind_files(tmp_path: Path) -> None:
    plugin = new_plugin(tmp_path)
    (plugin / "sources" / "other.yaml").write_text("default:\n")
    (plugin / "sinks" / "deep").mkdir(parents=True)
    (plugin / "sinks" / "deep" / "x.json").write_text("{}")
    result = validate_mod.validate(plugin)
    assert any("nested in sinks/" in line for line in errors(result))
    assert any("other.yaml" in str(w) for w in result.warnings)


def test_invalid_metadata_json(tmp_path: Path) -> None:
    plugin = new_plugin(tmp_path)
    [function] = manifest_of(plugin)["functions"]
    meta = plugin / "functions" / f"{function}.json"
    meta.parent.mkdir()
    meta.write_text("{oops")
    [line] = errors(validate_mod.validate(plugin))
    assert line.startswith(str(meta)) and "not valid JSON" in line


def test_executable_in_excluded_folder(tmp_path: Path) -> None:
    plugin = new_plugin(tmp_path)
    data = manifest_of(plugin)
    (plugin / "build").mkdir()
    (plugin / "build" / "main.py").write_text((plugin / "main.py").read_text())
    write_manifest(plugin, dict(data, executable="build/main.py"))
    assert any("exclude pattern" in line for line in errors(validate_mod.validate(plugin)))


# ---------------------------------------------------------------------------
# zip


def test_packed_zip_passes_the_install_rules(tmp_path: Path) -> None:
    plugin = new_plugin(tmp_path)
    (plugin / "lib" / "pkg").mkdir(parents=True)
    (plugin / "lib" / "pkg" / "helper.py").write_text("X = 1\n")
    (plugin / "__pycache__").mkdir()
    (plugin / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"junk")
    (plugin / ".git").mkdir()
    (plugin / ".git" / "HEAD").write_text("ref")
    (plugin / "state").mkdir()  # ctx.state's local files while developing
    (plugin / "state" / "offsets.msgpack").write_bytes(b"\x80")
    out = tmp_path / "out.zip"
    result = pack_mod.pack(plugin, out)
    assert result.zip_path == out
    assert rules.check(out, plugin.name, tmp_path / "ekuiper") == []
    names = zipfile.ZipFile(out).namelist()
    assert "lib/" in names and "lib/pkg/" in names and "lib/pkg/helper.py" in names
    assert not any(n.startswith(("tests/", "__pycache__", ".git", "state")) for n in names)
    installed = tmp_path / "ekuiper"
    [src] = manifest_of(plugin)["sources"]
    for base in ("etc", "data"):
        assert (installed / base / "sources" / f"{src}.yaml").is_file()
    target = installed / "plugins" / "portable" / plugin.name
    assert (target / "main.py").stat().st_mode & 0o100
    assert not (target / "sources").exists()


def test_zip_bytes_are_deterministic(tmp_path: Path) -> None:
    plugin = new_plugin(tmp_path)
    first = pack_mod.pack(plugin, tmp_path / "a.zip")
    for path in plugin.rglob("*"):
        os.utime(path, (1_000_000_000, 1_000_000_000))  # other times must not matter
    second = pack_mod.pack(plugin, tmp_path / "b.zip")
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()
    assert first.sha256 == second.sha256


def test_zip_bytes_ignore_entry_order_and_folder(tmp_path: Path) -> None:
    entries = [ZipEntry("b.txt", b"b"), ZipEntry("a/x.py", b"x"), ZipEntry("p.json", b"{}")]
    assert archive.zip_bytes(entries) == archive.zip_bytes(list(reversed(entries)))
    copy = tmp_path / "copy"
    plugin = new_plugin(tmp_path)
    import shutil
    shutil.copytree(plugin, copy)
    m = Manifest.from_dict(manifest_of(plugin), plugin.name)
    assert archive.zip_bytes(archive.plugin_entries(plugin, m)) == \
        archive.zip_bytes(archive.plugin_entries(copy, m))


def test_pack_refuses_an_invalid_plugin_and_writes_nothing(tmp_path: Path) -> None:
    plugin = new_plugin(tmp_path)
    data = manifest_of(plugin)
    data["sinks"].append("ghost")
    write_manifest(plugin, data)
    with pytest.raises(PackagingError) as info:
        pack_mod.pack(plugin, tmp_path / "x.zip")
    assert "sink 'ghost' is declared" in str(info.value)
    assert not (tmp_path / "x.zip").exists()


def test_pack_leaves_out_its_own_output(tmp_path: Path) -> None:
    plugin = new_plugin(tmp_path)
    out = plugin / "dist.zip"
    pack_mod.pack(plugin, out)
    pack_mod.pack(plugin, out)
    assert "dist.zip" not in zipfile.ZipFile(out).namelist()


def test_read_zip_manifest_names_a_top_folder(tmp_path: Path) -> None:
    plugin = new_plugin(tmp_path)
    bad = zip_folder(plugin, tmp_path / "bad.zip", top=plugin.name)
    with pytest.raises(PackagingError) as info:
        manifest.read_zip_manifest(bad)
    assert "inside a top folder" in str(info.value)
    # and eKuiper's model refuses it the way the issue describes
    with pytest.raises(rules.InstallFailure, match="missing or invalid json file"):
        rules.install(bad, plugin.name, tmp_path / "ek")


def test_install_rules_catch_a_missing_directory_entry(tmp_path: Path) -> None:
    # The model must be able to fail: a nested file with no folder entry breaks eKuiper.
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("p.json", json.dumps({"language": "python", "executable": "a/b/main.py",
                                          "functions": ["f"]}))
        zf.writestr("a/b/main.py", "")
    assert "no such file or directory" in rules.check(bad, "p", tmp_path / "ek")[0]


# ---------------------------------------------------------------------------
# layout


def test_layout_equals_what_an_install_of_the_zip_leaves(tmp_path: Path) -> None:
    plugin = new_plugin(tmp_path)
    layout = tmp_path / "image"
    result = pack_mod.pack(plugin, tmp_path / "p.zip", layout=layout)
    assert result.layout_dir == layout
    installed = tmp_path / "installed"
    rules.install(tmp_path / "p.zip", plugin.name, installed)
    assert rules.tree(layout) == rules.tree(installed)
    exe = layout / "plugins" / "portable" / plugin.name / "main.py"
    assert stat.S_IMODE(exe.stat().st_mode) == 0o755


def test_layout_replaces_an_older_plugin_folder(tmp_path: Path) -> None:
    plugin = new_plugin(tmp_path)
    layout = tmp_path / "image"
    stale = layout / "plugins" / "portable" / plugin.name / "stale.py"
    stale.parent.mkdir(parents=True)
    stale.write_text("")
    keep = layout / "plugins" / "portable" / "other" / "keep.py"
    keep.parent.mkdir(parents=True)
    keep.write_text("")
    result = pack_mod.pack(plugin, layout=layout)
    assert result.zip_path is None
    assert not stale.exists() and keep.exists()


def test_unique_names_are_unique() -> None:
    assert unique_name() != unique_name()


def test_deploy_doc_matches_the_layout(tmp_path: Path) -> None:
    """The folder tree and Dockerfile of docs/deploy.md describe what --layout writes."""
    doc = (ROOT / "docs" / "deploy.md").read_text()
    tree_block = doc.split("image-root/\n", 1)[1].split("```", 1)[0]
    listed = [tok for tok in tree_block.split() if "/" in tok and "..." not in tok]
    assert len(listed) >= 8
    from ekuiper_sdk.tools.templates import init_project
    plugin = init_project("demo", tmp_path / "demo")
    layout = tmp_path / "image-root"
    pack_mod.pack(plugin, layout=layout)
    for rel in listed:
        if rel.endswith(("install.sh", "__launch__.py")):
            continue  # written with --vendor only
        assert (layout / rel).is_file(), rel
    dockerfile = doc.split("```dockerfile\n", 1)[1].split("```", 1)[0]
    assert "COPY image-root/ /kuiper/" in dockerfile
    assert "RUN /bin/sh /kuiper/plugins/portable/demo/install.sh" in dockerfile
    assert "-slim-python" in dockerfile


@pytest.mark.parametrize("executable", ['x"""; import os; os.system("id") #.py',
                                        'a\\b""".py', 'line\n"""\nimport os\n#.py', "é'.py"])
def test_the_launcher_keeps_any_executable_name_inside_its_strings(executable: str) -> None:
    import ast

    from ekuiper_sdk.tools.launcher import launcher_script

    tree = ast.parse(launcher_script(executable))
    doc = ast.get_docstring(tree)
    assert doc is not None and doc.startswith("Starts ")
    imports = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert sorted(a.name for n in imports for a in n.names) == ["os", "runpy", "site", "sys"]
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)
             and getattr(n.func, "attr", "") == "join" and len(n.args) == 2
             and isinstance(n.args[1], ast.Constant) and n.args[1].value == executable]
    assert len(calls) == 1  # the real name, once, as a string constant
