"""A new user's first mistakes leave nothing behind and name the fix; runs say what they do; Ctrl-C keeps the run."""

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import TQDMProgressBar

from conftest import ROOT, TINY_NETWORK, compose_config, fake_run
from motiondiff.cli.app import CONFIG_DIR, expand_shorthands, named_run_dir_parent_exists
from motiondiff.cli.preflight import preflight
from motiondiff.core.errors import UserError
from motiondiff.runs.directories import remove_if_stub, runs_with_checkpoint
from motiondiff.training.metrics_log import StepCSVLogger, read_rows, truncate_from
from motiondiff.training.progress import LineProgress, progress_bar

QUICK = ["experiment=dance2d", *TINY_NETWORK, "generate_after_training.num_samples=0"]


def command(tmp_path: Path, name: str, *args, **kwargs) -> subprocess.CompletedProcess:
    """Run `python -m motiondiff.<name> args` in tmp_path, output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", f"motiondiff.{name}", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        **kwargs,
    )


# ---- check before creating ----------------------------------------------------------------------


def test_a_wrong_run_dir_creates_nothing_and_lists_the_runs_that_have_a_checkpoint(tmp_path):
    finished = fake_run(tmp_path / "outputs", "2026-01-01_00-00-00-000000", checkpoint=True)
    before = sorted(tmp_path.rglob("*"))
    for wrong in ("run_dir=last/typo", "run_dir=nope"):
        result = command(tmp_path, "generate", wrong)
        assert result.returncode == 2, result.stderr
        assert "no such run" in result.stderr and str(finished.relative_to(tmp_path)) in result.stderr
        assert "Traceback" not in result.stderr
    assert sorted(tmp_path.rglob("*")) == before  # no generations/ folder, no 'last/' in the current directory


def test_run_dir_last_is_the_newest_run_with_a_checkpoint(tmp_path):
    root = tmp_path / "outputs"
    older = fake_run(root, "2026-01-01_00-00-00-000000", checkpoint=True)
    time.sleep(0.01)
    newest = fake_run(root, "2026-01-02_00-00-00-000000", checkpoint=True)
    time.sleep(0.01)
    fake_run(root, "2026-01-03_00-00-00-000000", checkpoint=False)  # a failed start
    assert runs_with_checkpoint(root) == [newest, older]
    argv = preflight(CONFIG_DIR, "generate", ["run_dir=last", f"paths.output_root={root}"])
    assert f"run_dir={newest}" in argv
    with pytest.raises(UserError, match="has no checkpoints/last.ckpt"):
        preflight(CONFIG_DIR, "generate", [f"run_dir={root / 'dance2d-punet' / '2026-01-03_00-00-00-000000'}"])


@pytest.mark.parametrize(
    "name, argv, message",
    [
        ("evaluate", ["sweep_dir=/no/such/sweep"], "no such sweep directory"),
        ("evaluate", ["run_dir=last", "evaluator=/no/such/evaluator"], "no such run: evaluator=/no/such/evaluator"),
        ("train", ["experiment=dance2d", "ckpt_path=/no/such.ckpt"], "no such checkpoint: ckpt_path=/no/such.ckpt"),
        ("train", ["resume=/no/such/run"], "no such run: resume=/no/such/run"),
        ("generate", [], "say which run to use"),
    ],
)
def test_paths_are_checked_before_anything_runs(tmp_path, name, argv, message):
    fake_run(tmp_path / "outputs", "2026-01-01_00-00-00-000000", checkpoint=True)
    argv = [
        a.replace("run_dir=last", f"run_dir={tmp_path / 'outputs/dance2d-punet/2026-01-01_00-00-00-000000'}")
        for a in argv
    ]
    with pytest.raises(UserError, match=re.escape(message)):
        preflight(CONFIG_DIR, name, expand_shorthands([*argv, f"paths.output_root={tmp_path / 'outputs'}"]))


def test_the_training_data_is_checked_as_the_command_would_read_it(tmp_path, monkeypatch):
    """dataset.source (a file) and dataset.root (a folder) before anything runs: interpolations resolved as Hydra would,
    a sweep's every value, and nothing refused that the command would read."""
    clip = tmp_path / "clip.bvh"
    clip.write_text("HIERARCHY\n")  # only its existence is checked here
    monkeypatch.setenv("CLIPS", str(tmp_path))
    for command in ("train", "render_data"):
        with pytest.raises(UserError, match=re.escape(f"no such file: dataset.source={tmp_path}/nope.bvh")):
            preflight(CONFIG_DIR, command, ["dataset.source=${oc.env:CLIPS}/nope.bvh"])
        preflight(CONFIG_DIR, command, ["dataset.source=${oc.env:CLIPS}/clip.bvh"])  # there: accepted
    with pytest.raises(UserError, match=re.escape("no such file: dataset.source=/no/such.npy")):
        preflight(CONFIG_DIR, "train", ["-m", f"dataset.source={clip},/no/such.npy"])
    with pytest.raises(UserError, match=re.escape("no such directory: dataset.root=/no/such/HumanML3D")):
        preflight(CONFIG_DIR, "train", ["dataset=humanml3d", "dataset.root=/no/such/HumanML3D"])
    preflight(CONFIG_DIR, "train", ["dataset=humanml3d", f"dataset.root={tmp_path}"])  # a folder: left to the data
    preflight(CONFIG_DIR, "train", ["experiment=text2motion"])  # dataset.root=procedural
    preflight(CONFIG_DIR, "train", ["dataset.source=/on/the/nodes.npy", "hydra/launcher=slurm"])  # read elsewhere


