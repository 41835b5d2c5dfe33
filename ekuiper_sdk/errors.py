"""Every exception of ekuiper-sdk, under one base class, :class:`EkuiperSDKError`.

A leaf module: it imports nothing of the SDK and no third-party package, so any layer can
raise these and any caller can catch them without loading the runtime. Each exception keeps
the built-in base it had before (``ValueError``, ``TypeError``, ``TimeoutError``) so that
existing ``except`` clauses still match. Messages are one line that names the thing and,
where there is one, the fix.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable, Optional


class EkuiperSDKError(Exception):
    """The base of every exception the SDK raises on purpose."""


# -- the plugin runtime ------------------------------------------------------------------


class ProtocolError(EkuiperSDKError, ValueError):
    """A frame from the host that does not follow the protocol; the message is one line."""


class EncodeError(EkuiperSDKError, TypeError):
    """A value that has no JSON form the host can read."""


class ChannelStopped(EkuiperSDKError):
    """The channel was closed because its symbol stopped."""


class SymbolStopped(ChannelStopped):
    """Raised by ``ctx.emit`` once the source's rule stopped; ends an ``open`` loop quietly."""


class ConfigError(EkuiperSDKError, ValueError):
    """A symbol's configuration that does not fit its declared ``config_type``; one line
    naming the property."""


class SendTimeout(EkuiperSDKError):
    """The host did not take a frame within the send timeout."""


class SourceFailed(EkuiperSDKError):
    """A decorated source's code raised: it was logged with its traceback, and the source
    runner reports the message to the rule (``runtime.protocol.encode_source_error``)."""


class UserCodeError(EkuiperSDKError):
    """User code failed or took too long while the control thread waited for it."""


class CallTimeout(EkuiperSDKError, TimeoutError):
    """A call handed to an event-loop thread overran its time limit and was cancelled."""


class RecordError(EkuiperSDKError, ValueError):
    """A frame that cannot be turned into records; the message says why in one line."""


class StateError(EkuiperSDKError):
    """A state value that cannot be stored, a store over its size limit, or a file problem."""


# -- the test hosts ----------------------------------------------------------------------


class HostError(EkuiperSDKError):
    """The test host could not do what was asked; the message says what and why.

    Messages that eKuiper would show a user keep eKuiper's wording (``receive error: ...``).
    """


class InvalidFrameError(HostError):
    """A source frame eKuiper could not decode into a tuple; ``raw`` holds the frame."""

    def __init__(self, message: str, raw: bytes) -> None:
        super().__init__(message)
        self.raw = raw


class SinkAckError(HostError):
    """A sink acknowledged a frame with ``{"error": text}``; ``text`` is that text."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class FunctionError(HostError):
    """A function call answered ``{"state": false, "result": ...}``; ``result`` is that
    result, the message how eKuiper prints it."""

    def __init__(self, message: str, result: Any) -> None:
        super().__init__(message)
        self.result = result


class SourceConfigError(EkuiperSDKError, ValueError):
    """A source yaml file that cannot be read; the message names the file and the fix."""


class SocketNameWarning(UserWarning):
    """A test host runs the plugin under other socket names, because a live listener (an
    eKuiper with the plugin installed) holds its own."""


class SourceConfigWarning(UserWarning):
    """A source configuration eKuiper accepts with a warning in its log, such as a
    ``CONF_KEY`` that names no section of ``sources/<name>.yaml``."""


class RealEkuiperError(EkuiperSDKError):
    """A step against a real eKuiper failed; one line naming the step and eKuiper's reason."""


# -- the tools ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a plugin: the file it is in, what is wrong, and how to fix it.

    >>> str(Problem("p/p.json", "'language' is missing", "add \\"language\\": \\"python\\""))
    'p/p.json: \\'language\\' is missing; add "language": "python"'
    """

    path: str
    message: str
    fix: str = ""
    warning: bool = False

    def __str__(self) -> str:
        return ("warning: " + self.text()) if self.warning else self.text()

    def text(self) -> str:
        """The problem without the ``warning: `` mark (JSON output says that in its key).

        >>> Problem("p.json", "odd", warning=True).text()
        'p.json: odd'
        """
        text = f"{self.path}: {self.message}" if self.path else self.message
        if self.fix:
            text += f"; {self.fix}"
        return text


class PackagingError(EkuiperSDKError):
    """A plugin that cannot be packed or installed; ``problems`` holds one line per cause."""

    def __init__(self, problems: Sequence[Problem | str]) -> None:
        self.problems = [p if isinstance(p, Problem) else Problem("", str(p)) for p in problems]
        super().__init__("\n".join(str(p) for p in self.problems))


class VendorError(PackagingError):
    """Wheels that cannot be resolved; one line per requirement and target."""


#: A parameter of the call named in a REST error: ``{name}``, or ``{name=value}``. The
#: library does not know how its caller spells them: by default they read as Python
#: (``token``, ``via='upload'``), and the command line words them as its options
#: (``--token``, ``--via upload``) with :meth:`RestError.worded`.
PARAMETER = re.compile(r"\{(server|token|timeout|via|serve_address|vendor)(?:=([^{}]*))?\}")
#: How a parameter is spelled: its name and value (None for the name alone).
Wording = Callable[[str, Optional[str]], str]


def python_wording(name: str, value: str | None) -> str:
    """A parameter as a Python caller passes it.

    >>> python_wording("token", None), python_wording("via", "upload")
    ('token', "via='upload'")
    """
    return name if value is None else f"{name}={value!r}"


class RestError(EkuiperSDKError):
    """A failed REST call: eKuiper's own error text, the HTTP status, and a hint when known.

    >>> error = RestError("{server} 'x:' is not an http(s) URL", hint="pass {token}")
    >>> str(error)
    "server 'x:' is not an http(s) URL; pass token"
    >>> str(error.worded(lambda name, value: "--" + name))
    "--server 'x:' is not an http(s) URL; pass --token"
    """

    def __init__(self, message: str, status: int | None = None, hint: str = "",
                 wording: Wording = python_wording) -> None:
        self.template = message
        self.hint_template = hint
        self.status = status
        self.wording = wording
        super().__init__(message)

    @property
    def message(self) -> str:
        return self._word(self.template)

    @property
    def hint(self) -> str:
        return self._word(self.hint_template)

    @hint.setter
    def hint(self, hint: str) -> None:
        self.hint_template = hint

    def worded(self, wording: Wording) -> RestError:
        """The same error, its parameters spelled by ``wording``."""
        again = RestError(self.template, self.status, self.hint_template, wording)
        again.__cause__, again.__traceback__ = self.__cause__, self.__traceback__
        return again

    def _word(self, text: str) -> str:
        return PARAMETER.sub(lambda m: self.wording(m.group(1), m.group(2)), text)

    def __str__(self) -> str:
        hint = self.hint
        return self.message + (f"; {hint}" if hint else "")

    def to_dict(self) -> dict[str, Any]:
        return {"ok": False, "status": self.status, "error": self.message, "hint": self.hint}
