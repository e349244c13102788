"""trainer=ddp on CPU: two processes (gloo) train one run, log once, save one set of checkpoints and keep
identical weights and EMA on both ranks, while each rank draws its own diffusion noise."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch

from conftest import ROOT, TINY_NETWORK
from motiondiff.training.checkpoint_io import load_checkpoint

STEPS = 6


class SaveEMAPerRank(L.Callback):
    """Write this rank's online and EMA weights to <out>/rank<r>.pt at the end of training."""

    def __init__(self, out: str):
        self.out = Path(out)

    def on_train_end(self, trainer, pl_module):
        state = {
            k: v.detach().cpu().clone() for k, v in pl_module.state_dict().items() if k.startswith(("network.", "ema."))
        }
        torch.save(state, self.out / f"rank{trainer.global_rank}.pt")


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    run_dir, dumps = tmp_path_factory.mktemp("ddp"), tmp_path_factory.mktemp("dumps")
    command = [
        sys.executable,
        "-m",
        "motiondiff.train",
        "experiment=dance2d",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.precision=32-true",
        *TINY_NETWORK,
        f"trainer.max_steps={STEPS}",
        "trainer.max_epochs=-1",
        "trainer.check_val_every_n_epoch=1",
        "trainer.log_every_n_steps=1",
        "generate_after_training.num_samples=0",
        "~callbacks.progress_bar",
        "+callbacks.dump._target_=test_ddp.SaveEMAPerRank",
        f"+callbacks.dump.out={dumps}",
        f"hydra.run.dir={run_dir}",
    ]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
    }
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir, dumps


def test_two_processes_write_one_run(ddp_run):
    run_dir, _ = ddp_run
    names = sorted(p.name for p in (run_dir / "checkpoints").iterdir())  # one set, no per-rank or temporary files
    assert len(names) == 2 and names[0].startswith("best-epoch") and names[1] == "last.ckpt"
    assert load_checkpoint(run_dir / "checkpoints" / "last.ckpt")["global_step"] == STEPS
    rows = list(csv.DictReader(open(run_dir / "logs" / "metrics.csv")))
    logged_steps = [row["step"] for row in rows if row.get("train/loss")]
    assert len(logged_steps) == STEPS and len(set(logged_steps)) == STEPS  # each step logged once, by rank 0


def test_both_ranks_hold_the_same_weights_and_ema_as_the_checkpoint(ddp_run):
    run_dir, dumps = ddp_run
    rank0, rank1 = torch.load(dumps / "rank0.pt", weights_only=True), torch.load(dumps / "rank1.pt", weights_only=True)
    saved = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")["state_dict"]
    assert any(k.startswith("ema.") for k in rank0)
    for name, value in rank0.items():
        assert torch.equal(value, rank1[name]), name  # gradients all-reduced, EMA updated alike on every rank
        assert torch.equal(value, saved[name]), name


def test_each_rank_draws_its_own_noise_and_the_checkpoint_keeps_both_streams(ddp_run):
    run_dir, _ = ddp_run
    callbacks = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")["callbacks"]
    streams = next(state["torch"] for key, state in callbacks.items() if "RandomStreams" in key)
    assert streams.shape[0] == 2 and not torch.equal(streams[0], streams[1])
