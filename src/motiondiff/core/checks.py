"""Checks of the numbers a user gives (config values, command options): one sentence naming the key and the fix."""

import numbers

from motiondiff.core.errors import UserError


def whole_number(key: str, value, minimum: int = 1, why: str = "") -> int:
    """`value` as an int when it is an integer (not a bool) >= minimum; else a UserError naming `key`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        limit = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise UserError(f"{key}={value!r} must be {limit}{f' ({why})' if why else ''}.")
    return int(value)
