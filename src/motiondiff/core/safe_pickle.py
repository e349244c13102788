"""Pickle files read as plain data: dicts, lists, tuples, strings, numbers, booleans and None (and, for object
arrays saved with np.save and body models, numpy arrays and sparse matrices as data), nothing else.

A pickle can name any importable function and call it while it is read, so a downloaded `.pkl` could
run code. `load_plain_pickle` refuses every global (the only way a pickle reaches code): a file that
asks for one is refused with one sentence, before anything it names is imported or called.

Arrays need numpy's globals, and those are dangerous too: `numpy.ndarray(shape, dtype, buffer, offset)` forges
object pointers or reads memory outside a buffer. GuardedUnpickler therefore gives a pickle no real class or
function: `numpy.ndarray` and `object` are inert tokens that cannot be called, each allowed function is a
Guarded wrapper that accepts only the arguments numpy's own pickles pass (an empty int8 array, a dtype by its
canonical name), and REDUCE, NEWOBJ, BUILD, APPEND and SETITEM act only on what is explicitly allowed. Arrays
holding Python objects are built only where objects are asked for (`load_object_npy`'s outer array), the bytes
arrays take may not exceed the file's size, and sparse matrices are checked before they are made dense.
"""

import io
import math
import operator
import os
import pickle
from pathlib import Path

import numpy as np

from motiondiff.core.errors import UserError, require_file

try:  # numpy 2 (numpy.core is its deprecated alias)
    from numpy._core import multiarray, numeric
except ImportError:  # numpy 1
    from numpy.core import multiarray, numeric

PLAIN_TYPES = (dict, list, tuple, str, bytes, int, float, bool, type(None))
CONTAINERS = (dict, list, tuple)
MAX_DEPTH = 64  # containers nested deeper than this are refused (no real file nests more than a few levels)


class Refused(pickle.UnpicklingError):
    """The pickle asks for something other than plain data (`module`: the module of the global it names, if any)."""

    def __init__(self, message: str, module: str = ""):
        super().__init__(message)
        self.module = module


class PlainDataUnpickler(pickle.Unpickler):
    """An unpickler that builds only the containers and scalars pickle writes without naming a global."""

    def find_class(self, module: str, name: str):
        raise Refused(f"it asks for {module}.{name}", module)

    def persistent_load(self, pid):
        raise Refused("it refers to a persistent object")


READ_ERRORS = (
    pickle.UnpicklingError,
    EOFError,
    ValueError,
    IndexError,
    TypeError,
    AttributeError,
    MemoryError,
    RecursionError,
)


def load_plain_pickle(path, what: str = "pickle file"):
    """The plain data a pickle file holds; UserError naming the file when it asks to build anything else."""
    require_file(path, what)
    data = Path(path).read_bytes()
    try:
        value = PlainDataUnpickler(io.BytesIO(data)).load()
        check_plain(value)
    except Refused as error:
        raise UserError(
            f"{what} '{path}' is not plain data ({error}); only dicts, lists, strings and numbers are read from "
            "pickles, since a pickle can run code: re-create the file from its source."
        ) from None
    except (*READ_ERRORS, UnicodeDecodeError) as error:
        raise UserError(f"{what} '{path}' is not a readable pickle ({type(error).__name__}: {error}).") from None
    return value


def check_plain(value, depth: int = 0, seen=None) -> None:
    """Refused unless value is built only of PLAIN_TYPES, nested at most MAX_DEPTH deep (each container once)."""
    seen = set() if seen is None else seen
    if depth > MAX_DEPTH:
        raise Refused(f"it nests containers more than {MAX_DEPTH} deep")
    if not isinstance(value, PLAIN_TYPES):
        raise Refused(f"it builds a {type(value).__name__}")
    if not isinstance(value, CONTAINERS) or id(value) in seen:
        return
    for item in (x for pair in value.items() for x in pair) if isinstance(value, dict) else value:
        check_plain(item, depth + 1, seen)
    seen.add(id(value))  # after its items: a container that holds itself is too deep, a shared one checked once