def test_a_file_named_through_an_interpolation_is_checked_where_it_resolves(tmp_path, monkeypatch):
    run = fake_run(tmp_path / "outputs", "2026-01-01_00-00-00-000000", checkpoint=True)
    (tmp_path / "prompts.txt").write_text("a person waves\n")
    monkeypatch.setenv("PROMPTS", str(tmp_path))
    monkeypatch.delenv("NO_SUCH_VARIABLE", raising=False)
    preflight(CONFIG_DIR, "generate", [f"run_dir={run}", "prompts_file=${oc.env:PROMPTS}/prompts.txt"])  # there
    with pytest.raises(UserError, match=re.escape(f"no such file: prompts_file={tmp_path}/other.txt")):
        preflight(CONFIG_DIR, "generate", [f"run_dir={run}", "prompts_file=${oc.env:PROMPTS}/other.txt"])
    with pytest.raises(UserError, match="cannot resolve prompts_file: .*NO_SUCH_VARIABLE"):
        preflight(CONFIG_DIR, "generate", [f"run_dir={run}", "prompts_file=${oc.env:NO_SUCH_VARIABLE}/p.txt"])
    monkeypatch.setenv("RUNS", str(run.parent))  # the run and the teacher, named through the environment too
    named = "${oc.env:RUNS}/" + run.name
    assert preflight(CONFIG_DIR, "generate", [f"run_dir={named}"]) == [f"run_dir={named}"]  # kept for Hydra
    preflight(CONFIG_DIR, "generate", ["-m", f"run_dir={named},{named}"])  # a sweep's interpolations: left to Hydra
    for empty in ("''", "null"):  # a job of the sweep without a run
        with pytest.raises(UserError, match="run_dir is empty in one job of the sweep"):
            preflight(CONFIG_DIR, "generate", ["-m", f"run_dir={empty},{run}"])
        with pytest.raises(UserError, match="ckpt_path is empty in one job of the sweep"):
            preflight(CONFIG_DIR, "generate", ["-m", f"ckpt_path={run}/checkpoints/last.ckpt,{empty}"])
    preflight(CONFIG_DIR, "generate", ["-m", f"run_dir={run}", f"ckpt_path=null,{run}/checkpoints/last.ckpt"])
    spaced = run.rename(run.parent / "a run")  # a sweep's values are checked as the jobs get them (unescaped)
    escaped = str(spaced).replace(" ", "\\ ")  # a space escaped with a backslash, as Hydra's grammar allows
    preflight(CONFIG_DIR, "generate", ["-m", f"run_dir='{spaced}',{escaped}"])
    run = spaced.rename(run)
    preflight(CONFIG_DIR, "train", ["experiment=distill", f"teacher={named}"])
    for command, key in (("generate", "run_dir"), ("train", "teacher"), ("train", "resume")):
        with pytest.raises(UserError, match=re.escape(f"no such run: {key}={run.parent}/nope")):
            preflight(CONFIG_DIR, command, [f"{key}=${{oc.env:RUNS}}/nope"])
    (run / ".hydra").mkdir()
    (run / ".hydra" / "overrides.yaml").write_text("- seed=3\n")
    resumed = preflight(CONFIG_DIR, "train", [f"resume={named}"])  # resume is no config key: resolved by preflight
    assert "seed=3" in resumed and f"hydra.run.dir={run.resolve()}" in resumed
    with pytest.raises(UserError, match="cannot resolve resume: .*NO_SUCH_VARIABLE"):
        preflight(CONFIG_DIR, "train", ["resume=${oc.env:NO_SUCH_VARIABLE}/run"])


