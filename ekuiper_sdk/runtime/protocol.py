"""The eKuiper portable-plugin wire protocol, with no I/O.

Everything the plugin reads from or writes to the host goes through this module:
bytes in, plain frozen dataclasses out, and the reverse. It owns the socket URL
naming, the rules for control answers (one readable line, never ``ok`` for an
error, never starting with ``h``); the strict JSON the Go host can decode is
:mod:`.codec`'s.
No sockets and no threads here, so every rule is testable on its own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import EncodeError, ProtocolError
from . import names
from .codec import dumps, loads

# Command and symbol kinds, as spelled on the wire.
CMD_START = "start"
CMD_STOP = "stop"
SOURCE = "source"
SINK = "sink"
FUNC = "func"
PLUGIN_TYPES = (SOURCE, SINK, FUNC)

OK = b"ok"
HANDSHAKE = b"handshake"

# Function request names.
VALIDATE = "Validate"
EXEC = "Exec"
IS_AGGREGATE = "IsAggregate"
FUNC_REQUESTS = (VALIDATE, EXEC, IS_AGGREGATE)

MAX_ANSWER_CHARS = 1000
IPC_DIR = "/tmp"


# ---------------------------------------------------------------------------
# Names and URLs


def check_name(kind: str, value: str) -> str:
    """Refuse a name that would make an IPC path leave ``/tmp`` or be cut short.

    >>> check_name("rule id", "rule1")
    'rule1'
    """
    if not isinstance(value, str):
        raise ProtocolError(f"{kind} must be a string, got {type(value).__name__}")
    # Every name is a part of a file name under /tmp, with a prefix or suffix around
    # it, so only a slash or a NUL could move or cut the path.
    if not value or "/" in value or "\x00" in value:
        raise ProtocolError(f"{kind} {_short(value)} cannot be used in a socket path "
                            "(it must be non-empty, with no '/' and no NUL)")
    return value


@dataclass(frozen=True)
class Meta:
    """Which running instance a command is about: a rule, an operator, an instance."""

    rule_id: str = ""
    op_id: str = ""
    instance_id: int = 0

    def key(self, symbol: str) -> str:
        """The registry key of a source or sink instance, as the Go SDK spells it."""
        return f"{self.rule_id}_{self.op_id}_{self.instance_id}_{symbol}"

    def stem(self) -> str:
        for kind, value in (("rule id", self.rule_id), ("op id", self.op_id)):
            if not value:
                raise ProtocolError(f"{kind} is empty; sources and sinks need a rule and an op")
            check_name(kind, value)
        return f"{self.rule_id}_{self.op_id}_{self.instance_id}"

    def to_wire(self) -> dict[str, Any]:
        return {"ruleId": self.rule_id, "opId": self.op_id, "instanceId": self.instance_id}


def _ipc(name: str) -> str:
    return f"ipc://{IPC_DIR}/{name}.ipc"


def control_url(plugin_name: str) -> str:
    """``ipc:///tmp/plugin_<name>.ipc``: where the host listens for the plugin's control channel.

    The name is the host's (:mod:`.names`): the code's, unless a host renamed the plugin.
    """
    return _ipc("plugin_" + check_name("plugin name", names.host_name(plugin_name)))


def function_url(symbol: str) -> str:
    """``ipc:///tmp/func_<symbol>.ipc``: the host's REP socket for one function, named as
    the host names it (:mod:`.names`)."""
    return _ipc("func_" + check_name("function name", names.host_name(symbol)))


def source_url(meta: Meta) -> str:
    """Where the host's PULL socket listens for a source instance's tuples."""
    return _ipc(meta.stem())


def sink_url(meta: Meta) -> str:
    """Where a sink instance listens (PULL) for the host's frames."""
    return _ipc(meta.stem())


def sink_ack_url(meta: Meta) -> str:
    """Where the host's PULL socket listens for a sink instance's acks."""
    return _ipc(meta.stem() + "_ack")


def url_path(url: str) -> str:
    """The file system path of an ``ipc://`` URL."""
    return url[len("ipc://"):]


# ---------------------------------------------------------------------------
# Control commands


@dataclass(frozen=True)
class Control:
    """The argument of a start or stop command."""

    symbol_name: str
    plugin_type: str
    meta: Meta = field(default_factory=Meta)
    data_source: str = ""
    config: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return self.meta.key(self.symbol_name)

    @property
    def instance_key(self) -> str:
        """The key of the running instance a command starts or stops: one per function
        name (it serves every rule), one per rule, op and instance for sources and sinks.

        >>> Control("revert", FUNC).instance_key, Control("print", SINK).instance_key
        ('func_revert', '__0_print')
        """
        return "func_" + self.symbol_name if self.plugin_type == FUNC else self.key

    def label(self) -> str:
        """How a user would name this instance in a log line or an error."""
        kind = {SOURCE: "source", SINK: "sink", FUNC: "function"}.get(self.plugin_type,
                                                                       self.plugin_type)
        if self.plugin_type == FUNC:
            return f"{kind} '{self.symbol_name}'"
        return (f"{kind} '{self.symbol_name}' (rule {self.meta.rule_id!r}, op {self.meta.op_id!r}, "
                f"instance {self.meta.instance_id})")

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"symbolName": self.symbol_name, "meta": self.meta.to_wire(),
                               "pluginType": self.plugin_type}
        if self.data_source:
            out["dataSource"] = self.data_source
        if self.config:
            out["config"] = dict(self.config)
        return out


