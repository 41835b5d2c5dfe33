"""``Sink``, where the official SDK has it (``ekuiper.sink``); see :mod:`ekuiper_sdk.api`."""

from __future__ import annotations

from .api import Sink

__all__ = ["Sink"]