def test_make_generate_and_evaluate_skip_a_run_without_a_checkpoint(tmp_path):
    finished = fake_run(tmp_path / "outputs", "2026-01-01_00-00-00-000000", checkpoint=True)
    time.sleep(0.01)
    fake_run(tmp_path / "outputs", "2026-01-02_00-00-00-000000", checkpoint=False)  # newer, but a stub
    for target in ("generate", "evaluate"):
        result = subprocess.run(
            ["make", "-s", "-f", str(ROOT / "Makefile"), target, "STAMP=", "PY=echo"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr
        assert f"run_dir={finished.relative_to(tmp_path)}" in result.stdout
    empty = subprocess.run(
        ["make", "-s", "-f", str(ROOT / "Makefile"), "generate", "STAMP=", "PY=echo"],
        cwd=ROOT / "tests",
        capture_output=True,
        text=True,
    )
    assert empty.returncode != 0 and "run make demo first" in empty.stderr


def test_a_run_that_fails_before_saving_anything_removes_its_folder(tmp_path):
    result = command(tmp_path, "train", *QUICK, "network.base_channels=30")  # refused when the network is built
    assert result.returncode == 2 and "removed" in result.stderr, result.stderr
    error = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert error == ["error: network.base_channels=30 must be divisible by network.groups=8."], result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "outputs").exists() or not any((tmp_path / "outputs").rglob("*.yaml"))


def test_a_command_whose_code_fails_to_import_removes_its_folder_and_a_sweep_job_records_it(tmp_path):
    """The run function is imported after Hydra made the output folder (cli.app): its failure is the run's failure.
    (convert_bvh's config names no Lightning class, so preflight imports no Lightning: 4 s a process instead of 11.)"""
    script = """
import sys
from motiondiff.cli import app
sys.argv = ["motiondiff-convert-bvh", *sys.argv[1:]]
app.hydra_entry_point("convert_bvh", "motiondiff.no_such_room.run")()
"""
    (tmp_path / "mine").mkdir()  # the user's empty folder, named as the run's: it stays
    single, sweep = (
        subprocess.run([sys.executable, "-c", script, *argv], cwd=tmp_path, capture_output=True, text=True)
        for argv in ([f"hydra.run.dir={tmp_path / 'mine' / 'single'}"], ["-m", f"hydra.sweep.dir={tmp_path / 'sweep'}"])
    )
    assert single.returncode == 1 and "No module named 'motiondiff.no_such_room'" in single.stderr, single.stderr
    assert "removed" in single.stderr and not (tmp_path / "mine" / "single").exists()
    assert (tmp_path / "mine").is_dir()
    assert sweep.returncode == 1 and "1 of 1 jobs failed, see" in sweep.stderr, sweep.stderr[-2000:]  # its summary
    status = json.loads((tmp_path / "sweep" / "0" / "job_status.json").read_text())
    assert status["status"] == "failed" and "no_such_room" in status["error"]


def test_only_a_folder_of_hydra_records_and_logs_written_now_is_removed(tmp_path):
    stub = tmp_path / "stub"
    (stub / ".hydra").mkdir(parents=True)
    (stub / ".hydra" / "config.yaml").write_text("a: 1\n")
    (stub / "train.log").write_text("")
    product = tmp_path / "product"
    (product / "checkpoints").mkdir(parents=True)
    (product / "checkpoints" / "last.ckpt").write_bytes(b"")
    older = tmp_path / "older"
    older.mkdir()
    (older / "train.log").write_text("")
    os.utime(older / "train.log", (0, 0))
    since = time.time() - 60
    assert remove_if_stub(stub, since) and not stub.exists()
    assert not remove_if_stub(product, since) and product.exists()
    assert not remove_if_stub(older, since) and older.exists()  # a file from before the command: not ours


def test_the_folder_a_stub_was_first_in_goes_unless_the_user_named_it_or_works_in_it(tmp_path, monkeypatch):
    def stub_in(folder: Path) -> Path:
        (folder / "stub" / ".hydra").mkdir(parents=True)
        (folder / "stub" / ".hydra" / "config.yaml").write_text("a: 1\n")
        return folder / "stub"

    since = time.time() - 60
    assert remove_if_stub(stub_in(tmp_path / "run_name"), since) and not (tmp_path / "run_name").exists()
    assert remove_if_stub(stub_in(tmp_path / "named"), since, keep_parent=True) and (tmp_path / "named").is_dir()
    monkeypatch.chdir(tmp_path / "named")
    assert remove_if_stub(stub_in(tmp_path / "named"), since) and (tmp_path / "named").is_dir()  # the shell's folder
    (tmp_path / "other").mkdir()
    assert named_run_dir_parent_exists([f"hydra.run.dir={tmp_path / 'other' / 'run'}"])
    assert not named_run_dir_parent_exists([f"hydra.run.dir={tmp_path / 'new' / 'run'}", "seed=1"])
    assert named_run_dir_parent_exists(["hydra.run.dir=${paths.output_root}/x"])  # unknown before Hydra: kept
    assert named_run_dir_parent_exists([f"hydra.run.dir='{tmp_path / 'other' / 'my run'}'"])  # quoted as Hydra reads it
    assert not named_run_dir_parent_exists([f"hydra.run.dir={tmp_path / 'other' / 'a'}", "hydra.run.dir=new/b"])
    (tmp_path / "linked").symlink_to(tmp_path / "other")
    assert (
        remove_if_stub(stub_in(tmp_path / "linked"), since) and (tmp_path / "other").is_dir()
    )  # not the link's target
    assert not named_run_dir_parent_exists(["seed=1"])  # the default layout: outputs/<run name>/<time>


# ---- typos ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, argv, message",
    [
        ("train", ["trainer.max_step=20"], "did you mean trainer.max_steps?"),
        (
            "train",
            ["+trainer.max_step=20"],
            "trainer.max_step is not an option of Trainer; did you mean trainer.max_steps?",
        ),
        ("train", ["trainer=gpuu"], "did you mean trainer=gpu?"),
        ("train", ["-m", "network=adaln,incontxt"], "did you mean network=incontext?"),
        ("train", ["+network.base_chanels=8"], "did you mean network.base_channels?"),
        ("train", ["+foo=1"], "foo is not a setting of the train command"),
        ("generate", ["num_sample=4"], "did you mean num_samples?"),
        ("generate", ["+num_sample=4"], "did you mean num_samples?"),
        ("generate", ["sampler=ddim", "sampler.steps=50"], "did you mean sampler.num_steps?"),
    ],
)
def test_a_typo_names_the_closest_key_before_anything_runs(name, argv, message):
    with pytest.raises(UserError, match=re.escape(message)):
        preflight(CONFIG_DIR, name, argv)


