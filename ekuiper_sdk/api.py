"""The classes a plugin implements, with the names and signatures of the official ``ekuiper`` SDK.

A plugin written for ``ekuiper`` subclasses these after changing only its import line.
Every method has a harmless default, so a subclass implements only what it needs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .state import State


class Context:
    """What a running symbol knows about itself and how it talks back to the rule.

    The runtime hands one to ``open``/``collect``/``close``/``exec``; plugin code never
    creates one. The ``get_*`` methods are the official names; the properties are the
    same values spelled the Python way.
    """

    def get_rule_id(self) -> str:
        """The id of the rule this instance runs in."""
        raise NotImplementedError

    def get_op_id(self) -> str:
        """The id of the operator (node) in that rule."""
        raise NotImplementedError

    def get_instance_id(self) -> int:
        """The index of this instance when the operator runs several in parallel."""
        raise NotImplementedError

    def get_logger(self) -> logging.Logger:
        """A ``logging.Logger`` whose lines name the plugin, rule, op and instance."""
        raise NotImplementedError

    def emit(self, message: dict[str, Any], meta: dict[str, Any] | None = None) -> None:
        """Source only: send one tuple into the rule; ``message`` must be a dict."""
        raise NotImplementedError

    def emit_error(self, error: str) -> None:
        """Source only: report an error; it is logged (eKuiper v2 has no error frame)."""
        raise NotImplementedError

    def ack_ok(self) -> None:
        """Sink only: acknowledge the frame being collected (when the rule sets ``requireAck``)."""
        raise NotImplementedError

    def ack_error(self, error: str) -> None:
        """Sink only: report that the frame being collected failed, with a reason."""
        raise NotImplementedError

    @property
    def rule_id(self) -> str:
        return self.get_rule_id()

    @property
    def op_id(self) -> str:
        return self.get_op_id()

    @property
    def instance_id(self) -> int:
        return self.get_instance_id()

    @property
    def logger(self) -> logging.Logger:
        return self.get_logger()

    @property
    def func_id(self) -> int:
        """Functions only: which call of the function in the rule (each call site has its own)."""
        return 0

    @property
    def config(self) -> Mapping[str, Any]:
        """The symbol's configuration: a source's ``conf``, a sink action's properties
        (``{}`` for functions). Read-only."""
        raise NotImplementedError

    @property
    def state(self) -> State:
        """A small persistent ``dict`` of this instance that survives plugin restarts.

        See :mod:`ekuiper_sdk.state` for its limits. Example::

            offset = ctx.state.get("offset", 0)
            ctx.state["offset"] = offset + 1
        """
        raise NotImplementedError


class Source:
    """Brings data into rules. ``open`` runs in a thread of its own until it returns.

    Example::

        class Counter(Source):
            def configure(self, datasource, conf):
                self.step = conf.get("step", 1)

            def open(self, ctx):
                n = 0
                while True:          # ctx.emit raises SymbolStopped once the rule stops
                    n += self.step
                    ctx.emit({"n": n}, None)
                    time.sleep(1)
    """

    def configure(self, datasource: str, conf: dict[str, Any]) -> None:
        """Take the stream's ``DATASOURCE`` and the source's configuration; raise to refuse them."""

    def open(self, ctx: Context) -> None:
        """Produce data with ``ctx.emit`` until ``close`` is called (or ``emit`` raises)."""

    def close(self, ctx: Context) -> None:
        """The rule stopped: release resources and make ``open`` return. Called exactly once."""


class Sink:
    """Receives a rule's output. ``collect`` is called once per frame, in order.

    Example::

        class Printer(Sink):
            def collect(self, ctx, data):
                print(data)          # bytes, as eKuiper encoded them (JSON by default)
                ctx.ack_ok()         # only needed when the rule sets requireAck
    """

    def configure(self, conf: dict[str, Any]) -> None:
        """Take every property of the rule's sink action; raise to refuse them."""

    def open(self, ctx: Context) -> None:
        """Called once before the first ``collect``."""

    def collect(self, ctx: Context, data: Any) -> None:
        """Handle one frame (``bytes``)."""

    def close(self, ctx: Context) -> None:
        """The rule stopped and every frame received was collected. Called exactly once."""


class Function:
    """A function rules call from SQL. One instance serves every rule that calls it.

    Example::

        class Revert(Function):
            def exec(self, args, ctx):
                return args[0][::-1]
    """

    def validate(self, args: list[Any]) -> str:
        """Check the argument expressions when a rule is created; return "" or why not."""
        return ""

    def exec(self, args: list[Any], ctx: Context) -> Any:
        """Compute the result for one call; raise to fail the call with the exception's text."""
        raise NotImplementedError(f"{type(self).__name__} does not implement exec")

    def is_aggregate(self) -> bool:
        """True when each argument is the list of a group's values."""
        return False
