"""Shared test helpers: compose the real configs (shrunk by overrides) and find ../shared.

Every annotated function of motiondiff is type-checked while the tests run: typeguard's import hook
instruments the package before anything imports it, and torchtyping's patch makes it check tensor
shapes (TensorType dimensions, consistent across the arguments and the result of one call), so a wrong
shape at a public boundary fails a test. MOTIONDIFF_TYPECHECK=0 turns this off (for timing runs).
"""

import importlib.util
import os
from pathlib import Path
from types import ModuleType

import torch
from torchtyping import patch_typeguard
from typeguard.importhook import install_import_hook

import typecheck_cache

TYPECHECKED = os.environ.get("MOTIONDIFF_TYPECHECK", "1") != "0"

# `make test` runs two pytest-xdist workers, a file each at a time. The cores are shared out between them: each
# worker's torch, and the commands its tests start, get cores // workers threads (two threads when run alone), so the
# workers do not oversubscribe the machine (a 2-thread training beside another worker took 2.8x as long).
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
# the cores this process may use
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
THREADS = max(1, min(2, CORES // WORKERS))
if WORKERS > 1:
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(THREADS)
if TYPECHECKED:
    if not hasattr(torch.Tensor, "names"):  # torch 2.13 dropped named tensors; torchtyping still counts dims by .names
        torch.Tensor.names = property(lambda tensor: (None,) * tensor.dim())
    patch_typeguard()
    typecheck_cache.install()  # verdicts remembered per kind of call, signatures cached (tests/typecheck_cache.py)
    install_import_hook("motiondiff")

import pytest  # noqa: E402  (after the import hook, like every motiondiff import below)
from omegaconf import DictConfig  # noqa: E402

from motiondiff.cli.app import CONFIG_DIR, compose_command_config  # noqa: E402, F401 (CONFIG_DIR: for the tests)
from motiondiff.training import devices  # noqa: E402

if WORKERS > 1:
    torch.set_num_threads(THREADS)

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

# A punet small enough for CPU tests.
TINY_NETWORK = ["network.base_channels=16", "network.channel_mults=[1,2]", "network.num_res_blocks=1"]


PROCESSOR_PRECISION = devices.precision  # what the default trainer would take on this machine


@pytest.fixture(scope="session", autouse=True)
def float32_default_trainer():
    """In-process tests train in float32 on every processor: on a CPU with bf16 units the default trainer would time
    bf16 against float32 and take the faster, a choice two runs of a test could make differently. (Session-wide, so
    that module-scoped fixtures that train are covered too; the tests of that probe mark themselves `probe`.)"""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(devices, "precision", lambda: PROCESSOR_PRECISION() if torch.cuda.is_available() else "32-true")
        yield


@pytest.fixture(autouse=True)
def processor_precision_for_probe_tests(request, monkeypatch):
    """Tests marked `probe` see the default trainer's own choice of precision."""
    if "probe" in request.keywords:
        monkeypatch.setattr(devices, "precision", PROCESSOR_PRECISION)


# The files that take longest (--durations=0, 2026-12-06, AMD EPYC), handed to the workers first so that both finish
# at about the same time; the rest keep their order. xdist orders files by their number of tests unless told
# --no-loadscope-reorder (the Makefile's test command does).
SLOWEST_FIRST = (
    "test_text2motion_learning.py",
    "test_end_to_end.py",
    "test_first_hour.py",
    "test_evaluate_text.py",
    "test_bench.py",
    "test_guo_protocol.py",
    "test_sweeps.py",
    "test_text2motion_end_to_end.py",
    "test_learning.py",
    "test_install.py",
    "test_edit.py",
    "test_context.py",
    "test_data_bench.py",
    "test_evaluation_legend.py",
    "test_trackers.py",
    "test_resume.py",
    "test_coverage_yardsticks.py",
    "test_evaluator.py",
    "test_single_dance_eval.py",
    "test_app.py",
    "test_ddp.py",
    "test_export_command.py",
    "test_configs.py",
    "test_distill.py",
    "test_guidance.py",
)


def pytest_collection_modifyitems(items):
    """Order the collected tests by SLOWEST_FIRST, then as collected."""
    rank = {name: k for k, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


def compose_config(name: str, output_dir: Path, overrides=()) -> DictConfig:
    """Compose configs/<name>.yaml as Hydra would for a run writing to output_dir."""
    return compose_command_config(name, [f"paths.output_dir={output_dir}", *overrides])  # as the commands do


@pytest.fixture(scope="session")
def procedural_data_dir(tmp_path_factory) -> Path:
    """A `paths.data_dir` shared by the tests of this session, both workers' included: each procedural text dataset,
    its packed splits and its caption embeddings are made once, by the first test that needs them (every one of
    those writes is atomic: a temporary file or folder, then a rename), and the others read them. Tests that write
    into the data folder, or make a dataset of the same size and seed with other splits, keep their own."""
    base = tmp_path_factory.getbasetemp()  # under xdist, popen-gw<k> in the session's folder
    return (base.parent if "PYTEST_XDIST_WORKER" in os.environ else base) / "procedural_data"


def fake_run(root: Path, name: str, checkpoint: bool) -> Path:
    """A run directory as training leaves it (config.yaml, and checkpoints/last.ckpt when it got that far)."""
    run = root / "dance2d-punet" / name
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text("seed: 0\n")
    if checkpoint:
        (run / "checkpoints" / "last.ckpt").write_bytes(b"")
    return run


def benchmark_script(name: str) -> ModuleType:
    """benchmarks/<name>.py imported as a module (the folder is not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def shared_path(*parts) -> Path:
    """A file under ../shared/data, or skip the test when ../shared is not beside the project."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: the real-data tests need ../shared beside the project root")
    return path


@pytest.fixture(scope="session")
def browser():
    """A headless chromium (tests/browser.py) shared by the tests that open pages; skips where there is none."""
    from browser import launched_browser

    with launched_browser() as launched:
        yield launched
