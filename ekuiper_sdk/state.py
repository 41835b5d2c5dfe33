"""``ctx.state``: a small key-value store per running symbol that survives plugin restarts.

eKuiper restarts a plugin that died and replays every start command with the same rule,
operator and instance ids, so a store keyed by those ids finds the previous run's values:
a source can resume from the offset it saved.

Where the files live, first match wins: ``EKUIPER_SDK_STATE_DIR``; ``Plugin(state_dir=...)``;
eKuiper's data folder, ``<eKuiper>/data/ekuiper-sdk-state/``, when the plugin runs from
``<eKuiper>/plugins/portable/<name>/`` (eKuiper deletes and unpacks that folder again on
every update, while its data folder is kept, in Docker usually on a volume); else
``state/`` beside the plugin's main script. The first store opened logs the folder.

Each store is one msgpack file, rewritten whole on every change: written to a temporary
file in the same folder, flushed to disk, then renamed over the old one, so a crash at any
point leaves either the old or the new content, never a torn file; temporary files of
writers that died are removed when the folder is next opened. Two writers of one store
(two processes, or an instance whose ``open`` still runs while its replacement starts)
are safe: each change is merged key by key into what is on disk, under a lock
(``<store>.lock``), so neither loses the other's keys; a key both set keeps the value
written last, and a store sees the other's keys from its next change (or :meth:`State.reload`).

Limits: keys are ``str``; values are ``None``, ``bool``, ``int`` (64-bit), ``float``,
``str``, ``bytes``, and lists and dicts of those (a tuple comes back as a list); the
encoded store is at most :data:`MAX_STATE_BYTES`. Each change costs a file write and an
fsync (about a millisecond on a local disk), so save an offset every record at a few
hundred records per second, or every N records beyond that, or group changes with
:meth:`State.batch`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sys
import threading
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from . import state_files
from .errors import StateError

# msgpack is imported where a store is read or written: it imports datetime, and a plugin
# that never uses ctx.state should not pay that memory (docs/performance.md).

#: The folder that holds every plugin's state; overrides ``Plugin(state_dir=...)``.
STATE_DIR_ENV = "EKUIPER_SDK_STATE_DIR"
#: The folder under eKuiper's data folder that holds the state of every plugin.
EKUIPER_DATA_SUBDIR = "ekuiper-sdk-state"
#: The most bytes one store may take once encoded.
MAX_STATE_BYTES = 1024 * 1024
#: The version of the file layout, stored in every file.
FORMAT_VERSION = 1

_default_dir: str | None = None


def set_default_dir(path: str | os.PathLike[str] | None) -> None:
    """Set the state folder of this process (``Plugin(state_dir=...)`` calls this).

    ``EKUIPER_SDK_STATE_DIR``, when set, still wins: whoever deploys the plugin can move
    its state to a volume without changing its code.

    >>> set_default_dir("/var/lib/myplugin"); set_default_dir(None)
    """
    global _default_dir
    _default_dir = None if path is None else os.path.abspath(os.fspath(path))


def state_dir() -> str:
    """The folder that holds the state files: the environment variable, the folder set by
    :func:`set_default_dir`, eKuiper's data folder, or ``state/`` beside the plugin's main
    script, in that order (see the module's docstring).

    >>> set_default_dir("/srv/plugin-state"); state_dir()  # doctest: +SKIP
    '/srv/plugin-state'
    """
    env = os.environ.get(STATE_DIR_ENV)
    if env:
        return os.path.abspath(env)
    if _default_dir:
        return _default_dir
    main = getattr(sys.modules.get("__main__"), "__file__", None) or (sys.argv[0] if sys.argv
                                                                        else "")
    base = os.path.dirname(os.path.abspath(main)) if main and os.path.exists(main) \
        else os.getcwd()
    return ekuiper_data_dir(base) or os.path.join(base, "state")


def ekuiper_data_dir(plugin_folder: str) -> str | None:
    """The state folder in eKuiper's data folder, for a plugin installed in eKuiper.

    eKuiper unpacks a portable plugin into ``<root>/plugins/portable/<name>/`` and keeps
    its own data in ``<root>/data/``; None when ``plugin_folder`` is not laid out so.

    >>> import tempfile; root = tempfile.mkdtemp(); os.mkdir(os.path.join(root, "data"))
    >>> ekuiper_data_dir(os.path.join(root, "plugins", "portable", "p")) == os.path.join(
    ...     root, "data", EKUIPER_DATA_SUBDIR)
    True
    >>> ekuiper_data_dir("/opt/myplugin") is None
    True
    """
    portable = os.path.dirname(os.path.abspath(plugin_folder))
    plugins = os.path.dirname(portable)
    if os.path.basename(portable) != "portable" or os.path.basename(plugins) != "plugins":
        return None
    data = os.path.join(os.path.dirname(plugins), "data")
    return os.path.join(data, EKUIPER_DATA_SUBDIR) if os.path.isdir(data) else None


@dataclass(frozen=True)
class StateKey:
    """Which store: one per plugin, symbol, rule, operator, instance (and call site, for
    functions, since one rule may call a function twice)."""

    plugin: str
    symbol: str
    rule_id: str
    op_id: str
    instance_id: int
    func_id: int | None = None

    def file_name(self) -> str:
        """A file name that is safe whatever the ids contain, readable where it can be.

        >>> StateKey("p", "src", "rule/1", "op", 0).file_name()[:17]
        'rule_1.op.0.src.-'
        """
        ident = repr((self.plugin, self.symbol, self.rule_id, self.op_id, self.instance_id,
                      self.func_id)).encode("utf-8", "surrogatepass")
        # Ids may hold any character, and two ids may differ only in characters the
        # readable part replaces: the hash keeps them apart.
        digest = hashlib.sha256(ident).hexdigest()[:16]
        parts = [self.rule_id, self.op_id, str(self.instance_id), self.symbol]
        if self.func_id is not None:
            parts.append(str(self.func_id))
        readable = ".".join(_safe(part) for part in parts)
        return f"{readable}.-{digest}.state"


_logged_folders: set[str] = set()


def _log_folder_once(folder: str) -> None:
    if folder not in _logged_folders:
        _logged_folders.add(folder)
        logging.getLogger("ekuiper_sdk").info(
            "ctx.state is kept in %s (set %s to move it)", folder, STATE_DIR_ENV)


def _safe(text: str, limit: int = 40) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", text)[:limit]


class State(MutableMapping[str, Any]):
    """A persistent ``dict`` of one running symbol; ``ctx.state`` returns it.

    Every change is on disk when the call returns. Values are checked when set: a value
    msgpack cannot encode, or one that makes the store larger than ``MAX_STATE_BYTES``,
    raises :class:`StateError` and leaves the store as it was. Mutating a list or dict
    held in the store does not save it; assign it again or call :meth:`save`.

    Example::

        offset = ctx.state.get("offset", 0)
        ...
        ctx.state["offset"] = offset + 1
    """

    def __init__(self, path: str, key: StateKey | None = None,
                 max_bytes: int = MAX_STATE_BYTES) -> None:
        self.path = path
        self.key = key
        self.max_bytes = max_bytes
        self._lock = threading.RLock()
        state_files.sweep_stale_temps(os.path.dirname(path) or ".")
        self._seen = state_files.signature(path)  # the version of the file _data came from
        self._data: dict[str, Any] = self._load()
        self._deferred = 0
        # What this store changed since its last write: merged into the file's content.
        self._dirty: set[str] = set()
        self._cleared = False

    @classmethod
    def for_key(cls, key: StateKey, folder: str | None = None) -> State:
        """The store of ``key`` in ``folder`` (default :func:`state_dir`), per plugin.

        >>> import tempfile
        >>> s = State.for_key(StateKey("p", "src", "r1", "op", 0), tempfile.mkdtemp())
        >>> s["offset"] = 3; State(s.path)["offset"]
        3
        """
        base = folder or state_dir()
        _log_folder_once(base)
        root = os.path.join(base, _safe(key.plugin, 100))
        return cls(os.path.join(root, key.file_name()), key)

    # -- Mapping

    def __getitem__(self, name: str) -> Any:
        with self._lock:
            return self._data[name]

    def __setitem__(self, name: str, value: Any) -> None:
        if not isinstance(name, str):
            raise StateError(f"a state key must be a str, got {type(name).__name__}")
        with self._lock:
            missing = name not in self._data
            old = self._data.get(name)
            was_dirty = name in self._dirty
            self._data[name] = value
            self._dirty.add(name)
            try:
                self._changed()
            except BaseException:
                if missing:
                    del self._data[name]
                else:
                    self._data[name] = old
                if not was_dirty:
                    self._dirty.discard(name)
                raise

    def __delitem__(self, name: str) -> None:
        with self._lock:
            old = self._data.pop(name)
            was_dirty = name in self._dirty
            self._dirty.add(name)
            try:
                self._changed()
            except BaseException:
                self._data[name] = old
                if not was_dirty:
                    self._dirty.discard(name)
                raise

    def __iter__(self) -> Iterator[str]:
        with self._lock:
            return iter(list(self._data))

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)

    def __repr__(self) -> str:
        with self._lock:
            return f"State({self._data!r})"

    def update(self, *args: Any, **kwargs: Any) -> None:
        """Set several keys with one write; none are kept if one cannot be stored."""
        with self.batch():
            super().update(*args, **kwargs)

    def clear(self) -> None:
        """Remove every key with one write."""
        with self._lock:
            old, old_dirty, old_cleared = self._data, set(self._dirty), self._cleared
            self._data, self._dirty, self._cleared = {}, set(), True
            try:
                self._changed()
            except BaseException:
                self._data, self._dirty, self._cleared = old, old_dirty, old_cleared
                raise

    # -- persistence

    @contextmanager
    def batch(self) -> Iterator[State]:
        """Group changes into one write at the end; if the block raises, they are undone.

        >>> import tempfile; s = State(tempfile.mkdtemp() + "/s")
        >>> with s.batch():
        ...     s["a"] = 1; s["b"] = 2
        >>> sorted(State(s.path).items())
        [('a', 1), ('b', 2)]
        """
        with self._lock:
            before = (dict(self._data), set(self._dirty), self._cleared)
            self._deferred += 1
            try:
                yield self
            except BaseException:
                self._data, self._dirty, self._cleared = before
                raise
            finally:
                self._deferred -= 1
            if self._deferred == 0:
                try:
                    self.save()
                except BaseException:
                    self._data, self._dirty, self._cleared = before
                    raise

    def save(self) -> None:
        """Write the store now (after changing a list or dict held in it in place).

        Under the store's file lock: what another writer saved since is read first, and
        this store's own changes are applied over it (every key, for a call by hand).
        """
        with self._lock:
            dirty = self._dirty if (self._dirty or self._cleared) else set(self._data)
            try:
                with state_files.locked(self.path):
                    merged = self._merged(dirty)
                    blob = self._encode(merged)
                    self._write(blob)
                    self._seen = state_files.signature(self.path)
            except OSError as exc:
                raise StateError(f"cannot lock the state of {self._what()} at "
                                 f"{self.path}{state_files.LOCK_SUFFIX}: "
                                 f"{exc.strerror or exc} (set {STATE_DIR_ENV} to a writable "
                                 "folder)") from None
            self._data = merged
            self._dirty, self._cleared = set(), False

    def reload(self) -> None:
        """Read what other writers saved; this store's unsaved changes stay over it."""
        with self._lock:
            self._data = self._merged(self._dirty)

    def _merged(self, dirty: set[str]) -> dict[str, Any]:
        """The file's content (when another writer changed it) with ``dirty`` keys ours."""
        now = state_files.signature(self.path)
        if now == self._seen and not self._cleared:
            return dict(self._data)
        base = {} if self._cleared else self._load()
        self._seen = now
        for name in dirty:
            if name in self._data:
                base[name] = self._data[name]
            else:
                base.pop(name, None)
        return base

    def _changed(self) -> None:
        if self._deferred:
            self._encode()  # check the value now, so the error points at the bad line
        else:
            self.save()

    def _encode(self, data: dict[str, Any] | None = None) -> bytes:
        import msgpack

        try:
            blob: bytes = msgpack.packb({"version": FORMAT_VERSION,
                                         "data": self._data if data is None else data},
                                        use_bin_type=True)
        except (TypeError, ValueError, OverflowError) as exc:
            raise StateError(f"state of {self._what()} cannot be stored: {exc} (values may be "
                             "None, bool, int, float, str, bytes, list and dict)") from None
        if len(blob) > self.max_bytes:
            raise StateError(f"state of {self._what()} would take {len(blob)} bytes; the limit "
                             f"is {self.max_bytes} (keep offsets and small values only)")
        return blob

    def _write(self, blob: bytes) -> None:
        folder = os.path.dirname(self.path) or "."
        tmp = state_files.temp_path(self.path)
        try:
            os.makedirs(folder, exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(blob)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            # The rename itself is durable only once the folder is synced.
            fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise StateError(f"cannot save the state of {self._what()} to {self.path}: "
                             f"{exc.strerror or exc} (set {STATE_DIR_ENV} to a writable "
                             "folder)") from None

    def _load(self) -> dict[str, Any]:
        try:
            with open(self.path, "rb") as f:
                blob = f.read()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise StateError(f"cannot read the state file {self.path}: "
                             f"{exc.strerror or exc}") from None
        import msgpack

        try:
            obj = msgpack.unpackb(blob, raw=False, strict_map_key=False)
        except Exception as exc:  # noqa: BLE001 - msgpack raises several unrelated types
            raise StateError(f"the state file {self.path} is unreadable ({exc}); delete it "
                             "to start with an empty state") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("data"), dict):
            raise StateError(f"the state file {self.path} is not a state file; delete it to "
                             "start with an empty state")
        if obj.get("version") != FORMAT_VERSION:
            raise StateError(f"the state file {self.path} has version {obj.get('version')!r}, "
                             f"this SDK reads version {FORMAT_VERSION}")
        return dict(obj["data"])

    def _what(self) -> str:
        if self.key is None:
            return repr(os.path.basename(self.path))
        k = self.key
        where = f"{k.symbol!r} (rule {k.rule_id!r}, op {k.op_id!r}, instance {k.instance_id}"
        if k.func_id is not None:
            where += f", funcId {k.func_id}"
        return where + ")"
