"""The docs' walk-through, run as a reader would: getting-started's files, written from the
page, pass `validate`, and its `ekuiper-plugin run` command prints what the page shows."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import uuid
from pathlib import Path

from helpers import REPO

GETTING_STARTED = REPO / "docs" / "getting-started.md"


def _blocks(text: str) -> dict[str, str]:
    """Each ```` `path`: ```` caption and the fenced block under it."""
    return dict(re.findall(r"^`([^`]+)`[^\n]*:\n\n```\w+\n(.*?)```", text, re.S | re.M))


def _section(text: str, title: str) -> str:
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def test_getting_started_runs_as_written(tmp_path: Path) -> None:
    text = GETTING_STARTED.read_text()
    files = _blocks(text)
    assert set(files) == {"myplugin/myplugin.py", "myplugin/myplugin.json",
                          "myplugin/sources/ticker.yaml"}
    # Socket paths are global: this run gets names of its own, the same on every side.
    tag = uuid.uuid4().hex[:8]
    names = {"myplugin": f"myplugin{tag}", "upper": f"upper{tag}"}

    def rename(s: str) -> str:
        # not `.upper()`, the str method the function calls
        return re.sub(r"(?<!\.)\b(myplugin|upper)\b", lambda m: names[m.group(1)], s)

    for path, body in files.items():
        target = tmp_path / rename(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(rename(body))
    run_section = _section(text, "4. Run it without eKuiper")
    command, shown = re.findall(r"```(?:sh)?\n(.*?)```", run_section, re.S)[:2]
    argv = shlex.split(rename(command.strip()))
    assert argv[:2] == ["ekuiper-plugin", "run"]
    cli = [sys.executable, "-m", "ekuiper_sdk.tools.cli"]
    check = subprocess.run([*cli, "validate", names["myplugin"]], cwd=tmp_path,
                           capture_output=True, text=True, timeout=120, check=False)
    assert check.returncode == 0, check.stderr
    proc = subprocess.run([*cli, *argv[1:]], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == rename(shown)
    assert re.fullmatch(r"summary: 2 records in, 2 out, 0 error\(s\), [\d.]+s\n", proc.stderr)
