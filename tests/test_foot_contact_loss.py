"""MDM's foot contact term for the 3D dance (`module.foot_contact_weight`): the predicted feet's step where the real
feet are planted, through forward kinematics, and the refusals where it cannot apply."""

import csv
import logging
from dataclasses import replace
from unittest import TestCase

import numpy as np
import pytest
import torch

from conftest import TINY_NETWORK, compose_config, shared_path
from motiondiff.core.errors import UserError
from motiondiff.data.dance3d import Dance3DDataModule
from motiondiff.data.kinematics.skeleton import with_ancestors
from motiondiff.diffusion.loss import DiffusionLoss
from motiondiff.networks.punet import PUNet
from motiondiff.runs import train
from motiondiff.runs.train import foot_contact_lines
from motiondiff.training.build import module_options
from motiondiff.training.diffusion_module import FOOT_CONTACT_AUTO, MotionDiffusion
from test_context import WALKER


@pytest.fixture(scope="module")
def walk():
    datamodule = Dance3DDataModule(str(shared_path("bvh", "Walk-In-Circle.bvh")))
    datamodule.setup()
    return datamodule


def module_for(info, tmp_path, overrides=()) -> MotionDiffusion:
    cfg = compose_config("train", tmp_path, ["experiment=dance3d", *overrides])
    network = PUNet(features=info.features, base_channels=8, channel_mults=(1,), num_res_blocks=1, attention=False)
    return MotionDiffusion.from_config(cfg, network, info, module_options(cfg))


def test_contacts_read_numpy_and_torch_positions_alike(walk):
    info = walk.info
    positions = info.to_positions(torch.from_numpy(walk.raw[:200]))  # (T, K, 3) metres
    contacts = info.contacts
    numpy_contacts = contacts.in_contact(positions.numpy())  # (T - 1, feet)
    assert np.array_equal(contacts.in_contact(positions).numpy(), numpy_contacts) and numpy_contacts.mean() > 0.2
    torch.testing.assert_close(
        contacts.horizontal_speed(positions).double(),
        torch.from_numpy(contacts.horizontal_speed(positions.numpy())).double(),
    )
    batched = contacts.in_contact(positions.reshape(4, 50, *positions.shape[1:]))  # (4, 49, feet): per window
    assert torch.equal(batched[0], contacts.in_contact(positions[:50]))


def test_the_term_counts_sliding_planted_feet_and_trains_the_network(walk, tmp_path):
    module = module_for(walk.info, tmp_path, ["module.foot_contact_weight=2.0"])
    module.normalizer.load_state_dict(walk.normalizer.state_dict())  # as training does
    x0 = torch.stack([walk.train_set[i]["motion"] for i in range(4)])  # (B, N, F) normalised windows
    own = module.foot_contact_term(x0, x0)  # the data's own planted feet move less than the contact limit
    assert 0 < float(own) < 1.0
    raw = module.normalizer.denormalize(x0).clone()
    raw[..., 1] += 0.05 / walk.info.metres_per_unit  # the root drifts 5 cm a frame forward: every planted foot slides
    sliding = module.normalizer.normalize(raw)
    assert float(module.foot_contact_term(sliding, x0)) > 10 * float(own)
    loss = DiffusionLoss("x0")
    out = loss(module.network, module.schedule, x0, extra=module.foot_contact_term)  # (training: weighted, logged)
    plain = loss(module.network, module.schedule, x0, t=torch.zeros(4, dtype=torch.long), noise=torch.zeros_like(x0))
    out.backward()
    assert float(out) > 0 and float(plain) >= 0
    assert any(float(p.grad.abs().sum()) > 0 for p in module.network.parameters() if p.grad is not None)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["module.foot_contact_weight=-1"], "0 \\(off\\), positive, or auto"),
        (["module.foot_contact_weight=true"], "0 \\(off\\), positive, or auto"),
        (["module.foot_contact_weight=1.0", "loss=epsilon", "loss.velocity_weight=0"], "loss.prediction=x0"),
    ],
)
def test_bad_settings_are_refused(walk, tmp_path, overrides, message):
    with pytest.raises(UserError, match=message):
        module_for(walk.info, tmp_path, overrides)


