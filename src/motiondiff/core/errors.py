"""User-facing errors: one clear sentence naming the thing and the fix, no traceback."""

import functools
import sys
from pathlib import Path
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
        except Exception as error:
            cause = find_user_error(error)
            if cause is None:
                raise
            print(f"error: {cause}", file=sys.stderr)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]


def find_user_error(error: BaseException):
    """The UserError behind `error` (Hydra's instantiate wraps them), or None."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, UserError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def require_file(path, what: str, hint: str = "check the path") -> None:
    """Raise a UserError if `path` is not an existing file."""
    if not Path(path).is_file():
        raise UserError(f"{what} not found: '{path}' ({hint}).")


def refuse_existing_outputs(out_dir, names, noun: str) -> None:
    """Raise a UserError if out_dir already holds any file of `names` (a command's outputs are never overwritten)."""
    existing = [name for name in names if (Path(out_dir) / name).exists()]
    if existing:
        raise UserError(
            f"'{Path(out_dir) / existing[0]}' already exists: {noun} never overwrite; give another hydra.run.dir."
        )


def first_sentence(error: BaseException) -> str:
    """The first sentence of an error's message (numpy's load errors go on to advise unpickling, which we never do)."""
    return str(error).split(". ")[0].rstrip(".")