class Token:
    """What a pickle gets for a class it may name but never call or build (numpy.ndarray, object)."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name


NDARRAY = Token("numpy.ndarray")
OBJECT = Token("builtins.object")


class Guarded:
    """A function a pickle may call (REDUCE) as function(unpickler, *args); it checks its arguments itself."""

    __slots__ = ("function",)

    def __init__(self, function):
        self.function = function


def _named(value) -> str:
    """How a refusal names what a pickle tried to call or build."""
    if isinstance(value, Token):
        return value.name
    if isinstance(value, Guarded):
        return value.function.__name__.lstrip("_")
    return value.__qualname__ if isinstance(value, type) else f"a {type(value).__name__}"


def _is_shape(value) -> bool:
    """Whether value is a tuple of non-negative Python ints (an array's shape as numpy pickles it)."""
    return type(value) is tuple and all(type(n) is int and n >= 0 for n in value)


def _is_text(value, choices) -> bool:
    """Whether value is a str or bytes equal to one of choices (no comparison with anything else is tried)."""
    return type(value) in (str, bytes) and value in choices


class GuardedUnpickler(pickle._Unpickler):
    """The pure-Python unpickler with every opcode that calls or mutates restricted to GLOBALS' tokens, Guarded
    functions, SparseState classes and the arrays and dtypes those build; Refused for anything else."""

    GLOBALS: dict = {}
    OBJECT_ARRAYS = False  # whether arrays of dtype object (whose items the pickle gives) may be built
    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file, size: int, **kwargs):
        super().__init__(file, **kwargs)
        # bytes made from the pickle's strings (text to bytes, bytes into arrays): a real file makes each once
        self.bytes_left = 2 * size
        self.fresh = {}  # id -> array made by _reconstruct and not built yet (each is built once)

    def find_class(self, module: str, name: str):
        if (module, name) in self.GLOBALS:
            return self.GLOBALS[(module, name)]
        raise Refused(f"it asks for {module}.{name}", module)

    def persistent_load(self, pid):
        raise Refused("it refers to a persistent object")

    def _instantiate(self, klass, args):
        raise Refused(f"it creates {_named(klass)} by protocol 0's INST or OBJ")

    def load_reduce(self):
        args = self.stack.pop()
        function = self.stack[-1]
        if not isinstance(function, Guarded) or type(args) is not tuple:
            raise Refused(f"it calls {_named(function)}")
        self.stack[-1] = function.function(self, *args)

    def load_newobj(self):
        args = self.stack.pop()
        self.stack[-1] = _new(self.stack[-1], args, {})

    def load_newobj_ex(self):
        kwargs, args = self.stack.pop(), self.stack.pop()
        self.stack[-1] = _new(self.stack[-1], args, kwargs)

    def load_build(self):
        state = self.stack.pop()
        target = self.stack[-1]
        if isinstance(target, SparseState):
            target.__setstate__(state)
        elif isinstance(target, np.ndarray):
            self.build_array(target, state)
        elif isinstance(target, np.dtype):
            _build_dtype(target, state)
        else:
            raise Refused(f"it sets the state of {_named(target)}")

    def build_array(self, array: np.ndarray, state) -> None:
        """ndarray.__setstate__ on an array fresh from _reconstruct, for a state numpy's own pickles write."""
        if self.fresh.pop(id(array), None) is not array:
            raise Refused("it sets the state of an array twice or of one it did not build empty")
        if type(state) is not tuple or len(state) != 5 or not _is_shape(state[1]) or not isinstance(state[2], np.dtype):
            raise Refused("it gives an array a state numpy does not write")
        _, shape, dtype, _, data = state
        if dtype.hasobject:
            if not (self.OBJECT_ARRAYS and dtype == np.dtype(object)) or type(data) is not list:
                raise Refused(f"it builds an array of dtype {dtype}, which holds Python objects")
            if len(data) != math.prod(shape):
                raise Refused(f"its object array of shape {shape} has {len(data)} items")
        elif type(data) not in (bytes, str) or len(data) != math.prod(shape) * dtype.itemsize:
            raise Refused(f"its array of shape {shape} and dtype {dtype} does not match its data")
        else:
            self.spend(len(data))
        array.__setstate__(state)

    def spend(self, size: int) -> None:
        """Count size bytes of array data against the file's size; Refused past it (one string reused to inflate)."""
        self.bytes_left -= size
        if self.bytes_left < 0:
            raise Refused("its arrays hold more bytes than the file could (it reuses its data to inflate them)")

    def load_append(self):
        value = self.stack.pop()
        self.append_items(self.stack[-1], [value])

    def load_appends(self):
        items = self.pop_mark()
        self.append_items(self.stack[-1], items)

    def append_items(self, target, items) -> None:
        if type(target) is not list:
            raise Refused(f"it appends to {_named(target)}")
        target.extend(items)

    def load_setitem(self):
        value, key = self.stack.pop(), self.stack.pop()
        self.set_items(self.stack[-1], [key, value])

    def load_setitems(self):
        items = self.pop_mark()
        self.set_items(self.stack[-1], items)

    def set_items(self, target, items) -> None:
        if type(target) is not dict:
            raise Refused(f"it sets items of {_named(target)}")
        for i in range(0, len(items), 2):
            target[items[i]] = items[i + 1]

    def load_additems(self):
        raise Refused("it builds a set")

    def load_readonly_buffer(self):
        raise Refused("it asks for an out-of-band buffer")


