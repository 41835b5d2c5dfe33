"""``Source``, where the official SDK has it (``ekuiper.source``); see :mod:`ekuiper_sdk.api`."""

from __future__ import annotations

from .api import Source

__all__ = ["Source"]