def test_a_2d_dance_has_no_feet_to_plant(tmp_path):
    cfg = compose_config("train", tmp_path, ["experiment=dance2d", "module.foot_contact_weight=1.0"])
    network = PUNet(features=40, base_channels=8, channel_mults=(1,), num_res_blocks=1)
    with pytest.raises(UserError, match="3D dance .* for experiment=distill, a teacher trained on one"):
        MotionDiffusion.from_config(cfg, network, WALKER, module_options(cfg))


def test_auto_weighs_feet_that_roll_and_leaves_rigid_tips_and_other_data_alone(walk, tmp_path):
    assert not walk.info.pins_fit  # human ankles roll through a contact
    assert module_for(walk.info, tmp_path).foot_contact_weight == FOOT_CONTACT_AUTO > 0  # experiment=dance3d: auto
    tips = replace(walk.info, pins_fit=True)  # feet held as rigid tips, as the crab's (foot_ik pins them)
    assert module_for(tips, tmp_path).foot_contact_weight == 0.0
    epsilon = ["loss=epsilon", "loss.velocity_weight=0"]
    assert module_for(walk.info, tmp_path, epsilon).foot_contact_weight == 0.0
    cfg = compose_config("train", tmp_path, ["experiment=dance2d", "module.foot_contact_weight=auto"])
    network = PUNet(features=40, base_channels=8, channel_mults=(1,), num_res_blocks=1)
    assert MotionDiffusion.from_config(cfg, network, WALKER, module_options(cfg)).foot_contact_weight == 0.0


def test_the_training_says_what_auto_chose(walk, tmp_path):
    rolling = module_for(walk.info, tmp_path)
    cfg = compose_config("train", tmp_path, ["experiment=dance3d"])
    assert foot_contact_lines(cfg, rolling) == ["Foot contact term: weight 1 (auto: feet that roll through a contact)"]
    tips = module_for(replace(walk.info, pins_fit=True), tmp_path)
    pinned = "Foot contact term: weight 0 (auto: the feet are rigid tips, pinned by IK instead)"
    assert foot_contact_lines(cfg, tips) == [pinned]
    epsilon = module_for(walk.info, tmp_path, ["loss=epsilon", "loss.velocity_weight=0"])
    assert foot_contact_lines(cfg, epsilon) == ["Foot contact term: weight 0 (auto: the term needs loss.prediction=x0)"]
    two_d = compose_config("train", tmp_path, ["experiment=dance2d", "module.foot_contact_weight=auto"])
    network = PUNet(features=40, base_channels=8, channel_mults=(1,), num_res_blocks=1)
    module = MotionDiffusion.from_config(two_d, network, WALKER, module_options(two_d))
    assert foot_contact_lines(two_d, module) == ["Foot contact term: weight 0 (auto: no 3D feet on the ground)"]
    chosen = compose_config("train", tmp_path, ["experiment=dance3d", "module.foot_contact_weight=10"])
    weighted = module_for(walk.info, tmp_path, ["module.foot_contact_weight=10"])
    assert foot_contact_lines(chosen, weighted) == ["Foot contact term: weight 10"]
    plain = compose_config("train", tmp_path, ["experiment=dance3d", "module.foot_contact_weight=0"])
    assert foot_contact_lines(plain, module_for(walk.info, tmp_path, ["module.foot_contact_weight=0"])) == []


QUICK_LOGGED = [
    "trainer.max_steps=3",
    "trainer.log_every_n_steps=1",
    "trainer.check_val_every_n_epoch=1000",
    "generate_after_training.num_samples=0",
    "logger=[csv]",
]
AUTO_LINE = "Foot contact term: weight 1 (auto: feet that roll through a contact)"


def logged_terms(run_dir) -> list:
    """train/foot_contact at every logged step of a run's metrics.csv."""
    with open(run_dir / "logs" / "metrics.csv") as file:
        return [float(row["train/foot_contact"]) for row in csv.DictReader(file) if row.get("train/foot_contact")]


