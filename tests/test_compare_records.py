"""`compare` on sweeps written by hand: a failed re-evaluation is shown as failed, not with the older numbers;
evaluation settings that differ become columns; runs measured by other protocols are refused."""

import json
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from motiondiff.core.errors import UserError
from motiondiff.evaluation import compare
from motiondiff.evaluation.report import summarize

OLDER, NEWER = "2026-01-01_10-00-00-000000", "2026-01-02_10-00-00-000000"


def job(sweep: Path, number: int, overrides: list, status: str = "completed", error=None) -> Path:
    """A finished sweep job: its overrides, status record and last checkpoint."""
    run_dir = sweep / str(number)
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / "checkpoints").mkdir()
    (run_dir / ".hydra" / "overrides.yaml").write_text(json.dumps(overrides))
    (run_dir / "checkpoints" / "last.ckpt").write_text("not read")
    record = {"job": number, "status": status, "error": error, "overrides": overrides}
    (run_dir / "job_status.json").write_text(json.dumps(record))
    return run_dir


def evaluation(run_dir: Path, time: str, settings: dict, fd=None, failed=None) -> None:
    """An evaluation folder: metrics.json of three replications around `fd`, or a failed status record."""
    folder = run_dir / "evaluations" / time
    folder.mkdir(parents=True)
    if fd is not None:
        rng = np.random.default_rng(0)
        rows = {
            "real": [{"FD": 1.0 + 0.1 * k, "R@3": 0.8} for k in range(3)],
            "generated": [{"FD": fd + rng.normal(), "R@3": 0.5} for _ in range(3)],
        }
        (folder / "metrics.json").write_text(json.dumps({"settings": settings, "results": summarize(rows)}))
    if failed is not None:
        (folder / "job_status.json").write_text(json.dumps({"status": "failed", "error": failed}))


def compared(sweep: Path) -> str:
    out = sweep / "comparisons" / "now"
    cfg = OmegaConf.create(
        {"sweep_dir": str(sweep), "paths": {"output_dir": str(out)}, "digits": 3, "plot_metrics": None}
    )
    compare.run(cfg)
    return (out / "comparison.md").read_text()


def ours(steps: int) -> dict:
    return {"protocol": "ours", "replications": 3, "sampler": {"name": "DDIMSampler", "num_steps": steps}}


def test_a_failed_re_evaluation_and_other_sampler_steps_are_shown(tmp_path):
    first = job(tmp_path, 0, ["optimizer.lr=1e-4"])
    evaluation(first, OLDER, ours(50), fd=20.0)
    second = job(tmp_path, 1, ["optimizer.lr=1e-3"])
    evaluation(second, OLDER, ours(10), fd=40.0)
    evaluation(second, NEWER, {}, failed="CUDA out of memory")  # asked again, and it failed
    third = job(tmp_path, 2, ["optimizer.lr=1e-2"])
    evaluation(third, OLDER, ours(10), fd=30.0)
    table = compared(tmp_path)
    assert "| 1 | 1e-3 |  | evaluation failed: CUDA out of memory |  |  |" in table  # not run 1's older numbers
    assert "| run | optimizer.lr | eval.sampler.num_steps | status |" in table
    assert "| 0 | 1e-4 | 50 | evaluated | 20." in table and "| 2 | 1e-2 | 10 | evaluated | 30." in table
    assert "evaluated under different settings" in table


def test_runs_evaluated_by_other_protocols_are_not_compared(tmp_path):
    evaluation(job(tmp_path, 0, ["seed=1"]), OLDER, ours(50), fd=20.0)
    evaluation(job(tmp_path, 1, ["seed=2"]), OLDER, {**ours(50), "protocol": "guo"}, fd=0.5)
    with pytest.raises(UserError, match=r"differ in protocol: ours \(run 0\), guo \(run 1\); .* evaluate them alike"):
        compared(tmp_path)
    assert not (tmp_path / "comparisons" / "now" / "comparison.md").exists()


def test_what_differs_by_nature_is_no_column_and_an_older_evaluation_reads_as_ours(tmp_path):
    """Timings, progress bars and 2 against 2.0 make no column; an evaluation saved before protocols were recorded
    is `ours`; one evaluator given by two paths is a column, not a refusal."""
    timed = {**ours(50), "guidance_weight": 2, "seconds": {"generating": 12.5}, "evaluator": "outputs/ev/last.ckpt"}
    timed["sampler"] = {**timed["sampler"], "progress": True}
    evaluation(job(tmp_path, 0, ["seed=1"]), OLDER, timed, fd=20.0)
    other = {
        **ours(50),
        "guidance_weight": 2.0,
        "seconds": {"generating": 9.0},
        "evaluator": "/abs/outputs/ev/last.ckpt",
    }
    other["sampler"] = {**other["sampler"], "progress": False}
    evaluation(job(tmp_path, 1, ["seed=2"]), OLDER, other, fd=21.0)
    older = {key: value for key, value in ours(50).items() if key != "protocol"}
    evaluation(
        job(tmp_path, 2, ["seed=3"]),
        OLDER,
        {**older, "guidance_weight": 2.0, "evaluator": "outputs/ev/last.ckpt"},
        fd=22.0,
    )
    table = compared(tmp_path)
    assert "| run | seed | eval.evaluator | status |" in table, table
