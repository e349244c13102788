"""core.safe_pickle against crafted pickles: numpy's constructors called with forged arguments, sparse matrices
that claim more than they hold, data reused to inflate, and nesting that would exhaust the stack or the clock.

A crafted array can crash the interpreter when it is used, so those files are read in a subprocess that also
prints the value it got: a crash or a hang is then a failed test, not a dead pytest.
"""

import copyreg
import io
import json
import pickle
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

from motiondiff.core.errors import UserError
from motiondiff.core.safe_pickle import MAX_DENSE, load_model_pickle, load_object_npy, load_plain_pickle, multiarray

MODEL_REFUSAL = "holds more than arrays and plain data"
NPY_REFUSAL = "holds objects other than arrays"
PLAIN_REFUSAL = "is not plain data"

# Reads one file in a fresh interpreter: prints {"error": the UserError's message, "seconds", "peak_mb"} or the
# value's repr (using it, so a forged array would crash here).
READER = """
import json, reprlib, sys, time
from motiondiff.core.errors import UserError
from motiondiff.core import safe_pickle


def peak_mb():  # this process's peak resident memory (VmHWM: ru_maxrss keeps the parent's across exec)
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmHWM:"))


start = time.perf_counter()
try:
    value = getattr(safe_pickle, sys.argv[1])(sys.argv[2])
    print(reprlib.repr(value), flush=True)
    error = None
except UserError as caught:
    error = str(caught)
print(json.dumps({"error": error, "seconds": time.perf_counter() - start, "peak_mb": peak_mb()}))
"""


class Crafted:
    """A value that pickles as function(*args), as NEWOBJ (`new`: cls(*args)) or NEWOBJ_EX, then BUILD with state."""

    def __init__(self, function, *args, new: str = "", state=None):
        self.function, self.args, self.new, self.state = function, args, new, state


class CraftingPickler(pickle._Pickler):
    """The pure-Python pickler, writing Crafted values as the opcodes they name (no check that they make sense)."""

    def save(self, obj, save_persistent_id=True):
        if not isinstance(obj, Crafted):
            return super().save(obj, save_persistent_id)
        if obj.new == "newobj":
            self.save_reduce(copyreg.__newobj__, (obj.function, *obj.args), obj.state)
        elif obj.new == "newobj_ex":
            self.save_reduce(copyreg.__newobj_ex__, (obj.function, obj.args, {}), obj.state)
        else:
            self.save_reduce(obj.function, obj.args, obj.state)


def crafted_pickle(value, protocol: int = 2) -> bytes:
    out = io.BytesIO()
    CraftingPickler(out, protocol).dump(value)
    return out.getvalue()


def npy_with_pickle(payload: bytes) -> bytes:
    """A .npy file that declares an object array and holds `payload` as its pickle."""
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": "|O", "fortran_order": False, "shape": (1,)})
    return out.getvalue() + payload