def train_logging(overrides, output_dir) -> tuple:
    """(result of train.run, the lines motiondiff.runs.train logged): unittest's assertLogs, since caplog is
    function-scoped and the walk's run is shared by the module."""
    with TestCase().assertLogs("motiondiff.runs.train", logging.INFO) as logs:
        result = train.run(compose_config("train", output_dir, overrides))
    return result, "\n".join(logs.output)


@pytest.fixture(scope="module")
def walk_run(tmp_path_factory) -> tuple:
    """(result of train.run, log text) of a 3-step tiny dance3d training on the walk (the term's `auto` default)."""
    walk = shared_path("bvh", "Walk-In-Circle.bvh")
    overrides = ["experiment=dance3d", f"dataset.source={walk}", *QUICK_LOGGED, *TINY_NETWORK]
    return train_logging(overrides, tmp_path_factory.mktemp("walk"))


def test_a_human_3d_dance_trains_with_the_term_auto_chose_and_logs_it(walk_run):
    result, log = walk_run
    assert AUTO_LINE in log
    assert result["module"].foot_contact_weight == FOOT_CONTACT_AUTO
    saved = torch.load(result["checkpoint"], map_location="cpu", weights_only=True)["hyper_parameters"]
    assert saved["foot_contact_weight"] == FOOT_CONTACT_AUTO  # what `auto` chose, kept with the weights
    terms = logged_terms(result["run_dir"])
    assert len(terms) == 3 and all(np.isfinite(terms)) and min(terms) > 0


@pytest.mark.parametrize("setting", [None, "auto"])
def test_a_student_distilled_from_the_dance_takes_the_term_only_when_asked(walk_run, tmp_path, setting):
    """Off by default (the walk's 1-step student froze with it, docs/dance3d.md); `auto` decides as in training and
    the term then trains the student's clean sample."""
    teacher, _ = walk_run
    overrides = ["experiment=distill", f"teacher={teacher['run_dir']}", *QUICK_LOGGED]
    overrides += [f"module.foot_contact_weight={setting}"] if setting else []
    result, log = train_logging(overrides, tmp_path)
    terms = logged_terms(result["run_dir"])
    if setting is None:
        assert result["module"].foot_contact_weight == 0.0 and terms == [] and "Foot contact" not in log
        return
    assert AUTO_LINE in log and result["module"].foot_contact_weight == FOOT_CONTACT_AUTO
    assert len(terms) == 3 and all(np.isfinite(terms)) and min(terms) > 0


def test_the_feet_by_their_chains_alone_are_the_feet_of_the_whole_skeleton(walk):
    info = walk.info
    raw = torch.from_numpy(walk.raw[:96]).reshape(2, 48, -1)  # (B, N, F) denormalised windows
    whole = info.to_positions(raw)[..., list(info.foot_joints), :]  # (B, N, feet, 3)
    torch.testing.assert_close(info.foot_positions(raw), whole, rtol=0, atol=1e-9)
    assert torch.equal(
        info.foot_contacts.in_contact(info.foot_positions(raw)), info.contacts.in_contact(info.to_positions(raw))
    )
    assert len(with_ancestors(info.file_parents, [info.kept[k] for k in info.foot_joints])) == 11  # of 65 file joints


def test_the_term_is_float32_under_bf16_autocast(walk, tmp_path):
    module = module_for(walk.info, tmp_path)
    module.normalizer.load_state_dict(walk.normalizer.state_dict())
    x0 = torch.stack([walk.train_set[i]["motion"] for i in range(8)])  # (B, N, F)
    exact = module.foot_contact_term(x0, x0)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # as bf16-mixed training runs it
        mixed = module.foot_contact_term(x0, x0)
    assert mixed.dtype == torch.float32 and abs(float(mixed) - float(exact)) < 1e-6 * float(exact)
    assert module.foot_contact_term(x0.double(), x0.double()).dtype == torch.float64  # 64-true keeps its precision
