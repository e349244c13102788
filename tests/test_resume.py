"""Kill a run half way, resume it with ckpt_path: it ends with the weights of the uninterrupted run."""

import lightning as L
import pytest
import torch

from conftest import TINY_NETWORK, compose_config
from motiondiff.runs import train
from motiondiff.training.checkpoint_io import load_checkpoint

STEPS = 18  # three epochs of the procedural dance's 6 batches
QUICK = [
    "experiment=dance2d",
    *TINY_NETWORK,
    "generate_after_training.num_samples=0",
    "module.sample_every_n_epochs=2",
    "trainer.check_val_every_n_epoch=1",
    "trainer.max_epochs=-1",
    f"trainer.max_steps={STEPS}",
    "~callbacks.progress_bar",
]


class Crash(L.Callback):
    """Kill the run (an exception, as a crash would) at the end of training epoch `epoch`, after its checkpoint."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch:
            raise KeyboardInterrupt("killed")


def weights(run_dir) -> dict:
    return load_checkpoint(run_dir / "checkpoints" / "last.ckpt")["state_dict"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    return train.run(compose_config("train", tmp_path_factory.mktemp("whole"), QUICK))["run_dir"]


def test_a_killed_and_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(tmp_path, uninterrupted):
    killed = tmp_path / "killed"
    with pytest.raises((KeyboardInterrupt, SystemExit)):
        train.run(
            compose_config(
                "train", killed, [*QUICK, "+callbacks.crash._target_=test_resume.Crash", "+callbacks.crash.epoch=1"]
            )
        )
    checkpoint = load_checkpoint(killed / "checkpoints" / "last.ckpt")
    assert 0 < checkpoint["global_step"] < STEPS
    resumed = train.run(
        compose_config("train", tmp_path / "resumed", [*QUICK, f"ckpt_path={killed / 'checkpoints' / 'last.ckpt'}"])
    )
    assert load_checkpoint(resumed["run_dir"] / "checkpoints" / "last.ckpt")["global_step"] == STEPS
    expected, got = weights(uninterrupted), weights(resumed["run_dir"])
    assert expected.keys() == got.keys() and any(k.startswith("ema.") for k in got)  # the EMA weights too
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-5, atol=1e-6, msg=name)


def test_without_the_random_state_the_resumed_run_would_differ(tmp_path, uninterrupted):
    """The check above can fail: resuming without restoring the generators ends elsewhere."""
    killed = tmp_path / "killed"
    no_rng = ["~callbacks.rng_state"]
    with pytest.raises((KeyboardInterrupt, SystemExit)):
        train.run(
            compose_config(
                "train",
                killed,
                [*QUICK, *no_rng, "+callbacks.crash._target_=test_resume.Crash", "+callbacks.crash.epoch=1"],
            )
        )
    resumed = train.run(
        compose_config(
            "train", tmp_path / "resumed", [*QUICK, *no_rng, f"ckpt_path={killed / 'checkpoints' / 'last.ckpt'}"]
        )
    )
    expected, got = weights(uninterrupted), weights(resumed["run_dir"])
    assert any(
        not torch.allclose(got[k], expected[k], rtol=1e-5, atol=1e-6) for k in expected if k.startswith("network.")
    )


def test_same_config_and_seed_train_to_the_same_weights_bit_for_bit(tmp_path, uninterrupted):
    again = train.run(compose_config("train", tmp_path, QUICK))["run_dir"]
    expected, got = weights(uninterrupted), weights(again)
    assert all(torch.equal(got[name], expected[name]) for name in expected)


def test_compile_option_compiles_in_place_and_checkpoints_keep_their_keys(tmp_path, uninterrupted):
    result = train.run(
        compose_config(
            "train", tmp_path, [*QUICK, "trainer.max_steps=2", "compile.enabled=true", "compile.backend=eager"]
        )
    )
    assert (
        result["module"].network._compiled_call_impl is not None
        and result["module"].ema_network._compiled_call_impl is not None
    )
    assert weights(result["run_dir"]).keys() == weights(uninterrupted).keys()


def test_a_periodic_save_before_the_first_validation_leaves_one_last_checkpoint(tmp_path):
    """last_checkpoint refreshing last.ckpt before ModelCheckpoint first saves must not make it write last-v1.ckpt."""
    overrides = [
        *QUICK,
        "trainer.max_steps=12",
        "trainer.check_val_every_n_epoch=2",
        "callbacks.last_checkpoint.every_minutes=0",
    ]
    result = train.run(compose_config("train", tmp_path / "run", overrides))
    names = sorted(path.name for path in (result["run_dir"] / "checkpoints").glob("*.ckpt"))
    assert [name for name in names if name.startswith("last")] == ["last.ckpt"], names
    assert load_checkpoint(result["run_dir"] / "checkpoints" / "last.ckpt")["global_step"] == 12
