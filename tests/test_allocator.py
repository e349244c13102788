"""core.allocator: glibc keeps freed memory for the next tensors (no page faults again), unless the user set malloc."""

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from motiondiff.core import allocator

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
THP = Path("/sys/kernel/mm/transparent_hugepage/enabled")
THP_ALWAYS = THP.is_file() and "[always]" in THP.read_text()
# 16 blocks of 4 MB, written, freed, six times over (ctypes: no Python object between them on the heap).
FAULTS_PER_ROUND = """
import ctypes, resource, sys
from motiondiff.core.allocator import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else False
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes, libc.memset.argtypes = [ctypes.c_void_p], [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
faults = []
for _ in range(6):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    blocks = [libc.malloc(4 << 20) for _ in range(16)]
    for block in blocks:
        libc.memset(block, 1, 4 << 20)
    for block in reversed(blocks):
        libc.free(block)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(kept, *faults)
"""


def faults_per_round(mode: str) -> tuple:
    env = {key: value for key, value in os.environ.items() if not allocator_setting(key)}
    done = subprocess.run([sys.executable, "-c", FAULTS_PER_ROUND, mode], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    kept, *faults = done.stdout.split()
    return kept == "True", [int(count) for count in faults]


def allocator_setting(key: str) -> bool:
    return key.startswith("MALLOC_") or key in ("GLIBC_TUNABLES", "LD_PRELOAD")


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only (Linux with glibc)")
@pytest.mark.skipif(THP_ALWAYS, reason="transparent huge pages always on: the heap's pages are not 4 KB faults")
def test_freed_tensors_come_back_without_page_faults():
    kept, faults = faults_per_round("keep")
    assert kept
    assert faults[0] > 15000  # 64 MB written for the first time: 16,384 pages
    assert max(faults[1:]) < 100, faults  # then the same heap memory again
    kept, faults = faults_per_round("default")  # glibc's default hands it back, and the pages fault in again
    assert not kept and min(faults[1:]) > 15000, faults


@pytest.mark.parametrize(
    "key, value",
    [
        ("MALLOC_TRIM_THRESHOLD_", "0"),
        ("MALLOC_MMAP_THRESHOLD_", "65536"),
        ("GLIBC_TUNABLES", "glibc.malloc.arena_max=2:glibc.malloc.trim_threshold=0"),
        ("LD_PRELOAD", "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"),
    ],
)
def test_thresholds_of_the_users_own_are_left_alone(key, value, monkeypatch):
    clear_allocator_settings(monkeypatch)
    assert not allocator.users_own_malloc_settings()
    monkeypatch.setenv(key, value)
    assert allocator.users_own_malloc_settings() and allocator.keep_freed_memory() is False


@pytest.mark.parametrize(
    "key, value",
    [("MALLOC_ARENA_MAX", "2"), ("GLIBC_TUNABLES", "glibc.malloc.arena_max=2"), ("LD_PRELOAD", "libiomp5.so")],
)
def test_other_malloc_settings_do_not_stop_it(key, value, monkeypatch):
    clear_allocator_settings(monkeypatch)
    monkeypatch.setenv(key, value)
    assert not allocator.users_own_malloc_settings()
    assert allocator.keep_freed_memory() is GLIBC


def test_every_command_and_every_sweep_job_keeps_freed_memory(tmp_path):
    script = f"""
import sys
from motiondiff.cli import app
calls = []
app.keep_freed_memory = lambda: calls.append("kept") or True
run = lambda cfg: calls.append("run")
sys.argv = ["motiondiff-render-data", "hydra.run.dir={tmp_path / "run"}"]
app.hydra_entry_point("render_data", "__main__.run")()
print(*calls)
"""  # a process of its own: the tests' type checker cannot wrap Hydra's argument-less call of the task function
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["kept", "run"]  # in the task function, which a sweep's worker runs for each job


def clear_allocator_settings(monkeypatch) -> None:
    for name in list(os.environ):
        if allocator_setting(name):
            monkeypatch.delenv(name)