def test_a_typo_on_the_command_line_is_one_line_and_writes_nothing(tmp_path):
    result = command(tmp_path, "train", "experiment=dance2d", "trainer.max_step=20")
    assert result.returncode == 2 and "did you mean trainer.max_steps?" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not any(tmp_path.iterdir())


def test_valid_command_lines_pass_unchanged():
    argv = ["experiment=dance2d", "trainer.max_steps=20", "+trainer.limit_val_batches=1", "~callbacks.progress_bar"]
    assert preflight(CONFIG_DIR, "train", argv) == argv
    assert preflight(CONFIG_DIR, "train", ["--cfg", "job", "typo=1"]) == ["--cfg", "job", "typo=1"]


# ---- the GPU by default -----------------------------------------------------------------------------


def test_the_default_trainer_uses_the_gpu_when_cuda_sees_one(tmp_path, monkeypatch):
    cfg = compose_config("train", tmp_path, ["experiment=dance2d"])
    expected = ("gpu", "bf16-mixed") if torch.cuda.is_available() else ("cpu", "32-true")
    assert (cfg.trainer.accelerator, cfg.trainer.precision) == expected
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    cfg = compose_config("train", tmp_path, ["experiment=dance2d"])
    assert (cfg.trainer.accelerator, cfg.trainer.precision) == ("gpu", "bf16-mixed")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_trainer_gpu_without_cuda_is_one_sentence():
    with pytest.raises(UserError, match="needs a CUDA GPU, but torch .* sees none; drop trainer=gpu"):
        preflight(CONFIG_DIR, "train", ["experiment=dance2d", "trainer=gpu"])


