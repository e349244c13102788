"""Sweeps: a failed job does not stop a multirun and is listed in the sweep summary; the joblib and SLURM
launchers; evaluating every run of a sweep; comparing the runs (tables and chart)."""

import csv
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image

from conftest import CONFIG_DIR, ROOT, compose_config
from motiondiff.cli.app import register_resolvers
from motiondiff.core.errors import UserError
from motiondiff.evaluation import compare
from motiondiff.evaluation import run as evaluate
from motiondiff.sweeps.jobs import SweepSummary

TINY_DANCE = [
    "experiment=dance2d",
    "+trainer.fast_dev_run=true",
    "generate_after_training.num_samples=0",
    "network.channel_mults=[1,2]",
    "network.num_res_blocks=1",
]


def _multirun(sweep_dir, *overrides):
    return subprocess.run(
        [sys.executable, "-m", "motiondiff.train", "-m", *TINY_DANCE, *overrides, f"hydra.sweep.dir={sweep_dir}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def failing_sweep(tmp_path_factory):
    """Two jobs one after the other (Hydra's basic launcher); the first has an invalid width."""
    sweep_dir = tmp_path_factory.mktemp("failing_sweep")
    return sweep_dir, _multirun(sweep_dir, "network.base_channels=30,8")


@pytest.fixture(scope="module")
def joblib_sweep(tmp_path_factory):
    """Two tiny dance runs trained in parallel by the joblib launcher (hydra/launcher=local)."""
    sweep_dir = tmp_path_factory.mktemp("joblib_sweep")
    return sweep_dir, _multirun(
        sweep_dir, "hydra/launcher=local", "hydra.launcher.n_jobs=2", "network.base_channels=8,16"
    )


def test_a_failed_job_does_not_stop_the_sweep_and_is_in_the_summary(failing_sweep):
    sweep_dir, result = failing_sweep
    assert result.returncode == 1, result.stderr[-2000:]
    assert f"1 of 2 jobs failed, see {sweep_dir / 'sweep_summary.md'}" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout  # a UserError is logged in one line
    assert (sweep_dir / "1" / "checkpoints" / "last.ckpt").is_file()  # the job after the failed one ran
    assert not (sweep_dir / "0" / "checkpoints").exists()
    summary = json.loads((sweep_dir / "sweep_summary.json").read_text())
    assert (summary["jobs"], summary["failed"]) == (2, 1)
    failed, completed = summary["rows"]
    assert (failed["job"], failed["status"], completed["status"]) == (0, "failed", "completed")
    assert "network.base_channels=30 must be divisible" in failed["error"] and completed["error"] is None
    assert "network.base_channels=30" in failed["overrides"] and failed["run_dir"] == str(sweep_dir / "0")
    status = json.loads((sweep_dir / "0" / "job_status.json").read_text())
    assert status["error"] == failed["error"] and status["wall_time_s"] >= 0
    table = (sweep_dir / "sweep_summary.md").read_text()
    assert "| 0 | `network.base_channels=30` | failed | 0 |" in table and "must be divisible" in table
    assert "| 1 | `network.base_channels=8` | completed | 1 |" in table


def test_a_used_sweep_directory_is_refused_before_any_job(failing_sweep, capsys):
    sweep_dir, _ = failing_sweep
    with pytest.raises(SystemExit) as stopped:
        SweepSummary().on_multirun_start(OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep_dir)}}}))
    assert stopped.value.code == 2 and "already holds a sweep" in capsys.readouterr().err