for _opcode, _method in [
    (pickle.REDUCE, "load_reduce"),
    (pickle.NEWOBJ, "load_newobj"),
    (pickle.NEWOBJ_EX, "load_newobj_ex"),
    (pickle.BUILD, "load_build"),
    (pickle.APPEND, "load_append"),
    (pickle.APPENDS, "load_appends"),
    (pickle.SETITEM, "load_setitem"),
    (pickle.SETITEMS, "load_setitems"),
    (pickle.ADDITEMS, "load_additems"),
    (pickle.READONLY_BUFFER, "load_readonly_buffer"),
]:
    GuardedUnpickler.dispatch[_opcode[0]] = getattr(GuardedUnpickler, _method)


def _new(cls, args, kwargs):
    """NEWOBJ / NEWOBJ_EX: cls.__new__(cls) for the SparseState classes only, without arguments."""
    if not (isinstance(cls, type) and issubclass(cls, SparseState)):
        raise Refused(f"it creates {_named(cls)}")
    if not (type(args) is tuple and not args and type(kwargs) is dict and not kwargs):
        raise Refused(f"it creates a {cls.layout} matrix with arguments")
    return cls()


def _build_dtype(dtype: np.dtype, state) -> None:
    """dtype.__setstate__ only with the state numpy writes for this dtype in the byte order the state names."""
    if type(state) is not tuple or len(state) < 2 or type(state[1]) is not str or state[1] not in ("<", ">", "|", "="):
        raise Refused("it gives a dtype a state numpy does not write")
    if dtype.newbyteorder(state[1]).__reduce__()[2] != state:
        raise Refused(f"it gives dtype {dtype} a state numpy does not write for it")
    dtype.__setstate__(state)


def _reconstruct(unpickler, subtype, shape, typecode):
    """numpy's _reconstruct as its pickles call it: an empty int8 ndarray that BUILD then fills, nothing else."""
    if not (subtype is NDARRAY and _is_shape(shape) and shape == (0,) and _is_text(typecode, (b"b", "b"))):
        raise Refused("it asks numpy's _reconstruct for something other than an empty ndarray")
    array = multiarray._reconstruct(np.ndarray, (0,), b"b")
    unpickler.fresh[id(array)] = array
    return array


