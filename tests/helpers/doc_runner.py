"""Running a page's blocks in order, as a reader would, in a folder of the page's own.

The folder starts with a copy of the repository's ``example/`` (pages run commands on
it); file blocks are written into it, commands and scripts run in it, and each output
block is compared with what the run block before it printed. Every outcome is kept, so
that each block is a test of its own while the page runs once.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import os
import random
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from .doc_blocks import Block, Page, renamer

TIMEOUT = 120
#: ``python -m pip install ...`` under ``run installed``: the suite's interpreter has it.
INSTALLED_CHECK = "python -c 'import ekuiper_sdk, yaml, jsonschema'"


@dataclass
class Outcome:
    status: str          # "ok", "fail" or "skip"
    message: str = ""


class PageRun:
    """Runs a page's blocks once, in order; :meth:`outcome` gives each block's result."""

    def __init__(self, page: Page, folder: Path, repo: Path,
                 official_python: Callable[[], str | None]) -> None:
        self.page, self.folder, self.repo = page, folder, repo
        self.official_python = official_python
        self.suffix = f"_d{os.getpid() % 10000}{random.getrandbits(20):05x}"
        self.rename = renamer(page.names, self.suffix)
        self.outcomes: dict[int, Outcome] = {}
        self.last_stdout: str | None = None
        self._copy_examples()
        for block in page.blocks:
            try:
                self.outcomes[block.line] = self._run(block)
            except Exception as exc:  # noqa: BLE001 - each block reports its own failure
                self.outcomes[block.line] = Outcome("fail", f"{type(exc).__name__}: {exc}")

    def outcome(self, block: Block) -> Outcome:
        return self.outcomes[block.line]

    # -- the page's folder ------------------------------------------------------

    def _copy_examples(self) -> None:
        target = self.folder / "example"
        shutil.copytree(self.repo / "example", target,
                        ignore=shutil.ignore_patterns("state", "__pycache__", "*.zip"))
        for path in sorted(target.rglob("*"), key=lambda p: -len(p.parts)):
            if path.is_file():
                path.write_text(self.rename(path.read_text()))
            renamed = path.with_name(self.rename(path.name))
            if renamed != path:
                path.rename(renamed)

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        bindir = os.path.dirname(sys.executable)
        env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
        env.pop("PYTHONPATH", None)
        return env

    # -- the blocks ------------------------------------------------------------

    def _run(self, block: Block) -> Outcome:
        text = self.rename(block.text)
        kind = block.kind
        if kind is None:
            return Outcome("fail", f"{block.page}:{block.line}: a ```{block.lang} block that "
                           "is neither run nor marked; run it (e.g. <!-- docs: run -->) or "
                           "say why not with <!-- docs: skip REASON --> before it "
                           "(tests/helpers/doc_blocks.py)")
        if kind == "skip":
            if not block.arg:
                return Outcome("fail", f"{block.page}:{block.line}: skip needs a reason")
            self.last_stdout = None
            return Outcome("skip", block.arg)
        if kind == "file":
            path = self.folder / self.rename(block.arg)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            return Outcome("ok")
        if kind == "parse":
            if block.lang == "json":
                json.loads(text)
            else:
                yaml.safe_load(text)
            return Outcome("ok")
        if kind == "output":
            return self._compare(text)
        if kind == "excerpt":
            whole = (self.folder / self.rename(block.arg)).read_text()
            if " ".join(text.split()) not in " ".join(whole.split()):   # wrapping aside
                return Outcome("fail", f"{block.arg} has no such text; it reads:\n{whole}")
            return Outcome("ok")
        if kind == "signature":
            return check_signature(text, block.arg)
        if kind == "run":
            return self._shell(text, installed=block.arg == "installed")
        if kind == "python":
            return self._python(block, text)
        if kind == "pytest":
            path = self.folder / self.rename(block.arg)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            return self._process([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                  str(path)], self._env())
        return Outcome("fail", f"unknown kind {kind}")

    def _compare(self, shown: str) -> Outcome:
        if self.last_stdout is None:
            return Outcome("fail", "an output block with no run block before it")
        got = "\n".join(line.rstrip() for line in self.last_stdout.rstrip("\n").split("\n"))
        want = "\n".join(line.rstrip() for line in shown.rstrip("\n").split("\n"))
        if got != want:
            return Outcome("fail", f"the page shows:\n{want}\na run prints:\n{got}")
        return Outcome("ok")

    def _shell(self, text: str, *, installed: bool) -> Outcome:
        if installed:
            lines = []
            for line in text.split("\n"):
                parts = [p.strip() for p in line.split("&&")]
                parts = [INSTALLED_CHECK if p.startswith("python -m pip install") else p
                         for p in parts]
                lines.append(" && ".join(parts))
            text = "\n".join(lines)
        return self._process(["bash", "-e", "-o", "pipefail", "-c", text], self._env())

    def _python(self, block: Block, text: str) -> Outcome:
        env = self._env()
        python = sys.executable
        if block.arg == "official":
            official = self.official_python()
            if official is None:
                return Outcome("skip", "the official ekuiper SDK is not available")
            python = official
            env["PYTHONPATH"] = str(self.repo)
        elif block.arg:
            return Outcome("fail", f"python takes no argument but 'official', got {block.arg}")
        script = self.folder / f"docs_block_{block.line}.py"
        script.write_text(self.rename(self.page.prelude_for(block)) + "\n" + text)
        if "plugin.start(" in text or "app.run(" in text:
            env["EKUIPER_SDK_LIST_SYMBOLS"] = "1"   # list the symbols, wait for no eKuiper
        return self._process([python, script.name], env)

    def _process(self, argv: list[str], env: dict[str, str]) -> Outcome:
        proc = subprocess.run(argv, cwd=self.folder, env=env, capture_output=True, text=True,
                              timeout=TIMEOUT, check=False)
        self.last_stdout = proc.stdout
        if proc.returncode != 0:
            shown = " ".join(shlex.quote(a) for a in argv)[:300]
            return Outcome("fail", f"exit {proc.returncode}: {shown}\nstdout:\n"
                           f"{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}")
        return Outcome("ok")


def check_signature(text: str, target: str) -> Outcome:
    """The block ``Name(a, *, b=1)`` against ``inspect.signature`` of ``module:Name``:
    the same parameters, in order, of the same kinds, with the same defaults."""
    module, _, qualname = target.partition(":")
    obj: object = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    head, _, rest = text.strip().partition("(")
    tree = ast.parse(f"def {head.split('.')[-1]}({rest.rstrip()[:-1]}): pass")
    node = tree.body[0]
    assert isinstance(node, ast.FunctionDef)
    a = node.args
    shown = [(x.arg, "positional") for x in a.args] + [(x.arg, "keyword") for x in a.kwonlyargs]
    defaults = dict(zip([x.arg for x in a.args][len(a.args) - len(a.defaults):],
                        [ast.literal_eval(d) for d in a.defaults]))
    defaults.update({x.arg: ast.literal_eval(d) for x, d in zip(a.kwonlyargs, a.kw_defaults)
                     if d is not None})
    real = inspect.signature(obj)  # type: ignore[arg-type]
    actual = [(p.name, "keyword" if p.kind is p.KEYWORD_ONLY else "positional")
              for p in real.parameters.values() if p.name != "self"]
    actual_defaults = {p.name: p.default for p in real.parameters.values()
                       if p.default is not p.empty}
    if shown != actual or defaults != actual_defaults:
        return Outcome("fail", f"the page shows {text.strip()}\nthe code has {head}{real}")
    return Outcome("ok")