def test_joblib_launcher_runs_the_jobs_in_parallel_processes(joblib_sweep):
    sweep_dir, result = joblib_sweep
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Joblib.Parallel(n_jobs=2" in result.stdout and "all 2 jobs completed" in result.stdout
    widths = [
        int((sweep_dir / job / "config.yaml").read_text().split("base_channels: ")[1].split()[0]) for job in ("0", "1")
    ]
    assert widths == [8, 16]
    assert all((sweep_dir / job / "checkpoints" / "last.ckpt").is_file() for job in ("0", "1"))
    summary = json.loads((sweep_dir / "sweep_summary.json").read_text())
    assert [row["status"] for row in summary["rows"]] == ["completed", "completed"]
    assert all(row["pid"] > 0 and row["wall_time_s"] > 0 for row in summary["rows"])


def test_slurm_launcher_config_resolves_and_sizes_a_gpu_job(tmp_path, monkeypatch):
    import submitit

    register_resolvers()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        cfg = compose(
            "train",
            overrides=[
                "hydra/launcher=slurm",
                "trainer=gpu",
                "hydra.launcher.partition=gpu",
                f"hydra.sweep.dir={tmp_path}",
            ],
            return_hydra_config=True,
        )
    HydraConfig.instance().set_config(cfg)
    launcher_cfg = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert launcher_cfg["_target_"].endswith("submitit_launcher.SlurmLauncher")
    assert launcher_cfg["gpus_per_node"] * launcher_cfg["nodes"] == cfg.trainer.devices == 1
    assert launcher_cfg["tasks_per_node"] == cfg.trainer.devices  # one process per GPU
    assert launcher_cfg["submitit_folder"] == f"{tmp_path}/.submitit/%j" and launcher_cfg["name"] == "train"
    # The launcher's own code turns the config into sbatch options (submission is stopped before sbatch).
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "srun").write_text("#!/bin/sh\nexit 1\n")
    (fake_bin / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}{os.pathsep}{os.environ['PATH']}")  # submitit looks for srun
    submitted = {}

    def capture(executor, function, *arguments):
        submitted["sbatch"] = executor._executor._make_submission_file_text("python job.py", "uid")
        raise StopIteration

    monkeypatch.setattr(submitit.AutoExecutor, "map_array", capture)
    launcher = instantiate(cfg.hydra.launcher)
    launcher.config = cfg
    with pytest.raises(StopIteration):
        launcher.launch([["seed=0"], ["seed=1"]], initial_job_idx=0)
    for option in (
        "--partition=gpu",
        "--gpus-per-node=1",
        "--ntasks-per-node=1",
        "--cpus-per-task=8",
        "--mem=32GB",
        "--time=240",
    ):
        assert f"#SBATCH {option}\n" in submitted["sbatch"]


def _write_metrics(run_dir, results):
    out = run_dir / "evaluations" / "2026-01-01_00-00-00-000000"
    out.mkdir(parents=True)
    (out / "metrics.json").write_text(json.dumps({"settings": {}, "results": results}))


def _entry(mean, interval):
    return {
        "mean": mean,
        "interval": interval,
        "values": [mean] if interval is None else [mean - interval, mean + interval],
    }


def test_compare_tables_and_chart_of_two_evaluated_runs(joblib_sweep, tmp_path):
    sweep_dir = tmp_path / "sweep"
    shutil.copytree(joblib_sweep[0], sweep_dir)
    real = {"FD": _entry(1.0, 0.1), "R@3": _entry(0.9, 0.01)}
    _write_metrics(sweep_dir / "0", {"real": real, "generated": {"FD": _entry(12.0, 1.5), "R@3": _entry(0.25, 0.05)}})
    _write_metrics(sweep_dir / "1", {"real": real, "generated": {"FD": _entry(6.5, 0.5), "R@3": _entry(0.5, None)}})
    out = tmp_path / "comparison"
    result = compare.run(compose_config("compare", out, [f"sweep_dir={sweep_dir}"]))
    with open(out / "comparison.csv") as handle:
        rows = list(csv.reader(handle))
    assert rows == [
        ["run", "network.base_channels", "status", "FD mean", "FD interval", "R@3 mean", "R@3 interval"],
        ["0", "8", "evaluated", "12.0", "1.5", "0.25", "0.05"],
        ["1", "16", "evaluated", "6.5", "0.5", "0.5", ""],
        ["real (test split, reference)", "", "reference", "1.0", "0.1", "0.9", "0.01"],
    ]
    table = (out / "comparison.md").read_text()
    assert "| 0 | 8 | evaluated | 12.000 ± 1.500 | 0.250 ± 0.050 |" in table
    assert "| 1 | 16 | evaluated | 6.500 ± 0.500 | 0.500 |" in table
    assert "| real (test split, reference) |  | reference | 1.000 ± 0.100 | 0.900 ± 0.010 |" in table
    assert "↓ lower is better" in table and "| R@3 ↑ | higher is better |" in table  # legend, every column explained
    assert "over 2 replications. Values without ±: one replication." in table
    assert max(len(line) for line in result["printed"].splitlines()) <= 100 and "| base_channels |" in result["printed"]
    image = np.asarray(Image.open(out / "comparison.png").convert("RGB"))
    assert image.shape[0] > 300 and image.shape[1] > 600 and image.std() > 10
    with pytest.raises(UserError, match="never overwrite"):
        compare.run(compose_config("compare", out, [f"sweep_dir={sweep_dir}"]))