def _dtype(unpickler, name, align=False, copy=True):
    """np.dtype(name, False, True) for a dtype's canonical name (as numpy pickles it): a new, simple dtype."""
    flags_ok = type(align) in (bool, int) and align == 0 and type(copy) in (bool, int) and copy == 1
    if not (type(name) is str and flags_ok):
        raise Refused("it asks numpy.dtype for something other than a dtype by its name")
    dtype = np.dtype(name, False, True)
    if dtype.__reduce__()[1][0] != name:
        raise Refused(f"it asks numpy.dtype for {name!r}, which is not a dtype's canonical name")
    return dtype


def _scalar(unpickler, dtype, data):
    """numpy's scalar(dtype, bytes): one number from its bytes, for dtypes without Python objects."""
    if (
        not isinstance(dtype, np.dtype)
        or dtype.hasobject
        or type(data) not in (bytes, str)
        or len(data) != dtype.itemsize
    ):
        raise Refused("it asks numpy's scalar for something other than a number from its bytes")
    return multiarray.scalar(dtype, data)


def _frombuffer(unpickler, buffer, dtype, shape, order):
    """numpy's _frombuffer as protocol 5 pickles call it: an array over bytes of the pickle itself."""
    if type(buffer) not in (bytes, bytearray) or not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise Refused("it asks numpy's _frombuffer for something other than numbers from bytes")
    if not (_is_shape(shape) and _is_text(order, ("C", "F"))):
        raise Refused("it asks numpy's _frombuffer for an array of another shape or order")
    return numeric._frombuffer(buffer, dtype, shape, order)


# What numpy's pickle of an object array names: rebuilding arrays and dtypes, nothing that runs other code.
_NUMPY = {"_reconstruct": Guarded(_reconstruct), "scalar": Guarded(_scalar)}
ARRAY_GLOBALS = {
    ("numpy._core.multiarray", "_reconstruct"): _NUMPY["_reconstruct"],
    ("numpy.core.multiarray", "_reconstruct"): _NUMPY["_reconstruct"],
    ("numpy", "ndarray"): NDARRAY,
    ("numpy", "dtype"): Guarded(_dtype),
}


class ArrayUnpickler(GuardedUnpickler):
    """Plain data plus numpy arrays (ARRAY_GLOBALS), object arrays among them."""

    GLOBALS = ARRAY_GLOBALS
    OBJECT_ARRAYS = True


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
    refusal = (
        f"{what} '{path}' holds objects other than arrays ({{}}); only arrays, numbers and strings are read from "
        "pickled .npy files, since a pickle can run code: re-extract the file."
    )
    with open(path, "rb") as handle:
        try:
            dtype = header_dtype(handle)
        except ValueError as error:
            raise UserError(f"{what} '{path}' is not a .npy file ({error}).") from None
        if dtype.hasobject and dtype != np.dtype(object):
            raise UserError(refusal.format(f"its dtype {dtype} mixes objects into records"))
        if dtype != np.dtype(object):
            return np.load(path, allow_pickle=False)
        try:
            return check_object_array(ArrayUnpickler(handle, os.fstat(handle.fileno()).st_size).load())
        except Refused as error:
            raise UserError(refusal.format(error)) from None
        except READ_ERRORS as error:
            raise UserError(f"{what} '{path}' is not a readable .npy file ({type(error).__name__}: {error}).") from None


def check_object_array(value) -> np.ndarray:
    """value if it is an array of dtype object whose items are numeric arrays or plain data; Refused otherwise."""
    if not isinstance(value, np.ndarray) or value.dtype != np.dtype(object):
        raise Refused(f"it holds a {type(value).__name__} where an object array belongs")
    walk = ModelData()
    for item in value.flat:
        walk.convert(item, 1)
    return value


MAX_DENSE = 10**7  # entries of all sparse matrices in one file, made dense (SMPL's two: 2 x 24 x 6890 = 330,720)


