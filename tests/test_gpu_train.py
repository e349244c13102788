"""Smoke run of the GPU check (benchmarks/gpu_train.py --quick on the CPU, device_check.sh's syntax).

The figures themselves need a CUDA GPU (benchmarks/RESULTS.md, "GPU (NVIDIA H200)"); here only that the script runs
every part at tiny sizes and writes its JSON.
"""

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_train.py"
DEVICE_CHECK = ROOT / "benchmarks" / "device_check.sh"
NEEDED = ("hydra", "omegaconf", "lightning")
MISSING = [name for name in NEEDED if importlib.util.find_spec(name) is None]


@pytest.mark.skipif(not SCRIPT.exists(), reason=f"{SCRIPT.relative_to(ROOT)} is not in this checkout")
@pytest.mark.skipif(bool(MISSING), reason=f"gpu_train.py needs {', '.join(MISSING)}: pip install -r requirements.txt")
def test_quick_gpu_train_writes_every_part(tmp_path):
    parts = "train,sample,lightning,compile,profile"  # every part, the profile (asked for by name) too
    command = [sys.executable, str(SCRIPT), "--quick", "--device", "cpu", "--parts", parts, "--batches", "2,3"]
    result = subprocess.run([*command, "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_train.json").read_text())
    assert report["quick"] is True and report["machine"]["device"] == "cpu" and report["sizes"]["batches"] == [2, 3]
    assert report["parts"] == ["train", "sample", "lightning", "compile", "profile"]
    assert report["bf16_matmul_peak_gflops"] > 0
    assert report["config"]["precision"] == "bf16-mixed" and report["config"]["compile"]["enabled"] is True
    assert [row["batch"] for row in report["train_eager"]] == report["sizes"]["batches"]
    assert [row["batch"] for row in report["train_compiled"]] == report["sizes"]["batches"][1:]
    for row in [*report["train_eager"], *report["train_compiled"]]:
        assert row["samples_per_s"] > 0 and row["model_flops_per_step"] > 0 and row["bf16_peak_fraction"] > 0
    steps = report["sizes"]["sampler_steps"]
    expected = {f"{name}{steps}/{p}" for name in ("ddim", "dpmsolver") for p in ("bf16-mixed", "32-true")}
    assert set(report["sampling"]) == expected
    assert all(row["seconds"] > 0 for row in report["sampling"].values())
    assert report["lightning"]["samples_per_s"] > 0
    assert "wrote" in result.stdout
    profile = report["profile"]
    assert profile["batch"] == report["sizes"]["batches"][1] and profile["wall_step_s"] > 0
    assert set(profile["kernel_s"]) == {"attention", "matmul", "optimizer_ema", "other"}
    assert profile["gpu_busy_fraction"] == 0  # no CUDA kernels on the CPU
    assert "aten::" in (tmp_path / "profile.txt").read_text()


@pytest.mark.skipif(not DEVICE_CHECK.exists(), reason=f"{DEVICE_CHECK.relative_to(ROOT)} is not in this checkout")
@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not on PATH; install bash to check device_check.sh")
def test_device_check_script_parses():
    result = subprocess.run(["bash", "-n", str(DEVICE_CHECK)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


def test_kernel_kinds():
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        from gpu_train import kernel_kind
    finally:
        sys.path.remove(str(SCRIPT.parent))
    assert kernel_kind("cudnn_generated_fort_native_sdpa_sm90_flash_bprop_wgmma") == "attention"
    assert kernel_kind("nvjet_sm90_tst_128x192_64x5_2x1_v_bz_coopB_NNN") == "matmul"
    assert kernel_kind("void at::native::multi_tensor_apply_kernel<FusedAdamMathFunctor>") == "optimizer_ema"
    assert kernel_kind("triton_poi_fused_gelu_native_dropout_view_20") == "other"