def test_compare_lists_failed_and_unevaluated_runs(failing_sweep, tmp_path):
    out = tmp_path / "comparison"
    compare.run(compose_config("compare", out, [f"sweep_dir={failing_sweep[0]}"]))
    table = (out / "comparison.md").read_text()
    assert "| 0 | 30 | training failed: network.base_channels=30 must be divisible" in table
    assert "| 1 | 8 | not evaluated |" in table
    assert not (out / "comparison.png").exists() and "No run has an evaluation" in table


def test_evaluate_a_sweep_writes_one_evaluation_per_run_and_records_a_failure(joblib_sweep, tmp_path):
    sweep_dir = tmp_path / "sweep"
    shutil.copytree(joblib_sweep[0], sweep_dir)
    shutil.copytree(sweep_dir / "1", sweep_dir / "broken")
    (sweep_dir / "broken" / "checkpoints" / "last.ckpt").write_bytes(b"not a checkpoint")
    out = tmp_path / "evaluate"
    cfg = compose_config(
        "evaluate",
        out,
        [
            f"sweep_dir={sweep_dir}",
            "clips=2",
            "duration_factor=0.1",
            "replications=2",
            "sampler=ddim",
            "sampler.num_steps=3",
        ],
    )
    with pytest.raises(UserError, match="1 of 3 evaluations failed"):
        evaluate.run(cfg)
    for run in ("0", "1"):
        [metrics] = (sweep_dir / run).glob("evaluations/*/metrics.json")
        assert set(json.loads(metrics.read_text())["results"]) == {"validation", "generated"}
        assert json.loads((metrics.parent / "source.json").read_text())["run_dir"] == str(sweep_dir / run)
    [status] = (sweep_dir / "broken").glob("evaluations/*/job_status.json")
    assert json.loads(status.read_text())["status"] == "failed" and "so it was not loaded" in status.read_text()
    rows = json.loads((out / "evaluations.json").read_text())["rows"]
    assert [(row["run_dir"], row["status"]) for row in rows] == [
        (str(sweep_dir / "0"), "completed"),
        (str(sweep_dir / "1"), "completed"),
        (str(sweep_dir / "broken"), "failed"),
    ]


def test_sweep_commands_write_their_own_folders_under_the_sweep(tmp_path):
    register_resolvers()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        for name, overrides, expected in [
            ("evaluate", [f"sweep_dir={tmp_path}"], f"{tmp_path}/evaluations/"),
            ("evaluate", [f"run_dir={tmp_path / 'run'}"], f"{tmp_path / 'run'}/evaluations/"),
            ("compare", [f"sweep_dir={tmp_path}"], f"{tmp_path}/comparisons/"),
        ]:
            cfg = compose(name, overrides=overrides, return_hydra_config=True)
            HydraConfig.instance().set_config(cfg)
            assert str(cfg.hydra.run.dir).startswith(expected)


def test_ddp_jobs_in_a_local_multirun_are_refused_with_the_way_to_do_it(tmp_path):
    result = _multirun(tmp_path, "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "seed=0,1")
    assert result.returncode == 1, result.stderr[-2000:]
    summary = json.loads((tmp_path / "sweep_summary.json").read_text())
    assert summary["failed"] == 2 and all("hydra/launcher=slurm" in row["error"] for row in summary["rows"])