class SparseState:
    """A pickled scipy CSC/CSR matrix kept as the data it holds (its attributes); never scipy's class."""

    layout = ""

    def __setstate__(self, state):
        if not isinstance(state, dict):
            raise Refused(f"its {self.layout} matrix has a state of type {type(state).__name__}")
        self.state = state

    def dense(self, limit: int = MAX_DENSE) -> np.ndarray:
        """The matrix (rows, columns) as a dense float64 array; Refused unless it is well formed and has at most
        `limit` entries (checked before anything is allocated)."""
        state = getattr(self, "state", {})
        try:
            shape = tuple(operator.index(n) for n in state.get("_shape", state.get("shape")))
            data, indices, pointers = (np.asarray(state[k]) for k in ("data", "indices", "indptr"))
            major, minor, indices, pointers = _checked_layout(self.layout, shape, data, indices, pointers, limit)
            dense = np.zeros((major, minor))
            lines = np.repeat(np.arange(major), np.diff(pointers))  # (nnz,): the column (csc) or row (csr) of each
            np.add.at(dense, (lines, indices), data.astype(np.float64))
        except (KeyError, TypeError, ValueError, IndexError) as error:
            raise Refused(f"its {self.layout} matrix is malformed ({type(error).__name__}: {error})") from None
        return dense.T if self.layout == "csc" else dense


def _checked_layout(layout: str, shape: tuple, data, indices, pointers, limit: int) -> tuple:
    """(major, minor, indices, indptr as int64) of a compressed sparse matrix; ValueError unless its arrays
    describe one: 1-D numbers, indptr from 0 to nnz without decreasing, indices within the minor dimension."""
    if len(shape) != 2 or min(shape) < 0 or shape[0] * shape[1] > limit:
        raise ValueError(f"shape {shape} is not two sizes with at most {limit} entries in all")
    if any(a.ndim != 1 or a.dtype.kind not in "iu" for a in (indices, pointers)) or data.dtype.kind not in "biuf":
        raise ValueError("indices and indptr are not 1-D integers or data is not numbers")
    major, minor = shape[::-1] if layout == "csc" else shape
    indices, pointers = indices.astype(np.int64), pointers.astype(np.int64)
    if (
        data.ndim != 1
        or len(pointers) != major + 1
        or pointers[0] != 0
        or not pointers[-1] == len(data) == len(indices)
    ):
        raise ValueError(f"indptr of length {len(pointers)} does not run from 0 to its {len(data)} values")
    if (np.diff(pointers) < 0).any() or len(indices) and (indices.min() < 0 or indices.max() >= minor):
        raise ValueError(f"indptr decreases or indices fall outside 0..{minor - 1}")
    return major, minor, indices, pointers


class CscState(SparseState):
    layout = "csc"


class CsrState(SparseState):
    layout = "csr"


def _reconstructor(unpickler, cls, base, state):
    """copy_reg._reconstructor as protocols 0 and 1 use it, for the sparse stand-ins only."""
    if not (isinstance(cls, type) and issubclass(cls, SparseState) and base is OBJECT and state is None):
        raise Refused("it asks copy_reg._reconstructor to build something other than a sparse matrix")
    return cls()


def _empty_bytes(unpickler):
    """bytes() as Python 3 pickles b"" for protocols 0-2."""
    return b""


def _latin1_bytes(unpickler, text, encoding):
    """_codecs.encode as Python 3 pickles bytes for protocols 0-2: latin-1 text to bytes, nothing else."""
    if not (type(text) is str and _is_text(encoding, ("latin1", "latin-1"))):
        raise Refused("it asks _codecs.encode for something other than latin-1 bytes")
    unpickler.spend(len(text))
    return text.encode("latin1")