# ---- logs, progress, metrics.csv ----------------------------------------------------------------------


def test_progress_is_a_tqdm_bar_on_a_terminal_and_lines_elsewhere():
    assert isinstance(progress_bar(terminal=True), TQDMProgressBar)
    assert isinstance(progress_bar(terminal=False), LineProgress)


def test_metrics_csv_has_one_row_per_step_and_a_resumed_run_truncates_what_it_redoes(tmp_path):
    logger = StepCSVLogger(str(tmp_path), flush_every_n_rows=2)
    for step in range(5):
        logger.log_metrics({"train/loss": 1.0 / (step + 1), "epoch": 0}, step)
        logger.log_metrics({"lr": 0.1}, step)
    logger.log_metrics({"val/loss": 0.5}, 4)
    logger.finalize("success")
    rows = read_rows(tmp_path / "logs" / "metrics.csv")
    assert [int(row["step"]) for row in rows] == [0, 1, 2, 3, 4]
    assert all(row["train/loss"] and row["lr"] for row in rows) and rows[-1]["val/loss"] == "0.5"
    assert truncate_from(tmp_path / "logs" / "metrics.csv", 3) == 2  # resumed after 3 steps: rows 0, 1, 2 stay
    resumed = StepCSVLogger(str(tmp_path))
    resumed.log_metrics({"train/loss": 0.1, "epoch": 1}, 3)
    resumed.finalize("success")
    assert [int(row["step"]) for row in read_rows(tmp_path / "logs" / "metrics.csv")] == [0, 1, 2, 3]


# ---- a real training process, a real signal, a resume in the same directory ----------------------------


