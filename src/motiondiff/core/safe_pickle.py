"""Pickle files read as plain data: dicts, lists, tuples, strings, numbers, booleans and None (and, for object
arrays saved with np.save, numpy arrays), nothing else.

A pickle can name any importable function and call it while it is read, so a downloaded `.pkl` could
run code. The unpickler here refuses every global (the only way a pickle reaches code): a file that
asks for one is refused with one sentence, before anything it names is imported or called.
"""

import importlib
import io
import pickle
from pathlib import Path

import numpy as np

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


# What numpy's pickle of an object array names: rebuilding arrays and dtypes, nothing that runs other code.
ARRAY_GLOBALS = {
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class ArrayUnpickler(PlainDataUnpickler):
    """Plain data plus numpy arrays: the only globals it builds are numpy's array and dtype constructors."""

    def find_class(self, module: str, name: str):
        if (module, name) in ARRAY_GLOBALS:
            return getattr(importlib.import_module(module), name)
        raise Refused(f"it asks for {module}.{name}")


def header_dtype(handle):
    """The dtype the .npy header at the start of an open file declares (the file is left at its data)."""
    version = np.lib.format.read_magic(handle)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    return read(handle)[2]


def npy_dtype(path):
    """The dtype a .npy file's header declares, or None when it is not a .npy file."""
    with open(path, "rb") as handle:
        try:
            return header_dtype(handle)
        except ValueError:
            return None


def load_object_npy(path, what: str = "array file"):
    """A .npy file whose array holds objects (e.g. captions' token sequences of different lengths), read with
    ArrayUnpickler: arrays, numbers and strings only; UserError naming the file for anything else."""
    with open(path, "rb") as handle:
        try:
            dtype = header_dtype(handle)
        except ValueError as error:
            raise UserError(f"{what} '{path}' is not a .npy file ({error}).") from None
        if dtype != np.dtype(object):
            return np.load(path, allow_pickle=False)
        try:
            return ArrayUnpickler(handle).load()
        except Refused as error:
            raise UserError(
                f"{what} '{path}' holds objects other than arrays ({error}); only arrays, numbers and strings are "
                "read from pickled .npy files, since a pickle can run code: re-extract the file."
            ) from None
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as error:
            raise UserError(f"{what} '{path}' is not a readable .npy file ({type(error).__name__}: {error}).") from None