def read_in_subprocess(loader: str, path, timeout: float = 60) -> dict:
    """What READER reports for loader(path); fails the test on a crash, a traceback or a timeout."""
    try:
        result = subprocess.run(
            [sys.executable, "-c", READER, loader, str(path)], capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{loader} took more than {timeout} s on {path.name}")
    assert result.returncode == 0, f"{loader} crashed or raised (status {result.returncode}): {result.stderr[-2000:]}"
    return json.loads(result.stdout.splitlines()[-1])


OBJECT_FIELDS = np.dtype([("a", "O")])
FORGED = b"\x41" * (6890 * 3 * 8)  # 8 bytes per field: each would be read as a pointer to an object
ATTACKS = {
    "reduce ndarray, object fields": Crafted(np.ndarray, (6890, 3), OBJECT_FIELDS, FORGED),
    "newobj ndarray, object fields": Crafted(np.ndarray, (6890, 3), OBJECT_FIELDS, FORGED, new="newobj"),
    "reduce ndarray, negative offset": Crafted(np.ndarray, (4096,), np.dtype("u1"), bytearray(16), -(2**20)),
    "newobj ndarray, negative offset": Crafted(np.ndarray, (4096,), np.dtype("u1"), bytearray(16), -4096, new="newobj"),
    "newobj_ex ndarray": Crafted(np.ndarray, (4096,), np.dtype("u1"), bytearray(16), -4096, new="newobj_ex"),
    "reduce ndarray, plain dtype": Crafted(np.ndarray, (2,), np.dtype("f8"), b"\x00" * 16),
    "object dtype by a record string": Crafted(np.dtype, "f8,O", False, True),
    "_reconstruct of a non-empty array": Crafted(multiarray._reconstruct, np.ndarray, (6890,), b"b"),
    "object array from bytes": Crafted(
        multiarray._reconstruct, np.ndarray, (0,), b"b", state=(1, (2,), OBJECT_FIELDS, False, FORGED[:16])
    ),
}


@pytest.mark.parametrize("name", list(ATTACKS))
def test_numpys_constructors_with_forged_arguments_are_refused(tmp_path, name):
    (tmp_path / "model.pkl").write_bytes(crafted_pickle({"v_template": ATTACKS[name]}, protocol=5))
    (tmp_path / "features.npy").write_bytes(npy_with_pickle(crafted_pickle(ATTACKS[name], protocol=5)))
    for loader, path, refusal in [
        ("load_model_pickle", tmp_path / "model.pkl", MODEL_REFUSAL),
        ("load_object_npy", tmp_path / "features.npy", NPY_REFUSAL),
    ]:
        report = read_in_subprocess(loader, path)
        assert report["error"] and refusal in report["error"], (loader, report)
        assert report["error"].count(". ") == 0 and report["error"].endswith("."), report["error"]


def test_an_array_is_built_once(tmp_path):
    state = pickle.dumps((1, (2,), np.dtype("f8"), False, b"\x00" * 16), protocol=2)[2:-1]
    # an empty array kept in memo 200, BUILD, then GET it again and BUILD once more (which would free the data
    # that anything viewing the first state points to)
    array = b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85C\x01b\x87Rq\xc8"
    twice = b"\x80\x02" + array + state + b"b0h\xc8" + state + b"b."
    (tmp_path / "twice.pkl").write_bytes(twice)
    with pytest.raises(UserError, match=f"{MODEL_REFUSAL} .it sets the state of an array twice"):
        load_model_pickle(tmp_path / "twice.pkl")
    (tmp_path / "once.pkl").write_bytes(b"\x80\x02" + array + state + b"b.")
    with pytest.raises(UserError, match="holds a ndarray, not a dict"):  # read, then refused as not a model
        load_model_pickle(tmp_path / "once.pkl")


def csr_with(shape, data, indices, indptr):
    """A scipy CSR matrix whose arrays are set after construction (scipy checks them only when it builds one)."""
    matrix = sp.csr_matrix(shape)
    matrix.data, matrix.indices, matrix.indptr = np.asarray(data), np.asarray(indices), np.asarray(indptr)
    return matrix


SPARSE_ATTACKS = {
    "indptr claims 3e8 values": csr_with((1, 1000), np.zeros(0), np.zeros(0, np.int32), [0, 300_000_000]),
    "indptr decreases": csr_with((2, 10), np.ones(2), np.array([1, 2], np.int32), [0, 2**31 - 1, 2]),
    "indptr does not start at 0": csr_with((1, 10), np.ones(2), np.array([1, 2], np.int32), [1, 3]),
    "an index past the columns": csr_with((1, 10), np.ones(1), np.array([10], np.int32), [0, 1]),
    "a negative index": csr_with((1, 10), np.ones(1), np.array([-1], np.int32), [0, 1]),
    "uint64 indptr that wraps": csr_with(
        (2, 10), np.ones(1), np.array([1], np.int32), np.array([0, 2**64 - 1, 1], np.uint64)
    ),
    "more entries than MAX_DENSE": csr_with((10**4, 10**4), np.ones(1), np.array([1], np.int32), [0] + [1] * 10**4),
}


@pytest.mark.parametrize("name", list(SPARSE_ATTACKS))
def test_malformed_sparse_matrices_are_refused_before_allocating(tmp_path, name):
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    path.write_bytes(pickle.dumps({"J_regressor": SPARSE_ATTACKS[name]}, protocol=4))
    report = read_in_subprocess("load_model_pickle", path)
    assert report["error"] and f"{MODEL_REFUSAL} (its csr matrix is malformed" in report["error"], report
    assert report["peak_mb"] < 500 and report["seconds"] < 5, report


def test_the_405_byte_sparse_bomb_stays_small(tmp_path):
    path = tmp_path / "bomb.pkl"
    path.write_bytes(pickle.dumps({"J_regressor": SPARSE_ATTACKS["indptr claims 3e8 values"]}, protocol=4))
    assert path.stat().st_size < 1000
    report = read_in_subprocess("load_model_pickle", path)
    assert report["error"] and "indptr of length 2 does not run from 0 to its 0 values" in report["error"], report
    assert report["peak_mb"] < 500, report


def test_sparse_matrices_together_may_not_exceed_max_dense(tmp_path):
    side = int((MAX_DENSE / 3) ** 0.5)  # three empty matrices, each a little over a third of the budget
    shared = sp.csr_matrix((side + 10, side + 10))
    path = tmp_path / "many.pkl"
    path.write_bytes(pickle.dumps({"a": shared, "b": shared.copy(), "c": shared.copy()}, protocol=4))
    with pytest.raises(UserError, match=f"{MODEL_REFUSAL} .its csr matrix is malformed.*at most"):
        load_model_pickle(path)
    one = {"J_regressor": sp.csc_matrix(np.eye(24, 6890)), "J_regressor_prior": sp.csc_matrix(np.eye(24, 6890))}
    path.unlink()
    path.write_bytes(pickle.dumps(one, protocol=2))
    model = load_model_pickle(path)
    assert model["J_regressor"].shape == (24, 6890) and model["J_regressor"].sum() == 24


def test_bytes_reused_to_inflate_arrays_are_refused(tmp_path):
    text = "\xff" * 2**20  # 1 MiB of latin-1 text, written once and turned into bytes 600 times
    inflate = [Crafted(_codecs_encode(), text, "latin1") for _ in range(600)]
    path = tmp_path / "inflate.pkl"
    path.write_bytes(crafted_pickle({"v": inflate}, protocol=2))
    assert path.stat().st_size < 3 * 2**20
    report = read_in_subprocess("load_model_pickle", path)
    assert report["error"] and "more bytes than the file could" in report["error"], report
    assert report["peak_mb"] < 500, report


def _codecs_encode():
    import _codecs

    return _codecs.encode


def nested_lists(depth: int) -> bytes:
    """A protocol 2 pickle of `depth` lists, each inside the one before."""
    return b"\x80\x02" + b"]" * depth + b"a" * (depth - 1) + b"."


def shared_lists(depth: int) -> bytes:
    """A protocol 2 pickle of `depth` levels of [x, x] with x the level below: 2**depth paths, depth lists."""
    body = b"]q\x000"  # the innermost list, memo 0
    for level in range(1, depth):
        body += b"]q" + bytes([level]) + b"(h" + bytes([level - 1]) + b"h" + bytes([level - 1]) + b"e0"
    return b"\x80\x02" + body + b"h" + bytes([depth - 1]) + b"."


NESTINGS = {
    "100k nested lists": nested_lists(100_000),
    "a list holding itself": b"\x80\x02]q\x00h\x00a.",
    "2**40 paths through 40 shared lists": shared_lists(40),
}


@pytest.mark.parametrize("name", list(NESTINGS))
def test_deep_cyclic_and_shared_nesting_gets_a_sentence(tmp_path, name):
    path = tmp_path / "nested.pkl"
    path.write_bytes(NESTINGS[name])
    for loader, refusal in [("load_model_pickle", MODEL_REFUSAL), ("load_plain_pickle", PLAIN_REFUSAL)]:
        report = read_in_subprocess(loader, path, timeout=30)
        if name.startswith("2**40"):  # each list is walked once however often it is shared: read at once
            assert "more than 64 deep" not in (report["error"] or "") and report["seconds"] < 5, report
        else:
            assert report["error"] and refusal in report["error"] and "more than 64 deep" in report["error"], report


def test_plain_pickles_with_a_set_or_state_get_a_sentence(tmp_path):
    path = tmp_path / "set.pkl"
    path.write_bytes(pickle.dumps({"words": {"a", "b"}}, protocol=4))
    with pytest.raises(UserError, match=f"{PLAIN_REFUSAL} .it builds a set"):
        load_plain_pickle(path)
    path.write_bytes(b"\x80\x02]N}U\x01aK\x01s\x86b.")  # BUILD on a list with slot state (None, {"a": 1})
    with pytest.raises(UserError, match="is not a readable pickle"):
        load_plain_pickle(path)


def real_model_data() -> dict:
    """What model pickles hold: arrays of several dtypes and byte orders, scalars, sparse matrices, text."""
    rng = np.random.default_rng(0)
    return {
        "v": rng.normal(size=(50, 3)),
        "f": np.arange(30, dtype=np.uint32).reshape(10, 3),
        "posedirs": rng.normal(size=(50, 3, 4)).astype(np.float32),
        "big_endian": np.arange(4, dtype=">f8"),
        "fortran": np.asfortranarray(rng.normal(size=(3, 4))),
        "names": np.array(["hips", "knee"]),
        "empty": np.zeros((0, 3)),
        "scale": np.float32(2.5),
        "J_regressor": sp.csc_matrix(rng.random((4, 50)) * (rng.random((4, 50)) > 0.8)),
        "rows": sp.csr_matrix(np.eye(3, 5)),
        "bs_style": "lbs",
        "info": {"count": 3, "list": [1.5, None]},
    }


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_real_model_pickles_of_every_protocol_still_load(tmp_path, protocol):
    data = real_model_data()
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(data, protocol=protocol))
    model = load_model_pickle(path)
    for key, value in data.items():
        expected = value.toarray() if sp.issparse(value) else value
        if isinstance(expected, (np.ndarray, np.generic)):
            assert np.array_equal(model[key], expected) and model[key].dtype.newbyteorder(
                "="
            ) == expected.dtype.newbyteorder("="), key
        else:
            assert model[key] == expected, key


def test_an_object_npy_still_loads_and_records_of_objects_are_refused(tmp_path):
    rows = np.empty(3, dtype=object)
    rows[0], rows[1], rows[2] = np.ones((2, 4), np.float32), np.zeros((1, 4)), [1.0, 2.0]
    np.save(tmp_path / "ok.npy", rows, allow_pickle=True)
    loaded = load_object_npy(tmp_path / "ok.npy")
    assert loaded.dtype == object and np.array_equal(loaded[0], rows[0]) and loaded[2] == [1.0, 2.0]
    records = np.zeros(2, dtype=[("a", "O"), ("b", "f8")])
    np.save(tmp_path / "records.npy", records, allow_pickle=True)
    with pytest.raises(UserError, match=f"{NPY_REFUSAL} .its dtype .* mixes objects into records"):
        load_object_npy(tmp_path / "records.npy")
