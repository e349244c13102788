"""Pickle files read as plain data: dicts, lists, tuples, strings, numbers, booleans and None, nothing else.

A pickle can name any importable function and call it while it is read, so a downloaded `.pkl` could
run code. The unpickler here refuses every global (the only way a pickle reaches code): a file that
asks for one is refused with one sentence, before anything it names is imported or called.
"""

import io
import pickle
from pathlib import Path

from motiondiff.core.errors import UserError, require_file

PLAIN_TYPES = (dict, list, tuple, str, bytes, int, float, bool, type(None))


class Refused(pickle.UnpicklingError):
    """The pickle asks for something other than plain data."""


class PlainDataUnpickler(pickle.Unpickler):
    """An unpickler that builds only the containers and scalars pickle writes without naming a global."""

    def find_class(self, module: str, name: str):
        raise Refused(f"it asks for {module}.{name}")

    def persistent_load(self, pid):
        raise Refused("it refers to a persistent object")


def load_plain_pickle(path, what: str = "pickle file"):
    """The plain data a pickle file holds; UserError naming the file when it asks to build anything else."""
    require_file(path, what)
    data = Path(path).read_bytes()
    try:
        value = PlainDataUnpickler(io.BytesIO(data)).load()
    except Refused as error:
        raise UserError(
            f"{what} '{path}' is not plain data ({error}); only dicts, lists, strings and numbers are read from "
            "pickles, since a pickle can run code: re-create the file from its source."
        ) from None
    except (pickle.UnpicklingError, EOFError, ValueError, IndexError, TypeError, UnicodeDecodeError) as error:
        raise UserError(f"{what} '{path}' is not a readable pickle ({type(error).__name__}: {error}).") from None
    assert _is_plain(value), "the restricted unpickler built something other than plain data"
    return value


def _is_plain(value) -> bool:
    """Whether value is built only of PLAIN_TYPES (a check of the invariant the unpickler keeps)."""
    if isinstance(value, dict):
        return all(_is_plain(key) and _is_plain(item) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return all(_is_plain(item) for item in value)
    return isinstance(value, PLAIN_TYPES)
