"""Smoke run of the data benchmark (benchmarks/data_bench.py --quick): every figure lands in its JSON and Markdown."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(
    importlib.util.find_spec("psutil") is None,
    reason="psutil is not installed: pip install --no-deps -r benchmarks/requirements.txt",
)
def test_quick_data_benchmark_writes_every_figure(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "data_bench.py"), "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    data = json.loads((tmp_path / "data_bench.json").read_text())["data"]
    assert data["motions"] == 40 and data["items"] > 0 and data["unique_captions"] <= data["captions"]
    for run in ("cold", "warm"):
        assert 0 < data[run]["ready_s"] < data[run]["total_s"] and data[run]["peak_rss_mb"] > 0
        assert "experiment=text2motion" in data[run]["command"]
    assert data["cold"]["encode_s"] > 0 and data["warm"]["encode_s"] is None  # warm: every caption cached
    assert data["cold"]["pack_s"] > 0 and data["warm"]["pack_s"] is None  # warm: the packed cache reused
    assert data["loader"]["0"]["samples_per_s"] > 0 and data["training"]["samples_per_s"] > 0
    assert data["memory"]["data_mb"] > 0 and data["machine"]["cpu"]
    assert [len(row) for row in data["targets"]] == [3] * 4
    table = (tmp_path / "data_bench.md").read_text()
    for text in ("Data pipeline at scale", "warm start", "train loader", "| target |"):
        assert text in table, text