# What body-model pickles (SMPL 1.1.0, chumpy-free conversions, written by Python 2 or 3) name besides arrays:
# numpy scalars, scipy's sparse matrices under old and new module paths (read as SparseState), object
# creation for protocols 0-1 and text-to-bytes; each maps to a token, a Guarded function or a SparseState class.
_SPARSE = {"csc_matrix": CscState, "csr_matrix": CsrState}
_SPARSE_MODULES = ("scipy.sparse", "scipy.sparse.csc", "scipy.sparse._csc", "scipy.sparse.csr", "scipy.sparse._csr")
MODEL_GLOBALS = {
    **ARRAY_GLOBALS,
    **{(module, name): cls for module in _SPARSE_MODULES for name, cls in _SPARSE.items()},
    ("copy_reg", "_reconstructor"): Guarded(_reconstructor),
    ("copyreg", "_reconstructor"): Guarded(_reconstructor),
    ("__builtin__", "object"): OBJECT,
    ("builtins", "object"): OBJECT,
    ("_codecs", "encode"): Guarded(_latin1_bytes),
    ("__builtin__", "bytes"): Guarded(_empty_bytes),
    ("builtins", "bytes"): Guarded(_empty_bytes),
    ("numpy.core.multiarray", "scalar"): _NUMPY["scalar"],
    ("numpy._core.multiarray", "scalar"): _NUMPY["scalar"],
    ("numpy.core.numeric", "_frombuffer"): Guarded(_frombuffer),  # protocol 5's arrays
    ("numpy._core.numeric", "_frombuffer"): Guarded(_frombuffer),
}


class ModelUnpickler(GuardedUnpickler):
    """Plain data, numeric arrays and scalars, and sparse matrices as SparseState (MODEL_GLOBALS), nothing else."""

    GLOBALS = MODEL_GLOBALS


class ModelData:
    """An unpickled value as model data: sparse matrices made dense (MAX_DENSE entries in all), numeric arrays,
    numbers and plain data kept; Refused for anything else or for containers nested more than MAX_DEPTH deep."""

    def __init__(self):
        self.dense_left = MAX_DENSE
        self.done = {}  # id -> (value, converted): each container or matrix is converted once, however shared

    def convert(self, value, depth: int = 0):
        if depth > MAX_DEPTH:
            raise Refused(f"it nests containers more than {MAX_DEPTH} deep")
        if id(value) in self.done:
            return self.done[id(value)][1]
        converted = self.converted(value, depth)
        if isinstance(value, (*CONTAINERS, SparseState)):
            self.done[id(value)] = (value, converted)
        return converted

    def converted(self, value, depth: int):
        """value with its items converted (one level; convert recurses)."""
        if isinstance(value, SparseState):
            dense = value.dense(self.dense_left)
            self.dense_left -= dense.size
            return dense
        if isinstance(value, dict):
            return {self.convert(key, depth + 1): self.convert(item, depth + 1) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self.convert(item, depth + 1) for item in value)
        if isinstance(value, (np.ndarray, np.generic)) and not value.dtype.hasobject:
            return value
        if isinstance(value, PLAIN_TYPES):
            return value
        raise Refused(f"it builds {_named(value)}" + (f" of dtype {value.dtype}" if hasattr(value, "dtype") else ""))


def load_model_pickle(path, what: str = "model file", advice=None) -> dict:
    """A body model's pickle as a dict of numpy arrays (sparse ones dense), strings and numbers, read as Python 2
    wrote it (latin-1); UserError naming the file otherwise. `advice` ({package: sentence}) replaces the message
    when the file names a global of that package (e.g. chumpy)."""
    require_file(path, what)
    data = Path(path).read_bytes()
    try:
        value = ModelData().convert(ModelUnpickler(io.BytesIO(data), len(data), encoding="latin1").load())
    except Refused as error:
        package = error.module.split(".")[0]
        if advice and package in advice:
            raise UserError(advice[package]) from None
        raise UserError(
            f"{what} '{path}' holds more than arrays and plain data ({error}); it is not read, since a pickle can "
            "run code: use the model's official file."
        ) from None
    except READ_ERRORS as error:
        raise UserError(f"{what} '{path}' is not a readable pickle ({type(error).__name__}: {error}).") from None
    if not isinstance(value, dict):
        raise UserError(f"{what} '{path}' holds a {type(value).__name__}, not a dict of arrays; use the model's file.")
    return value
