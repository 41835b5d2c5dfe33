"""``Function``, where the official SDK has it (``ekuiper.function``)."""

from __future__ import annotations

from .api import Function

__all__ = ["Function"]
