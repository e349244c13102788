"""typeguard's checks in the tests, each function's verdict computed once per kind of call.

conftest installs typeguard's import hook, which wraps every annotated motiondiff function in a check of its
arguments and result. Each check costs 50-200 us, whatever the function does: on a 2-core AMD EPYC the checks were
23% of the suite's time (1,639 s of work with them, 1,269 s without, 2026-12-06), mostly small functions called in
every sampler step, data item or video frame. With this module the suite took 11:00 and 11:47 there (two runs), against
13:04.

A check's verdict depends only on what the annotations look at: the type of each value, and for tensors and arrays
their shape, dtype and device. `install()` makes the hook's decorator remember, per function, the calls whose
arguments (and then whose results) passed, described by exactly that (`kind`); a later call of the same kind skips the
check. A call of a kind not seen before (another shape, dtype, batch size, type of a plain value, or anything that
cannot be described) is checked in full, so a wrong shape is a TypeError exactly as before (tests/test_shape_checks.py).
A plain value (str, number, bool, None) is described by its type alone unless the function's annotations hold a
Literal or a TypedDict, whose checks compare values: a caption, a seed or a float weight that changes from call to
call is then the same kind (the procedural data's 300 motions: 5.9 s to write with the checks, 5.0 s with this, 3.3 s
with no checks, on a 2-core AMD EPYC, 2026-12-07).
Containers are described item by item (up to MAX_ITEMS); a function by its code and how many of its parameters have
defaults (what a Callable annotation's check reads), a bound method by its function; other objects by their type, as
typeguard checks them. typeguard's per-call `inspect.signature` is cached too.
"""

import functools
import importlib.machinery
import inspect
import sys
import types
import typing
import unittest.mock

import numpy as np
import torch
import typeguard
import typeguard.importhook

MAX_ITEMS = 16  # larger containers are always checked in full
MAX_KINDS = 4096  # kinds remembered per function; beyond, calls are checked in full
PLAIN = (type(None), bool, int, float, complex, str, bytes)


def kind(value, depth: int = 0, values: bool = True):
    """A hashable description of what typeguard's check of `value` looks at, or None (check it in full); `values`
    False: plain values by their type alone (for functions whose annotations hold no Literal), a str or bytes by its
    type and whether it is empty (a Sequence[X] annotation checks each character). A dict's keys (a call's keyword
    names) always by their value."""
    if isinstance(value, PLAIN):
        if values:
            return type(value), value
        return (type(value), len(value) > 0) if isinstance(value, (str, bytes)) else type(value)
    if isinstance(value, torch.Tensor):
        return type(value), tuple(value.shape), value.dtype, value.device, value.layout
    if isinstance(value, np.ndarray):
        return type(value), value.shape, value.dtype
    if isinstance(value, (tuple, list, dict)):
        if depth >= 2 or len(value) > MAX_ITEMS:
            return None
        pairs = value.items() if isinstance(value, dict) else enumerate(value)
        items = tuple((kind(key, depth + 1), kind(item, depth + 1, values)) for key, item in pairs)
        return None if any(None in pair for pair in items) else (type(value), items)
    if isinstance(value, types.FunctionType):  # a Callable annotation checks the function's own parameters
        return type(value), value.__code__, len(value.__defaults__ or ()), tuple(value.__kwdefaults__ or ())
    if isinstance(value, types.MethodType):
        return (
            (type(value), kind(value.__func__, depth + 1, values))
            if isinstance(value.__func__, types.FunctionType)
            else None
        )
    if isinstance(value, (types.BuiltinFunctionType, functools.partial, types.GeneratorType, types.CoroutineType)):
        return None
    return "object", type(value)


def reads_values(func, localns=None) -> bool:
    """Whether typeguard's check of `func` may look at a plain value itself, not only its type: when an annotation
    holds a Literal (typeguard compares the value) or a TypedDict (its keys), anywhere typeguard looks (arguments of
    generics, a TypeVar's bound and constraints, a NewType's base, a NamedTuple's fields), or the annotations cannot
    be resolved (assume so). Every other check of a str, number, bool or None is by its type: a caption or a float
    that differs from call to call is then not a new kind of call."""
    try:
        pending = list(typing.get_type_hints(func, localns=localns).values())
    except Exception:  # a forward reference that does not resolve: typeguard decides at the call
        return True
    seen = set()
    while pending:
        hint = pending.pop()
        if id(hint) in seen:
            continue
        seen.add(id(hint))
        if typing.get_origin(hint) is typing.Literal or hint is typing.Literal or typing.is_typeddict(hint):
            return True
        pending.extend(typing.get_args(hint))
        if isinstance(hint, typing.TypeVar):
            pending.extend([*hint.__constraints__, *([hint.__bound__] if hint.__bound__ else [])])
        if hasattr(hint, "__supertype__"):  # a NewType
            pending.append(hint.__supertype__)
        if isinstance(hint, type) and issubclass(hint, tuple) and hasattr(hint, "_fields"):  # a NamedTuple
            try:
                pending.extend(typing.get_type_hints(hint).values())
            except Exception:
                return True
    return False


