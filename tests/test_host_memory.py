"""core.host_memory: a freed large tensor's pages are reused (no page faults) once the commands' setting is on."""

import os
import resource
import subprocess
import sys

import pytest
import torch

from motiondiff.core.errors import UserError
from motiondiff.core.host_memory import ENVIRONMENT_KEY, configure_host_memory, glibc, keep_freed_memory

needs_glibc = pytest.mark.skipif(glibc() is None, reason="mallopt is glibc's: other C libraries are left as they are")


def faults_of_a_second_tensor(megabytes: int = 64) -> int:
    """Minor page faults taken to allocate and fill a tensor just after one of the same size was freed."""
    first = torch.ones(megabytes << 18)  # float32: 4 bytes each
    del first
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    second = torch.ones(megabytes << 18)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    assert second[-1] == 1
    return faults


@needs_glibc
def test_a_freed_large_tensor_is_reused_without_page_faults():
    try:
        assert keep_freed_memory(False)
        system = faults_of_a_second_tensor()  # over 32 MB: mapped afresh (16,384 faults with 4 KB pages)
        assert keep_freed_memory(True)
        kept = faults_of_a_second_tensor()
    finally:
        keep_freed_memory(False)
    assert kept < 64 and kept < system, (kept, system)


def test_the_environment_variable_chooses_the_setting(monkeypatch):
    applied = []
    monkeypatch.setattr("motiondiff.core.host_memory.keep_freed_memory", lambda keep=True: applied.append(keep))
    assert configure_host_memory({}) == "keep" and applied == [True]
    assert configure_host_memory({ENVIRONMENT_KEY: "system"}) == "system" and applied == [True]
    with pytest.raises(UserError, match=f"{ENVIRONMENT_KEY}='fast' must be one of"):
        configure_host_memory({ENVIRONMENT_KEY: "fast"})


def test_every_command_applies_it_before_anything_else():
    env = {**os.environ, ENVIRONMENT_KEY: "fast"}
    result = subprocess.run(
        [sys.executable, "-m", "motiondiff.generate", "run_dir=nowhere"], env=env, capture_output=True, text=True
    )
    assert result.returncode == 2 and f"error: {ENVIRONMENT_KEY}='fast'" in result.stderr, result.stderr
