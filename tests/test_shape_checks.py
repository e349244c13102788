"""The shape annotations are checked while the tests run (conftest installs typeguard's import hook with
torchtyping's patch): a tensor of the wrong shape at a public boundary is a TypeError, not a silent broadcast; a
function's verdict is reused only for calls of a kind it has passed (tests/typecheck_cache.py)."""

import importlib.util
import sys
from typing import Literal, NamedTuple, NewType, Optional, Sequence, TypeVar

import numpy as np
import pytest
import torch
import typeguard

import typecheck_cache
from conftest import TYPECHECKED
from motiondiff.core.types import FrameMask
from motiondiff.diffusion.loss import masked_mse
from motiondiff.diffusion.schedule import LinearSchedule
from motiondiff.networks.punet import PUNet

pytestmark = pytest.mark.skipif(not TYPECHECKED, reason="MOTIONDIFF_TYPECHECK=0 turned the shape checks off")


def test_inconsistent_batch_sizes_are_refused():
    schedule = LinearSchedule(num_steps=10)
    x0 = torch.randn(4, 8, 3)
    schedule.q_sample(x0, torch.zeros(4, dtype=torch.long), torch.randn(4, 8, 3))  # consistent: fine
    with pytest.raises(TypeError, match="batch"):
        schedule.q_sample(x0, torch.zeros(3, dtype=torch.long), torch.randn(4, 8, 3))  # 3 steps for 4 motions


def test_a_motion_with_the_wrong_rank_is_refused():
    network = PUNet(features=6, base_channels=8, channel_mults=(1,), num_res_blocks=1, attention=False)
    with pytest.raises(TypeError):
        network(torch.randn(8, 6), torch.zeros(8, dtype=torch.long))  # (frames, feats) without the batch dimension


def test_a_mask_of_another_length_is_refused():
    output = torch.randn(2, 8, 3)
    with pytest.raises(TypeError, match="frames"):
        masked_mse(output, output, torch.ones(2, 7, dtype=torch.bool))


def test_plain_python_types_are_checked_too():
    with pytest.raises(TypeError):
        LinearSchedule(num_steps=10).q_sample("not a tensor", torch.zeros(1, dtype=torch.long), torch.randn(1, 2, 3))


def test_a_call_of_a_kind_already_passed_skips_the_check_and_any_other_is_checked(monkeypatch):
    checks = []
    monkeypatch.setattr(typeguard, "check_argument_types", counting(typeguard.check_argument_types, checks))
    trim = [0]

    @typeguard.typechecked
    def frames_kept(x: FrameMask, scale: float) -> FrameMask:
        return scale * x[:, trim[0] :]

    for _ in range(3):
        frames_kept(torch.zeros(2, 5), 1.0)
    assert len(checks) == 1  # the same shapes and scale: checked once
    frames_kept(torch.zeros(2, 5), 2.0)
    assert len(checks) == 1  # another float: no Literal here, so typeguard's verdict reads only its type
    frames_kept(torch.zeros(3, 5), 1.0)
    frames_kept(torch.zeros(2, 5), 2)
    assert len(checks) == 3  # another batch size, an int for the float: each checked
    with pytest.raises(TypeError, match="scale"):
        frames_kept(torch.zeros(2, 5), "2.0")
    with pytest.raises(TypeError, match="batch"):
        frames_kept(torch.zeros(2, 5, 1), 1.0)  # a third dimension
    trim[0] = 1  # the same kind of arguments, but a result of another shape: the result is checked again
    with pytest.raises(TypeError, match="frames"):
        frames_kept(torch.zeros(2, 5), 1.0)


def test_a_literal_is_checked_for_each_value():
    @typeguard.typechecked
    def cut(x: FrameMask, side: Optional[Literal["start", "end"]]) -> FrameMask:
        return x

    cut(torch.zeros(2, 5), "start")
    cut(torch.zeros(2, 5), "end")
    with pytest.raises(TypeError, match="side"):
        cut(torch.zeros(2, 5), "middle")  # a str, as the calls that passed, but not one of the Literal's