@dataclass(frozen=True)
class Command:
    cmd: str
    control: Control

    def to_wire(self) -> bytes:
        arg = json.dumps(self.control.to_wire(), separators=(",", ":"))
        return json.dumps({"cmd": self.cmd, "arg": arg}, separators=(",", ":")).encode()


def _loads(data: bytes, what: str) -> Any:
    if not data.strip():
        raise ProtocolError(f"{what} is empty")
    try:
        # Decode first: a bytes parser may guess UTF-16 or UTF-32 from the bytes, which
        # the host never sends.
        return loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ProtocolError(f"{what} is not valid UTF-8") from None
    except RecursionError:
        raise ProtocolError(f"{what} is nested too deeply") from None
    except ValueError as exc:
        raise ProtocolError(f"{what} is not JSON ({exc})") from None


def _field(obj: Mapping[str, Any], name: str, kind: type, what: str, default: Any = None) -> Any:
    value = obj.get(name, default)
    if value is None and default is None:
        raise ProtocolError(f"{what} has no '{name}'")
    # bool is an int in Python; the host never sends one where a number is meant.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ProtocolError(f"{what} field '{name}' must be {kind.__name__}, "
                            f"got {type(value).__name__}")
    return value


def decode_meta(obj: Any, what: str = "meta") -> Meta:
    if not isinstance(obj, dict):
        raise ProtocolError(f"{what} must be an object, got {type(obj).__name__}")
    return Meta(rule_id=_field(obj, "ruleId", str, what, ""),
                op_id=_field(obj, "opId", str, what, ""),
                instance_id=_field(obj, "instanceId", int, what, 0))


def decode_command(data: bytes) -> Command:
    """Parse a control command sent by the host.

    >>> arg = json.dumps({"symbolName": "print", "pluginType": "sink"})
    >>> decode_command(json.dumps({"cmd": "stop", "arg": arg}).encode()).control.symbol_name
    'print'
    """
    obj = _loads(data, "command")
    if not isinstance(obj, dict):
        raise ProtocolError(f"command must be a JSON object, got {type(obj).__name__}")
    cmd = _field(obj, "cmd", str, "command")
    if cmd not in (CMD_START, CMD_STOP):
        raise ProtocolError(f"unknown command {_short(cmd)}; expected 'start' or 'stop'")
    arg = _field(obj, "arg", str, "command")
    ctrl = _loads(arg.encode("utf-8", "surrogatepass"), "command arg")
    if not isinstance(ctrl, dict):
        raise ProtocolError(f"command arg must be a JSON object, got {type(ctrl).__name__}")
    what = "command arg"
    plugin_type = _field(ctrl, "pluginType", str, what)
    if plugin_type not in PLUGIN_TYPES:
        raise ProtocolError(f"unknown pluginType {_short(plugin_type)}; "
                            "expected 'source', 'sink' or 'func'")
    symbol = check_name("symbol name", _field(ctrl, "symbolName", str, what))
    if plugin_type == FUNC:
        symbol = names.code_name(symbol)      # from here on, the code's name (see names)
    config = ctrl.get("config")
    if config is None:
        config = {}
    elif not isinstance(config, dict):
        raise ProtocolError(f"{what} field 'config' must be an object, got {type(config).__name__}")
    return Command(cmd=cmd, control=Control(
        symbol_name=symbol,
        plugin_type=plugin_type,
        meta=decode_meta(ctrl.get("meta", {})),
        data_source=_field(ctrl, "dataSource", str, what, "") or _config_datasource(config),
        config=config,
    ))


def _config_datasource(config: Mapping[str, Any]) -> str:
    """The stream's DATASOURCE as eKuiper v2 sends it: inside the source's config.

    The start command has a ``dataSource`` field, but a v2 host never fills it for a
    portable source; it merges the stream's properties, ``datasource`` among them, over
    the source's yaml section (docs/protocol.md, "Source").

    >>> _config_datasource({"datasource": "topicX", "format": "json"})
    'topicX'
    """
    value = config.get("datasource", "")
    return value if isinstance(value, str) else ""


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def control_answer(error: str | None = None) -> bytes:
    """The bytes that answer a control command: ``ok``, or one readable error line.

    The host treats an answer starting with ``h`` as a keepalive and resends its
    command forever, and treats anything but ``ok`` as an error, so an error text
    is folded onto one line, never starts with ``h`` and is never ``ok``.

    >>> control_answer("handler not found")
    b'Handler not found'
    """
    if error is None:
        return OK
    return one_line(error).encode("utf-8", "replace")


