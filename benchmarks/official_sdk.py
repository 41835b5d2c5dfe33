"""An interpreter with the official ``ekuiper`` SDK, kept apart from ours.

The official package pins pynng 0.8.1, while a user who installs ekuiper-sdk alone gets
what pip resolves for it (0.9.x). Installing both into one environment would run our own
tests and benchmarks on the pin of the package we replace, so the official SDK lives in a
virtual environment of its own, made once per Python version and reused:

    ~/.cache/ekuiper-sdk/official-ekuiper-2.4.2-py3.11/bin/python

``EKUIPER_OFFICIAL_PYTHON`` names another interpreter (one that can ``import ekuiper``)
and skips the environment altogether.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

#: The release the side-by-side tests and the benchmark compare against.
OFFICIAL_VERSION = "2.4.2"
ENV_VAR = "EKUIPER_OFFICIAL_PYTHON"


class OfficialSDKUnavailable(RuntimeError):
    """The official SDK could not be installed (one line, with pip's last words)."""


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ekuiper-sdk"


def _can_import(python: str) -> bool:
    probe = subprocess.run([python, "-c", "import ekuiper, pynng"], capture_output=True,
                           timeout=60)
    return probe.returncode == 0


def official_python() -> str:
    """The path of a Python that imports the official SDK, installing it the first time.

    Safe to call from several processes at once (a file lock guards the install).

    Example::

        subprocess.run([official_python(), "plugin.py"])
    """
    given = os.environ.get(ENV_VAR)
    if given:
        return given
    tag = f"py{sys.version_info[0]}.{sys.version_info[1]}"
    venv = _cache_root() / f"official-ekuiper-{OFFICIAL_VERSION}-{tag}"
    python = venv / "bin" / "python"
    done = venv / ".installed"
    if done.exists() and python.exists():
        return str(python)
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f".{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists() and python.exists():
            return str(python)
        steps = [[sys.executable, "-m", "venv", "--clear", str(venv)],
                 [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                  f"ekuiper=={OFFICIAL_VERSION}"]]
        for step in steps:
            proc = subprocess.run(step, capture_output=True, text=True, timeout=600)
            if proc.returncode != 0:
                last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
                raise OfficialSDKUnavailable(
                    f"cannot install ekuiper=={OFFICIAL_VERSION} into {venv} "
                    f"({' '.join(step[:3])}...): {last[0]}; set {ENV_VAR} to a Python "
                    f"that has it")
        if not _can_import(str(python)):
            raise OfficialSDKUnavailable(f"{python} cannot import ekuiper after installing it")
        done.write_text(OFFICIAL_VERSION + "\n")
    return str(python)
