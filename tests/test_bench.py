"""Smoke run of the benchmark (benchmarks/bench.py --quick): every section lands in the JSON and the Markdown table.

The benchmark-only packages (benchmarks/requirements.txt) are not in the default test environment;
without them this test is skipped. `make bench` installs them.
"""

import importlib.util
import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from motiondiff.core.allocator import users_own_malloc_settings

ROOT = Path(__file__).resolve().parents[1]
PEERS = ("denoising_diffusion_pytorch", "diffusers", "accelerate")
MISSING = [name for name in PEERS if importlib.util.find_spec(name) is None]


@pytest.mark.skipif(
    bool(MISSING),
    reason=(
        f"benchmark-only packages not installed ({', '.join(MISSING)}): "
        "pip install --no-deps -r benchmarks/requirements.txt"
    ),
)
def test_quick_benchmark_writes_every_section(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench.py"), "--quick", "--threads", "1", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "torch threads: 1" in result.stdout
    report = json.loads((tmp_path / "bench.json").read_text())
    for section in ("punet_training", "sampling", "dit_variants", "throughput", "targets", "machine"):
        assert section in report, section
    training = report["punet_training"]
    assert training["ours_samples_per_s"] > 0 and training["peer_samples_per_s"] > 0
    assert abs(training["peer_params"] - training["ours_params"]) / training["ours_params"] <= 0.15
    sampling = report["sampling"]
    for loop in ("ours_ddpm", "diffusers_ddpm", "ours_ddim", "diffusers_ddim"):
        assert sampling[loop]["total_s"] > 0 and 0 <= sampling[loop]["overhead"] <= 1
        assert sampling[loop]["network_s"] > 0  # the loop's network calls, timed alone in its rounds
        assert 0 <= sampling[loop]["coverage_pct"] <= 100
    variants = {(row["size"], row["variant"]) for row in report["dit_variants"].values()}
    assert variants == {(size, v) for size in ("reference", "cpu") for v in ("incontext", "adaln", "cross_attention")}
    assert report["throughput"]["matmul_peak_gflops"] > 0
    # Issue 19: today's network (the class defaults) against the config defaults, at the reference size only (--quick:
    # for adaln alone; the full run compares the three variants).
    for key, row in report["dit_variants"].items():
        assert ("today" in row) == (key == "reference/adaln"), key
    today = report["dit_variants"]["reference/adaln"]["today"]
    assert today["options"] == {
        "dropout_placement": "mlp",
        "gelu": "exact",
        "fused_qkv": False,
        "attention_mask": "when_padded",
        "dropout_masks": "packed",
        "fused_adaln": True,
        "mlp_chunk_tokens": 2048,
        "skip_padded": True,
        "sample_chunk_tokens": 2048,
    }
    assert today["fused_adamw"] is True
    assert today["today_train_samples_per_s"] > 0 and today["config_train_samples_per_s"] > 0
    assert today["train_speedup"] > 0 and today["guided_time_ratio"] > 0
    assert (
        today["today_guided_alone_s"] > 0
        and today["config_guided_alone_s"] > 0
        and today["guided_alone_time_ratio"] > 0
    )
    for key in ("train_speedup", "guided_time_ratio", "guided_alone_time_ratio"):
        rounds = today[f"{key}_rounds"]  # the spread behind each median, one ratio a round
        assert len(rounds) == today["rounds"] and all(value > 0 for value in rounds), key
        assert min(rounds) - 1e-12 <= today[key] <= max(rounds) + 1e-12, key
    kept = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc" and not users_own_malloc_settings()
    assert today["config_heap_kept"] is kept and today["today_heap_kept"] is False  # today's code left malloc alone
    table = (tmp_path / "bench.md").read_text()
    for heading in ("1. punet training step", "2. Sampling", "DiT variants", "of peak", "today's network", "Targets"):
        assert heading in table, heading
    names = [name for name, _, _ in report["targets"]]
    assert "adaln training >= 1.35x today's samples/s" in names and "adaln guided step <= 0.8x today's time" in names
    assert not any(name.startswith(("incontext", "cross_attention")) and "today" in name for name in names)
    assert len(report["targets"]) == 13


def test_spread_gives_the_rounds_range_only_for_several_rounds(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import bench

    assert bench.spread([1.31, 1.18, 1.47]) == " [1.18-1.47x]"
    assert bench.spread([1.3]) == "" and bench.spread([]) == ""


def test_dit_step_parts_measures_each_setting_against_today(monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import dit_step_parts

    rows = dit_step_parts.main(["--quick", "--rounds", "2", "--threads", "1", "--variants", "adaln"])
    assert [name for _, name, _, _ in rows] == list(dit_step_parts.settings("adaln"))
    assert rows[0][3] == 1.0 and all(seconds > 0 and ratio > 0 for _, _, seconds, ratio in rows)
    assert "+ packed dropout masks" in capsys.readouterr().out
    padded = dit_step_parts.main(
        ["--quick", "--rounds", "1", "--threads", "1", "--variants", "adaln", "--lengths", "24,9,3"]
    )
    assert len(padded) == len(rows) and "lengths [24, 9, 3]" in capsys.readouterr().out