def remembering(typechecked):
    """typeguard.typechecked, with each function's passed kinds of call remembered."""

    def decorator(func=None, *, always=False, _localns=None):
        if func is None:
            return functools.partial(decorator, always=always, _localns=_localns)
        localns = sys._getframe(1).f_locals if _localns is None else _localns
        checked = typechecked(func, always=always, _localns=localns)
        if checked is func or inspect.isclass(func) or not inspect.isfunction(func):
            return checked  # nothing wrapped, a class (its methods come back through here), or not a plain function
        if inspect.isgeneratorfunction(func) or inspect.iscoroutinefunction(func):
            return checked  # typeguard checks what these yield as they run
        python_func = inspect.unwrap(func, stop=lambda f: hasattr(f, "__code__"))
        passed_arguments, passed_calls = set(), set()
        values = None  # reads_values(python_func), at the first call (the annotations may name later classes)

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            nonlocal values
            if torch.compiler.is_compiling():
                return checked(*args, **kwargs)  # as typeguard alone: torch.compile traces this wrapper otherwise
            if values is None:
                values = reads_values(python_func, localns)
            arguments = kind(args, values=values), kind(kwargs, values=values)
            if None in arguments or arguments not in passed_arguments:
                result = checked(*args, **kwargs)  # typeguard's own check of the arguments and the result
                if None not in arguments and len(passed_calls) < MAX_KINDS:
                    passed_arguments.add(arguments)
                    if (result_kind := kind(result, values=values)) is not None:
                        passed_calls.add((arguments, result_kind))
                return result
            result = func(*args, **kwargs)
            result_kind = kind(result, values=values)
            if result_kind is None or (arguments, result_kind) not in passed_calls:
                memo = typeguard._CallMemo(python_func, localns, args=args, kwargs=kwargs)
                typeguard.check_argument_types(memo)  # torchtyping binds the named dimensions of the arguments
                try:
                    typeguard.check_return_type(result, memo)
                except TypeError as exc:
                    raise TypeError(*exc.args) from None
                if result_kind is not None and len(passed_calls) < MAX_KINDS:
                    passed_calls.add((arguments, result_kind))
            return result

        return wrapper

    return decorator


def install() -> None:
    """Route the import hook's `@typeguard.typechecked` through `remembering` (call after torchtyping's patch)."""
    assert not getattr(typeguard.typechecked, "remembers", False), "install() runs once"
    # typeguard 2.13 computes inspect.signature(func) afresh on every checked call (tests/test_guidance.py: 82 s ->
    # 66 s with it cached, before verdicts were remembered). A signature does not change: typeguard gets a cached one.
    assert typeguard.inspect is inspect, "typeguard no longer calls inspect.signature from its module: drop the cache"
    typeguard.inspect = types.ModuleType("inspect")
    typeguard.inspect.__dict__.update(inspect.__dict__, signature=functools.cache(inspect.signature))
    typeguard.typechecked = remembering(typeguard.typechecked)
    typeguard.typechecked.remembers = True
    own_bytecode_only(typeguard.importhook.TypeguardLoader)


def own_bytecode_only(loader: type) -> None:
    """Make typeguard's loader look for its `.opt-typeguard.pyc` bytecode for the instrumented module alone.

    typeguard 2.13 swaps importlib's `cache_from_source` for the whole of an instrumented module's execution, so every
    module that one imports for the first time (torch._dynamo, lightning, scipy.signal, ...: about 2,300 at collection)
    looks for an `.opt-typeguard.pyc` that pip never wrote, and is compiled from source; with PYTHONDONTWRITEBYTECODE
    set, in every process. Only reading the instrumented module's own code needs the swap."""
    if "exec_module" not in loader.__dict__:
        raise RuntimeError(
            "typeguard's loader no longer swaps cache_from_source in exec_module: drop own_bytecode_only"
        )

    def get_code(self, fullname):
        with unittest.mock.patch(
            "importlib._bootstrap_external.cache_from_source", typeguard.importhook.optimized_cache_from_source
        ):
            return importlib.machinery.SourceFileLoader.get_code(self, fullname)

    loader.get_code = get_code
    del loader.exec_module  # SourceFileLoader's: it reads the code through get_code, then runs it unpatched