def one_line(text: str) -> str:
    """Fold any text into one bounded line that no host could take for ``ok`` or a handshake."""
    line = " | ".join(part.strip() for part in str(text).splitlines() if part.strip())
    if not line:
        line = "error"
    if len(line) > MAX_ANSWER_CHARS:
        line = line[: MAX_ANSWER_CHARS - 3] + "..."
    if line.startswith("h"):
        line = "H" + line[1:]
    if line == "ok":
        line = "error: ok"
    return line


def exception_line(exc: BaseException) -> str:
    """``ExcType: message``, the form errors take on the wire (tracebacks go to the log)."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# ---------------------------------------------------------------------------
# Function requests and replies


@dataclass(frozen=True)
class FuncRequest:
    func: str
    arg: Any


@dataclass(frozen=True)
class FuncMeta:
    """Which rule call site an ``Exec`` comes from; ``funcId`` tells apart two calls in one rule."""

    meta: Meta
    func_id: int


def decode_func_request(data: bytes) -> FuncRequest:
    obj = _loads(data, "function request")
    if not isinstance(obj, dict):
        raise ProtocolError(f"function request must be a JSON object, got {type(obj).__name__}")
    name = _field(obj, "func", str, "function request")
    if name not in FUNC_REQUESTS:
        raise ProtocolError(f"unknown function request {_short(name)}; "
                            "expected 'Validate', 'Exec' or 'IsAggregate'")
    arg = obj.get("arg")
    if name == VALIDATE and arg is None:
        # Go marshals the nil slice of a call with no arguments, f(), as null.
        arg = []
    if name in (VALIDATE, EXEC) and not isinstance(arg, list):
        raise ProtocolError(f"{name} arg must be a list, got {type(arg).__name__}")
    return FuncRequest(func=name, arg=arg)


def split_exec_arg(arg: list[Any]) -> tuple[list[Any], FuncMeta]:
    """Split an ``Exec`` arg into the call's arguments and the caller's context."""
    if not arg:
        raise ProtocolError("Exec arg is empty; the last element must be the function context")
    raw = arg[-1]
    if not isinstance(raw, str):
        raise ProtocolError("Exec function context must be a JSON string, "
                            f"got {type(raw).__name__}")
    obj = _loads(raw.encode("utf-8", "surrogatepass"), "Exec function context")
    meta = decode_meta(obj, "Exec function context")
    if not meta.rule_id or not meta.op_id:
        raise ProtocolError("Exec function context needs ruleId and opId")
    func_id = _field(obj, "funcId", int, "Exec function context", 0)
    return arg[:-1], FuncMeta(meta=meta, func_id=func_id)


def func_reply(state: bool, result: Any) -> bytes:
    """Encode a function reply; a result the host cannot read becomes a failed reply."""
    try:
        return dumps({"state": state, "result": result})
    except EncodeError as exc:
        return dumps({"state": False, "result": f"result cannot be sent to eKuiper: {exc}"})


def encode_tuple(message: Any, meta: Any = None) -> bytes:
    """One source frame: ``{"message": {...}, "meta": {...}|null}``."""
    # The exact-type tests first: an ABC isinstance costs more than the rest of the frame.
    if type(message) is not dict and not isinstance(message, Mapping):
        raise EncodeError(f"a source message must be a dict, got {type(message).__name__} "
                          "(eKuiper cannot decode anything else as a tuple)")
    if meta is not None and type(meta) is not dict and not isinstance(meta, Mapping):
        raise EncodeError(f"a source meta must be a dict or None, got {type(meta).__name__}")
    return dumps({"message": message, "meta": meta})


def encode_source_error(symbol: str, text: str) -> bytes:
    """A source frame that carries an error to the rule's metrics.

    eKuiper v2 has no error frame, but a frame it cannot decode as a tuple is counted in
    the source's ``exceptions_total`` and shown, with the frame's text, as its
    ``last_exception`` (``Invalid data format, cannot decode <frame> to json format with
    error ...``): seen on eKuiper v2.4, the one place a running source's error reaches the
    rule's status. The frame starts with ``source``, so it is never JSON.

    >>> encode_source_error("pyjson", "open failed: OSError: no device")
    b"source 'pyjson' open failed: OSError: no device"
    """
    return f"source {_short(symbol)} {one_line(text)}".encode("utf-8", "replace")


ACK_OK = b"{}"


def encode_ack(error: str | None = None) -> bytes:
    """A sink ack: ``{}`` for success, ``{"error": "text"}`` for failure."""
    if error is None:
        return ACK_OK
    return dumps({"error": one_line(error) if error else "error"})