# Resuming does not depend on what stopped the run: it is checked once, after Ctrl-C (a second resume took 10 s).
@pytest.mark.parametrize("signal_number, then_resume", [(signal.SIGINT, True), (signal.SIGTERM, False)])
def test_a_signal_saves_the_step_and_resume_continues_the_same_run_and_logs(tmp_path, signal_number, then_resume):
    """Trained from an experiment in the user's own config folder (-cd), resumed without naming it again."""
    (tmp_path / "mine" / "experiment").mkdir(parents=True)
    (tmp_path / "mine" / "experiment" / "mine.yaml").write_text("# @package _global_\ndefaults:\n  - dance2d\n")
    args = ["-cd", "mine", *QUICK, "experiment=mine", "trainer.max_steps=100000", "trainer.log_every_n_steps=2"]
    args.append("callbacks.progress_bar.every_n_steps=3")
    process = subprocess.Popen(
        [sys.executable, "-m", "motiondiff.train", *args],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    output = []
    lines = io.TextIOWrapper(process.stdout, newline="")  # keep "\r" as written (text=True would make it "\n")
    for line in lines:  # wait until it trains (a plain line every 3 steps: stdout is not a terminal)
        output.append(line)
        if re.search(r"step (9|1\d)/100000", line):
            process.send_signal(signal_number)
            break
    output += lines.readlines()
    process.wait(timeout=120)
    text = "".join(output)
    name = signal.Signals(signal_number).name
    assert process.returncode == 128 + signal_number, text
    stopped = re.search(rf"Stopped by {name} at step (\d+) of 100000 .*; saved (\S+)", text)
    assert stopped, text
    step, checkpoint = int(stopped.group(1)), tmp_path / stopped.group(2)
    assert torch.load(checkpoint, map_location="cpu", weights_only=True)["global_step"] == step
    run_dir = checkpoint.parent.parent
    assert f"python -m motiondiff.train resume={run_dir.relative_to(tmp_path)}" in text
    assert "\r" not in text and "\x1b" not in text and "Tip:" not in text and "FLOPs" not in text
    log = (run_dir / "train.log").read_text()
    for line in (
        "Run directory:",
        "Data:",
        "Network:",
        "Device:",
        "Training:",
        f"Stopped by {name}",
    ):
        assert line in log
    if not then_resume:
        return

    resumed = command(tmp_path, "train", f"resume={run_dir.relative_to(tmp_path)}", f"trainer.max_steps={step + 12}")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert list((tmp_path / "outputs" / "dance2d-punet").iterdir()) == [run_dir]  # the same directory, no new one
    assert f"resumed at step {step}" in resumed.stdout and f"Finished: step {step + 12}, 12 steps" in resumed.stdout
    steps = [int(row["step"]) for row in read_rows(run_dir / "logs" / "metrics.csv")]
    assert steps == sorted(set(steps)) and steps[0] < step < steps[-1]  # one curve: before and after, no repeats
    assert "Last checkpoint:" in (run_dir / "train.log").read_text()  # the resumed run logs into the same file
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == step + 12


def test_a_log_written_to_a_file_holds_no_carriage_return(tmp_path):
    """Training, validation samples and generation after training, all redirected to a file: plain lines only."""
    log = tmp_path / "train.out"
    with log.open("w") as out:
        finished = subprocess.run(
            [
                sys.executable,
                "-m",
                "motiondiff.train",
                *QUICK,
                "trainer.max_steps=6",
                "trainer.check_val_every_n_epoch=1",
                "module.sample_every_n_epochs=1",
                "module.val_num_samples=1",
                "generate_after_training.num_samples=2",
                "generate_after_training.chain_windows=2",
                "sampler=ddim",  # no sampler bar off a terminal (docs/runs.md); DDPM-1000 took 34 s, this 15
                "sampler.num_steps=5",
                "val_sampler.num_steps=5",
            ],
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=300,
        )
    text = log.read_bytes().decode()  # bytes: read_text would turn "\r" into "\n"
    assert finished.returncode == 0, text
    assert "Samples:" in text and "Finished: step 6" in text
    assert "\r" not in text and "\x1b" not in text, text
