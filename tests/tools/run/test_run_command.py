"""``ekuiper-plugin run`` on plugins written as users write them: configs from yaml and the
command line, function arguments, function-only and sink-only plugins, the plugin's log by
level, one-line failures and the summary. Real plugin processes over real IPC sockets."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from helpers.pack_helpers import unique_name

from ekuiper_sdk.tools.cli import main
from ekuiper_sdk.tools.run.inputs import (
    evaluate,
    parse_arguments,
    parse_property,
    read_json_lines,
)
from ekuiper_sdk.tools.run.plugin_log import LevelFilter, line_level

# A class-style plugin like the one the issue describes: a source that uses its DATASOURCE
# and yaml config, a three-argument clamp, a sink whose configure needs "path" and whose
# open fails for a path it cannot write.
PLUGIN = '''
import logging, os, threading
from ekuiper_sdk import Function, PluginConfig, Sink, Source, plugin

class Rows(Source):
    def configure(self, datasource, conf):
        self.datasource, self.conf = datasource, conf
        self.stopped = threading.Event()
    def open(self, ctx):
        for n in range(int(self.conf.get("rows", 3))):
            ctx.emit({"x": n * 50, "file": self.datasource, "unit": self.conf.get("unit")}, None)
        if self.conf.get("warn"):
            ctx.get_logger().warning("only %d rows in %s", self.conf.get("rows", 3),
                                     self.datasource)
        self.stopped.wait()
    def close(self, ctx):
        self.stopped.set()

class Clamp(Function):
    def validate(self, args):
        return ""
    def exec(self, args, ctx):
        x, lo, hi = args
        return max(lo, min(hi, x))
    def is_aggregate(self):
        return False

class Store(Sink):
    def configure(self, conf):
        self.path = conf["path"]
    def open(self, ctx):
        self.f = open(self.path, "a")
    def collect(self, ctx, data):
        ctx.get_logger().info("stored %s", data)
        self.f.write(data.decode() + "\\n"); self.f.flush()
    def close(self, ctx):
        if hasattr(self, "f"):
            self.f.close()

if __name__ == "__main__":
    plugin.start(PluginConfig(NAME, {"rows": Rows}, {"store": Store}, {"clamp": Clamp}))
'''


def make_plugin(tmp_path: Path, *, sources: bool = True, sinks: bool = True,
                functions: bool = True) -> tuple[Path, str]:
    name = unique_name("run")
    folder = tmp_path / name
    folder.mkdir()
    (folder / "main.py").write_text(f"NAME = {name!r}\n" + PLUGIN)
    manifest = {"version": "1.0.0", "language": "python", "executable": "main.py",
                "sources": ["rows"] if sources else [], "sinks": ["store"] if sinks else [],
                "functions": ["clamp"] if functions else []}
    (folder / f"{name}.json").write_text(json.dumps(manifest))
    (folder / "sources").mkdir()
    (folder / "sources" / "rows.yaml").write_text(
        "default:\n  rows: 2\n  unit: m\nthree:\n  rows: 3\n")
    return folder, name


def run(*argv: str, stdin: str | None = None,
        monkeypatch: pytest.MonkeyPatch | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    if stdin is not None:
        assert monkeypatch is not None
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    # --no-code: the symbol listing before the run is validate's, tested with it; without it
    # each run starts one process less.
    argv = (*argv[:2], "--no-code", *argv[2:]) if argv[:1] == ("run",) else argv
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_the_whole_flow_with_yaml_conf_key_props_and_arguments(tmp_path: Path) -> None:
    folder, _ = make_plugin(tmp_path)
    db = tmp_path / "out.txt"
    code, out, err = run("run", str(folder), "--count", "3", "--datasource", "a.csv",
                         "--conf-key", "three", "--source-prop", "unit=\"km\"",
                         "--sink-prop", f"path={db}", "--sink-prop", "requireAck=true",
                         "--args", "x, 10, 60")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == 'source rows -> {"x": 0, "file": "a.csv", "unit": "km"}'
    assert lines[1] == "clamp(x, 10, 60) -> 10"
    assert lines[4] == "clamp(x, 10, 60) -> 50"
    assert lines[7] == "clamp(x, 10, 60) -> 60"     # the "three" section gave a third row
    assert [json.loads(line)["clamp"] for line in db.read_text().splitlines()] == [10, 50, 60]
    assert re.fullmatch(r"summary: 3 records in, 3 out, 0 error\(s\), [\d.]+s\n", err)


def test_a_conf_key_the_yaml_lacks_is_one_warning_and_the_default_section(
        tmp_path: Path) -> None:
    # eKuiper v2.4 logs "fail to find config key ... for source ..." and runs the rule
    # with the default section: run does the same and says so on stderr, once.
    folder, _ = make_plugin(tmp_path)
    code, out, err = run("run", str(folder), "--count", "2", "--conf-key", "four",
                         "--no-function", "--sink-prop", f"path={tmp_path / 'o.txt'}")
    assert code == 0, err
    [warning] = [line for line in err.splitlines() if "four" in line]
    assert warning == (f"warning: {folder / 'sources' / 'rows.yaml'} has no section 'four' "
                       "(CONF_KEY): the source starts with the default section alone, as "
                       "eKuiper does (its log says: fail to find config key four for source "
                       "rows)")
    assert err.index(warning) < err.index("summary:")
    assert [json.loads(line.split(" -> ")[1])["unit"] for line in out.splitlines()
            if line.startswith("source")] == ["m", "m"]       # the default section's


def test_warnings_by_default_everything_with_v(tmp_path: Path) -> None:
    folder, _ = make_plugin(tmp_path)
    base = ("run", str(folder), "--count", "2", "--datasource", "b.csv", "--source-prop",
            "warn=true", "--no-function", "--sink-prop", f"path={tmp_path / 'o.txt'}")
    code, _, err = run(*base)
    assert code == 0, err
    assert re.search(r"WARNING .*only 2 rows in b.csv", err)
    assert "stored" not in err and " INFO " not in err
    code, _, err = run(*base, "-v")
    assert code == 0, err
    assert " INFO " in err and "stored" in err


def test_a_sink_config_key_missing_is_one_line_with_its_cause(tmp_path: Path) -> None:
    folder, name = make_plugin(tmp_path)
    code, out, err = run("run", str(folder), "--count", "1", "--timeout", "10")
    assert code == 1
    assert "Traceback" not in err.split("error:")[-1]
    [line] = [e for e in err.splitlines() if e.startswith("error:")]
    assert f"plugin {name}:" in line and "path" in line
    assert err.splitlines()[-1].startswith("summary: 0 records in")


def test_a_function_error_is_counted_and_the_run_goes_on(tmp_path: Path) -> None:
    folder, _ = make_plugin(tmp_path)
    code, out, err = run("run", str(folder), "--count", "2", "--sink-prop",
                         f"path={tmp_path / 'o.txt'}")
    # Without --args clamp gets one argument and fails on each record.
    assert code == 1
    errors = [e for e in err.splitlines() if e.startswith("error: record")]
    assert len(errors) == 2 and "--args" in errors[0]
    assert "summary: 2 records in, 0 out, 2 error(s)" in err
    assert "sink store <-" not in out


def test_a_source_that_never_delivers_says_so_in_one_line(tmp_path: Path) -> None:
    folder, name = make_plugin(tmp_path)
    code, _, err = run("run", str(folder), "--source-prop", "rows=0", "--no-function",
                       "--sink-prop", f"path={tmp_path / 'o.txt'}", "--timeout", "2")
    assert code == 1
    [line] = [e for e in err.splitlines() if e.startswith("error:")]
    assert line.endswith("(the plugin logged no warning or error; -v shows the "
                         + line.split("-v shows the ")[1].split()[0] + " line(s) it wrote)")
    assert "plugin output" not in err and "no tuple from source" in line


def test_function_only_plugin_with_calls(tmp_path: Path) -> None:
    folder, _ = make_plugin(tmp_path, sources=False, sinks=False)
    calls = tmp_path / "calls.jsonl"
    calls.write_text("[5, 0, 3]\n\nnot json\n[-1, 0, 3]\n")
    code, out, err = run("run", str(folder), "--call", "7, 0, 10", "--call", "1.5, 2, 3",
                         "--calls", str(calls))
    assert out.splitlines() == ["clamp(7, 0, 10) -> 7", "clamp(1.5, 2, 3) -> 2",
                                "clamp(5, 0, 3) -> 3", "clamp(-1, 0, 3) -> 0"]
    assert code == 1 and f"{calls}:3: not JSON" in err
    assert "summary: 5 calls, 4 results, 1 error(s)" in err
    code, _, err = run("run", str(folder))
    assert code == 1 and "--call '1, 2'" in err
    assert "summary" not in err  # refused before the plugin started: nothing to sum up
    code, _, err = run("run", str(folder), "--call", "x, 1, 2")
    assert code == 2 and "x is a field name" in err


def test_sink_only_plugin_with_records_from_stdin(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    folder, _ = make_plugin(tmp_path, sources=False, functions=False)
    target = tmp_path / "s.txt"
    code, out, err = run("run", str(folder), "--records", "-", "--sink-prop", f"path={target}",
                         stdin='{"a": 1}\n[1]\n{"a": 2}\n', monkeypatch=monkeypatch)
    assert [json.loads(line) for line in target.read_text().splitlines()] == [{"a": 1},
                                                                              {"a": 2}]
    assert code == 1 and "record 2: [1] is not a JSON object" in err
    assert "summary: 3 records in, 2 out, 1 error(s)" in err
    code, _, err = run("run", str(folder))
    assert code == 1 and "--records FILE" in err


def test_every_record_given_reaches_the_sink_before_the_stop(tmp_path: Path) -> None:
    # run asks for acks when the user did not set requireAck: without them, the stop
    # closed the socket on frames still queued and up to a sixth of 2,000 were lost.
    folder, _ = make_plugin(tmp_path, sources=False, functions=False)
    target, records = tmp_path / "s.txt", tmp_path / "r.jsonl"
    records.write_text("".join(json.dumps({"n": i}) + "\n" for i in range(2000)))
    code, _, err = run("run", str(folder), "--records", str(records), "--sink-prop",
                       f"path={target}")
    assert code == 0, err
    assert [json.loads(line)["n"] for line in target.read_text().splitlines()] == \
        list(range(2000))
    assert "summary: 2000 records in, 2000 out, 0 error(s)" in err


def test_a_sink_that_cannot_open_acks_the_cause(tmp_path: Path) -> None:
    folder, _ = make_plugin(tmp_path, sources=False, functions=False)
    records = tmp_path / "r.jsonl"
    records.write_text('{"a": 1}\n')
    code, _, err = run("run", str(folder), "--records", str(records), "--sink-config",
                       json.dumps({"path": str(tmp_path / "no" / "such" / "dir"),
                                   "requireAck": True}))
    assert code == 1
    [line] = [e for e in err.splitlines() if e.startswith("error: record 1")]
    assert "sink failed to open: FileNotFoundError:" in line and "see the plugin log" not in line


def test_inputs() -> None:
    assert [evaluate(e, {"x": 1, "a": {"b": "c"}}) for e in parse_arguments(
        "x, a.b, `x`, -2.5, 'it''s', \"q\", TRUE, null, [1, missing]")] == \
        [1, "c", 1, -2.5, "it's", "q", True, None, [1, None]]
    assert parse_arguments("  ") == []
    for bad in ("x,", "x y", "[1, 2", "1 @"):
        with pytest.raises(ValueError):
            parse_arguments(bad)
    assert parse_property("k=[1, 2]") == ("k", [1, 2])
    assert parse_property("k=a=b") == ("k", "a=b")
    with pytest.raises(ValueError):
        parse_property("novalue")


def test_read_json_lines_keeps_going_after_a_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('1\n{\n"a"\n')
    values = list(read_json_lines(str(path), "--records"))
    assert values[0] == 1 and isinstance(values[1], ValueError) and values[2] == "a"


def test_log_levels() -> None:
    out = io.StringIO()
    shown = LevelFilter(out, level=30)
    for line in ["2026-01-01 10:00:00,000 INFO p: up", "hello from print",
                 "2026-01-01 10:00:00,001 ERROR p: collect failed",
                 "Traceback (most recent call last):", '  File "m.py", line 1',
                 "ValueError: boom", "2026-01-01 10:00:00,002 DEBUG p: x"]:
        shown.write(f"[p] {line}\n")
    assert out.getvalue().splitlines() == [
        "[p] hello from print", "[p] 2026-01-01 10:00:00,001 ERROR p: collect failed",
        "[p] Traceback (most recent call last):", '[p]   File "m.py", line 1',
        "[p] ValueError: boom"]
    assert (shown.hidden, shown.problems) == (2, 5)
    assert line_level("Traceback (most recent call last):", 20) == 40


def test_a_plugin_already_running_elsewhere_runs_beside_it(tmp_path: Path) -> None:
    import pynng

    from ekuiper_sdk.testing.socket_names import live_socket
    folder, name = make_plugin(tmp_path, sources=False, sinks=False)
    control = f"/tmp/plugin_{name}.ipc"
    with pynng.Rep0(listen=f"ipc://{control}"):
        code, out, err = run("run", str(folder), "--call", "1, 2, 3")
        assert live_socket(control), "the live listener's socket was taken or removed"
    assert code == 0 and "Traceback" not in err, err
    notes = [line for line in err.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1 and f"{control} is held by a live listener" in notes[0]
    assert f"running this copy as plugin {name}_run" in notes[0]
    assert out.strip(), "the call printed nothing"


DECORATED = '''
import sqlite3
from ekuiper_sdk import Plugin

app = Plugin(NAME)

@app.source("lines")
def lines(ctx, datasource, conf):
    with open(datasource) as f:
        for n, line in enumerate(f):
            yield {"n": n, "text": line.strip(), "scale": conf.get("scale")}

@app.function("clampd")
def clamp(x: float, lo: float, hi: float) -> float:
    return max(lo, min(hi, x))

@app.sink("rows")
def rows(ctx, record):
    db = sqlite3.connect(ctx.config["db"])
    with db:
        db.execute("create table if not exists t (n, c)")
        db.execute("insert into t values (?, ?)", (record["n"], record["clampd"]))
    db.close()

if __name__ == "__main__":
    app.run()
'''


def test_a_decorator_plugin_with_its_real_configuration(tmp_path: Path) -> None:
    import sqlite3
    name = unique_name("dec")
    clamp = f"clampd{name}"
    folder = tmp_path / name
    (folder / "sources").mkdir(parents=True)
    (folder / "main.py").write_text(f"NAME = {name!r}\n"
                                    + DECORATED.replace("clampd", clamp))
    (folder / f"{name}.json").write_text(json.dumps({
        "version": "1.0.0", "language": "python", "executable": "main.py",
        "sources": ["lines"], "sinks": ["rows"], "functions": [clamp]}))
    (folder / "sources" / "lines.yaml").write_text("default:\n  scale: 1\nbig:\n  scale: 10\n")
    data = tmp_path / "in.txt"
    data.write_text("a\nb\nc\n")
    db = tmp_path / "out.db"
    out, err = io.StringIO(), io.StringIO()
    code = main(["run", str(folder), "--count", "3", "--datasource", str(data), "--conf-key",
                 "big", "--args", "n, 1, 1.5", "--sink-prop", f"db={db}", "--sink-prop",
                 "requireAck=true"], out=out, err=err)
    assert code == 0, err.getvalue()
    assert out.getvalue().splitlines()[0] == 'source lines -> {"n": 0, "text": "a", "scale": 10}'
    with sqlite3.connect(db) as conn:
        assert conn.execute("select n, c from t order by n").fetchall() == [(0, 1), (1, 1),
                                                                            (2, 1.5)]
    # the function alone, from the command line
    code, text, _ = run("run", str(folder), "--call", "5, 0, 3")
    assert code == 0 and text == f"{clamp}(5, 0, 3) -> 3\n"
    # a file shorter than --count: the source says it finished, and the run ends there
    code, text, err = run("run", str(folder), "--datasource", str(data), "--args", "n, 0, 9",
                          "--sink-prop", f"db={db}", "--timeout", "60")
    assert code == 0, err
    assert text.count("source lines -> ") == 3
    assert "warning: source lines finished after 3 record(s) of the 5 asked for (--count)\n" \
        in err
    assert re.search(r"summary: 3 records in, 3 out, 0 error\(s\), [\d.]+s\n\Z", err)
    # a source that raises ends the run with one error line after its traceback
    code, text, err = run("run", str(folder), "--datasource", str(tmp_path / "nothing.txt"),
                          "--args", "n, 0, 9", "--sink-prop", f"db={db}", "--timeout", "60")
    assert code == 1 and text == ""
    assert "FileNotFoundError" in err
    assert f"error: {folder}: plugin {name}: source lines failed after 0 record(s) and " \
        "sends nothing more (the plugin's lines above say why)\n" in err


def test_the_summary_of_a_refused_start_comes_after_the_plugins_last_lines(
        tmp_path: Path) -> None:
    """The plugin's lines reach the run's log on a thread of their own, and a slow log (a
    terminal, a pipe) keeps that thread behind. A start the plugin refused, after logging
    why with a traceback, must still be summed up as 'the plugin's lines above say why'."""
    import time

    from ekuiper_sdk.errors import HostError
    from ekuiper_sdk.tools.run.pipeline import run_pipeline

    class SlowLog(io.StringIO):
        def write(self, text: str) -> int:
            time.sleep(0.01)
            return super().write(text)

    folder, name = make_plugin(tmp_path, sinks=False, functions=False)
    (folder / "main.py").write_text(
        "import logging\n"
        "from ekuiper_sdk import PluginConfig, Source, plugin\n"
        "ctx_log = logging.getLogger('rows')\n"
        "class Rows(Source):\n"
        "    def configure(self, datasource, conf):\n"
        "        for n in range(40):\n"
        "            ctx_log.info('checking, step %d', n)\n"
        "        raise ValueError('no device')\n"
        "    def open(self, ctx):\n        pass\n"
        "    def close(self, ctx):\n        pass\n"
        f"plugin.start(PluginConfig({name!r}, {{'rows': Rows}}, {{}}, {{}}))\n")
    log = SlowLog()
    with pytest.raises(HostError) as failed:
        # -v: INFO lines are shown (slowly) but are no problems, so the reader lags
        # behind on them while the refusal arrives.
        run_pipeline(folder, use_function=False, out=io.StringIO(), log=log, timeout=20,
                     verbose=True)
    assert "configure failed: ValueError: no device" in str(failed.value)
    assert "ValueError: no device" in log.getvalue()
    assert "the plugin's lines above say why" in str(failed.value), str(failed.value)


def test_run_pipeline_names_the_options_it_does_not_have() -> None:
    from ekuiper_sdk.tools.run.pipeline import run_pipeline

    with pytest.raises(TypeError, match=r"no option 'cuont'; the options are those of "
                                        r"RunOptions: args, calls, conf_key, count"):
        run_pipeline("nowhere", cuont=3)
