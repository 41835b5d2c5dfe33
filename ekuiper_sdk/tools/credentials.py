"""The token and server URL the tools send to eKuiper, checked without ever echoing them.

A token read from a file written on Windows ends in ``\\r``; ``http.client`` refuses
such a header with an error that prints it whole. Tokens are trimmed of surrounding
white space and refused, by position only, when a character no HTTP header may carry is
left inside. eKuiper authenticates with a token in the ``Authorization`` header, not
with HTTP basic credentials (its ``basic.authentication`` checks a JWT, per its source),
so a ``user:password@`` in ``--server`` is refused, and no message repeats it.

>>> clean_token(" eyJhbGciOi.x.SIG\\r\\n")
'eyJhbGciOi.x.SIG'
>>> redact("http://admin:pw@10.0.0.5:9081")
'http://***@10.0.0.5:9081'
"""

from __future__ import annotations

import re
import urllib.parse

from ..errors import RestError

_BAD_HEADER_CHAR = re.compile(r"[^\x21-\x7e\x80-\xff ]|[^\x00-\xff]")


def clean_token(token: str | None) -> str | None:
    """``token`` without surrounding white space; ``RestError`` when it cannot be a header.

    The error says where the bad character is and what it is, never the token itself.
    """
    if token is None:
        return None
    trimmed = token.strip()
    if not trimmed:
        return None
    bad = _BAD_HEADER_CHAR.search(trimmed)
    if bad:
        char = bad.group()
        raise RestError(f"the token (from --token or $EKUIPER_TOKEN) has {_describe(char)} at "
                        f"character {bad.start() + 1} of {len(trimmed)}, which no HTTP header "
                        "may carry", hint="pass the token exactly as eKuiper issued it")
    return trimmed


def _describe(char: str) -> str:
    if char in "\r\n\t":
        return {"\r": "a carriage return", "\n": "a line break", "\t": "a tab"}[char]
    if ord(char) < 0x20 or ord(char) == 0x7f:
        return f"the control character U+{ord(char):04X}"
    return f"the non-Latin-1 character U+{ord(char):04X}"


def redact(url: str) -> str:
    """``url`` with any ``user:password@`` replaced by ``***@``, for messages."""
    try:
        parts = urllib.parse.urlsplit(url if "://" in url else "http://" + url)
    except ValueError:
        return "<the --server value>"
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urllib.parse.urlunsplit(parts._replace(netloc="***@" + host))


def refuse_userinfo(server: str) -> None:
    """``RestError`` when ``server`` carries a user or password (which is not repeated)."""
    try:
        netloc = urllib.parse.urlsplit(server if "://" in server else "http://" + server).netloc
    except ValueError:
        return
    if "@" in netloc:
        raise RestError(f"--server {redact(server)} carries a user name or password, which "
                        "eKuiper does not take (it authenticates with a token)",
                        hint="remove the user:password@ part and pass --token or "
                        "$EKUIPER_TOKEN")