def test_a_keyword_or_a_string_that_typeguard_reads_is_checked_again():
    @typeguard.typechecked
    def sample(ids: Sequence[int] = (), guidance: float = 1.0, caption: Optional[str] = None) -> None: ...

    sample(guidance=2.5)
    with pytest.raises(TypeError, match="caption"):
        sample(caption=2.5)  # the same kind of value, under another keyword
    sample("")  # an empty str is a Sequence[int]; a non-empty one is not (typeguard checks each character)
    with pytest.raises(TypeError, match="ids"):
        sample("ab")


def test_only_literals_and_typed_dicts_make_a_function_read_plain_values():
    class Cut(NamedTuple):
        side: Literal["start", "end"]

    def plain(x: FrameMask, caption: str, weights: dict[str, float]) -> list[int]: ...

    def literal(mode: Optional[list[Literal[1, 2]]]) -> None: ...

    def unresolved(x: "NoSuchClass") -> None: ...  # noqa: F821

    def constrained(side: TypeVar("Side", Literal["start"], Literal["end"])) -> None: ...

    def new_type(mode: NewType("Mode", Literal["fast"])) -> None: ...

    def named_tuple(cut: Cut) -> None: ...

    assert not typecheck_cache.reads_values(plain)
    assert typecheck_cache.reads_values(literal) and typecheck_cache.reads_values(unresolved)
    # A Literal behind a TypeVar's constraints, a NewType, a NamedTuple's field: typeguard reaches each.
    assert all(typecheck_cache.reads_values(f, locals()) for f in (constrained, new_type, named_tuple))
    assert typecheck_cache.kind("a", values=False) == typecheck_cache.kind("b", values=False) == (str, True)
    assert typecheck_cache.kind({"a": 1.0}, values=False) == typecheck_cache.kind({"a": 2.5}, values=False)
    assert typecheck_cache.kind({"a": 1.0}, values=False) != typecheck_cache.kind({"b": 1.0}, values=False)
    assert typecheck_cache.kind(1, values=False) != typecheck_cache.kind(True, values=False)


def test_the_kinds_of_call_name_what_the_check_looks_at():
    assert typecheck_cache.kind(torch.zeros(2, 3)) != typecheck_cache.kind(torch.zeros(2, 3, dtype=torch.float64))
    assert typecheck_cache.kind((1, "a")) != typecheck_cache.kind((1, "b"))
    assert typecheck_cache.kind({"x": torch.zeros(2)}) != typecheck_cache.kind({"x": torch.zeros(3)})
    assert typecheck_cache.kind(np.zeros((2, 3))) == typecheck_cache.kind(np.ones((2, 3)))
    assert typecheck_cache.kind(lambda: 0) != typecheck_cache.kind(lambda x: 0)  # a Callable check reads the signature
    assert typecheck_cache.kind(lambda x: 0) != typecheck_cache.kind(lambda x=1: 0)
    assert typecheck_cache.kind(len) is None
    assert typecheck_cache.kind(list(range(typecheck_cache.MAX_ITEMS + 1))) is None  # checked in full
    assert typecheck_cache.kind([[[1]]]) is None


def counting(function, calls: list):
    """`function`, appending each call's arguments to `calls`."""

    def counted(*args, **kwargs):
        calls.append(args)
        return function(*args, **kwargs)

    return counted


def test_only_the_instrumented_modules_read_typeguards_bytecode():
    """Modules that motiondiff's instrumented modules import (torch._dynamo, lightning, scipy.signal, ...) load from
    pip's bytecode, not from an `.opt-typeguard.pyc` that is never there (typecheck_cache.own_bytecode_only)."""
    import motiondiff.tracking.trackers  # instrumented; imports lightning

    assert motiondiff.tracking.trackers.typeguard is typeguard  # the hook's `import typeguard`: it was instrumented
    cached = {name: getattr(module, "__cached__", None) for name, module in list(sys.modules.items())}
    outside = [name for name, path in cached.items() if isinstance(path, str) and ".opt-typeguard." in path]
    outside = [name for name in outside if not name.startswith("motiondiff")]
    assert not outside, f"{len(outside)} modules looked for typeguard's bytecode, e.g. {sorted(outside)[:3]}"
    fabric = sys.modules["lightning.fabric.fabric"]
    assert fabric.__cached__ == importlib.util.cache_from_source(fabric.__file__)  # pip's own .cpython-3xx.pyc
