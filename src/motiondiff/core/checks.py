"""Checks of the numbers a user gives (config values, command options): one sentence naming the key and the fix."""

import math
import numbers

from motiondiff.core.errors import UserError


def whole_number(key: str, value, minimum: int = 1, why: str = "") -> int:
    """`value` as an int when it is an integer (not a bool) >= minimum; else a UserError naming `key`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        limit = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise UserError(f"{key}={value!r} must be {limit}{f' ({why})' if why else ''}.")
    return int(value)


def frame_rate(value, key: str = "fps") -> float:
    """`value` as a float when it is a finite positive number of frames per second (not a bool); else a UserError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
        raise UserError(f"{key}={value!r} must be a positive number of frames per second, e.g. {key}=20.")
    return float(value)
