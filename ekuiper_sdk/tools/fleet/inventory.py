"""The fleet file: which eKuiper servers a rollout or a ``fleet status`` talks to.

Three forms, chosen by the file's suffix:

* plain text (any other suffix): one URL (or ``host:port``) a line; blank lines and
  ``# comments`` are ignored. Needs nothing.
* ``.toml``: ``[[servers]]`` tables. Needs Python 3.11 (``tomllib``) or ``tomli``.
* ``.yaml`` / ``.yml``: a ``servers:`` list. Needs PyYAML (the ``tools`` extra).
* ``.json``: ``{"servers": [...]}``, the same entries. Needs nothing.

A structured entry is ``url`` plus optional ``name``, ``groups`` (a list), and ``token`` or
``token_env`` (the name of an environment variable holding it, so a file kept in a
repository needs no secret).

Example::

    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "fleet.txt"
    >>> _ = f.write_text("# north\\n10.0.0.5:9081\\n\\nhttp://10.0.0.6:9081  # gw-6\\n")
    >>> [s.url for s in read_fleet(f)]
    ['http://10.0.0.5:9081', 'http://10.0.0.6:9081']
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import RestError
from ..rest import normalize_server


class FleetFileError(RestError):
    """The fleet file cannot be read: one line naming the file, the place, and the fix."""


@dataclass(frozen=True)
class Server:
    """One eKuiper server of the fleet.

    >>> Server("http://10.0.0.5:9081").label
    '10.0.0.5:9081'
    """

    url: str
    name: str = ""
    token: str | None = None
    groups: tuple[str, ...] = field(default=())

    @property
    def label(self) -> str:
        """The name the output uses: the entry's name, else host:port."""
        return self.name or self.url.split("://", 1)[-1]


def _load_structured(path: Path, text: str) -> Any:
    suffix = path.suffix.lower()
    if suffix == ".json":
        try:
            return json.loads(text)
        except ValueError as exc:
            raise FleetFileError(f"{path}: not JSON ({exc})", hint="fix the file") from None
    if suffix == ".toml":
        for module in ("tomllib", "tomli"):
            try:
                toml = importlib.import_module(module)
                break
            except ImportError:
                continue
        else:
            raise FleetFileError(f"{path}: reading TOML needs Python 3.11 or the tomli package",
                                 hint="pip install tomli, or write the fleet as YAML, JSON "
                                 "or one URL a line")
        try:
            return toml.loads(text)
        except ValueError as exc:
            raise FleetFileError(f"{path}: not TOML ({exc})", hint="fix the file") from None
    try:
        yaml = importlib.import_module("yaml")
    except ImportError:
        raise FleetFileError(f"{path}: reading YAML needs PyYAML",
                             hint="pip install 'ekuiper-sdk[tools]', or write the fleet as "
                             "JSON or one URL a line") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise FleetFileError(f"{path}: not YAML{at} ({getattr(exc, 'problem', exc)})",
                             hint="fix the file") from None


def _server_from(entry: Any, where: str, env: Mapping[str, str],
                 default_token: str | None) -> Server:
    if isinstance(entry, str):
        entry = {"url": entry}
    if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
        raise FleetFileError(f"{where}: an entry needs a url", hint='write url = '
                             '"http://HOST:9081" (or a plain string)')
    unknown = sorted(set(entry) - {"url", "name", "token", "token_env", "groups"})
    if unknown:
        raise FleetFileError(f"{where}: unknown key(s) {', '.join(unknown)}",
                             hint="use url, name, token, token_env, groups")
    token = entry.get("token")
    if entry.get("token_env"):
        var = str(entry["token_env"])
        if var not in env:
            raise FleetFileError(f"{where}: token_env {var} is not set",
                                 hint=f"export {var}=... or remove token_env")
        token = env[var]
    groups = entry.get("groups") or ()
    if isinstance(groups, str):
        groups = (groups,)
    if not isinstance(groups, (list, tuple)) or not all(isinstance(g, str) for g in groups):
        raise FleetFileError(f"{where}: groups must be a list of names",
                             hint='write groups = ["canary", "north"]')
    try:
        url = normalize_server(entry["url"])
    except RestError as exc:
        raise FleetFileError(f"{where}: {exc.message}", hint=exc.hint) from None
    return Server(url, str(entry.get("name") or ""),
                  str(token) if token is not None else default_token, tuple(groups))


def parse_fleet(path: Path, text: str, *, env: Mapping[str, str] | None = None,
                default_token: str | None = None) -> list[Server]:
    """The servers ``text`` (the content of ``path``) lists, in order; one-line errors.

    >>> [s.label for s in parse_fleet(Path("f.json"),
    ...  '{"servers": [{"url": "10.0.0.5:9081", "name": "gw-5", "groups": ["canary"]}]}')]
    ['gw-5']
    """
    env = os.environ if env is None else env
    servers: list[Server] = []
    if path.suffix.lower() in (".toml", ".yaml", ".yml", ".json"):
        data = _load_structured(path, text)
        entries = data.get("servers") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise FleetFileError(f"{path}: no list of servers",
                                 hint="put the entries under a 'servers' key")
        for i, entry in enumerate(entries, 1):
            servers.append(_server_from(entry, f"{path}: server {i}", env, default_token))
    else:
        for number, line in enumerate(text.splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if line:
                where = f"{path}:{number}"
                if len(line.split()) > 1:
                    raise FleetFileError(f"{where}: {line!r} is more than one URL",
                                         hint="write one server a line")
                servers.append(_server_from(line, where, env, default_token))
    seen: dict[str, int] = {}
    for i, server in enumerate(servers):
        if server.url in seen:
            raise FleetFileError(f"{path}: {server.url} is listed twice",
                                 hint="list each server once")
        seen[server.url] = i
    if not servers:
        raise FleetFileError(f"{path}: lists no server", hint="write one URL a line")
    return servers


def read_fleet(path: str | Path, *, groups: Sequence[str] = (),
               default_token: str | None = None) -> list[Server]:
    """The servers of the fleet file, only those in one of ``groups`` when given."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FleetFileError(f"--fleet {path}: {exc.strerror or exc}",
                             hint="pass the file that lists the servers") from None
    servers = parse_fleet(path, text, default_token=default_token)
    if groups:
        servers = [s for s in servers if set(s.groups) & set(groups)]
        if not servers:
            raise FleetFileError(f"{path}: no server is in group {', '.join(groups)}",
                                 hint="check --group against the file's groups")
    return servers
