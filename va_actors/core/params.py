"""Checks for plugin parameters: a ValueError that names the parameter and the value.

Params come from a pipeline file; a wrong one must fail at start-up with a
message saying which, not later with a numpy error.
"""

from __future__ import annotations

__all__ = ["non_negative_number", "optional_positive_int", "positive_int", "positive_number"]


def positive_number(value: object, name: str) -> float:
    """``value`` as a float > 0, or a ValueError naming the parameter."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def non_negative_number(value: object, name: str) -> float:
    """``value`` as a float >= 0, or a ValueError naming the parameter."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    return float(value)


def positive_int(value: object, name: str) -> int:
    """``value`` as an int > 0, or a ValueError naming the parameter."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def optional_positive_int(value: object, name: str) -> int | None:
    """``value`` as an int > 0 or None, or a ValueError naming the parameter."""
    return None if value is None else positive_int(value, name)
