"""User-facing errors: one clear sentence naming the thing and the fix, no traceback."""

import functools
import sys
from typing import Callable, TypeVar

F = TypeVar("F", bound=Callable)


class UserError(Exception):
    """A problem the user can fix (bad file, bad shape, bad config value)."""


def exit_on_user_error(fn: F) -> F:
    """Wrap an entry point so a UserError prints one line and exits with status 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]


def require_file(path, what: str, hint: str = "check the path") -> None:
    """Raise a UserError if `path` is not an existing file."""
    from pathlib import Path

    if not Path(path).is_file():
        raise UserError(f"{what} not found: '{path}' ({hint}).")
