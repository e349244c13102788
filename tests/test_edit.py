"""Editing: masks over frames x features in the samplers, RePaint resampling, the edit modes on tiny trained runs,
the refusals, and `python -m motiondiff.edit` end to end."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from conftest import TINY_NETWORK, benchmark_script, compose_config, shared_path
from motiondiff.cli.app import CONFIG_DIR
from motiondiff.cli.preflight import preflight
from motiondiff.core.errors import UserError
from motiondiff.data.formats.bvh import load_bvh_hierarchy
from motiondiff.data.kinematics.skeleton import SMPL22_NAMES, SMPL22_PARENTS
from motiondiff.data.procedural.dance import make_procedural_dance
from motiondiff.data.procedural.text_motion import dataset_name, write_procedural_dataset
from motiondiff.diffusion.chaining import chain_windows
from motiondiff.diffusion.denoiser import Denoiser
from motiondiff.diffusion.samplers import DDIMSampler, DDPMSampler, DPMSolverSampler, KarrasSampler
from motiondiff.diffusion.schedule import LinearSchedule
from motiondiff.editing import run as edit_run
from motiondiff.editing.masks import GROUPS, body_part, select_joints
from motiondiff.editing.modes import plan_edit
from motiondiff.editing.run import null_condition, sample_edits
from motiondiff.editing.sources import load_source
from motiondiff.export.run import read_motions
from motiondiff.report.folders import player_groups
from motiondiff.runs import train
from motiondiff.runs.loading import load_trained_run
from test_convert_bvh import Y_UP_TO_Z_UP, write_turned
from test_diffusion import GAUSSIAN_MEAN, GAUSSIAN_STD, GaussianOracle

NUM_MOTIONS = 40
# 20 diffusion steps (DDPM samples in 20 network calls), one training step, nothing generated after training.
STEPS = [
    "schedule.num_steps=20",
    "val_sampler.num_steps=5",
    "+trainer.fast_dev_run=true",
    "generate_after_training.num_samples=0",
]
MODES = ("in_between", "prefix", "suffix", "body_part", "path")
SAMPLERS = {
    "ddpm": DDPMSampler(progress=False),
    "ddpm_resample2": DDPMSampler(progress=False, resample=2),
    "ddim": DDIMSampler(num_steps=5, progress=False),
    "ddim_resample2": DDIMSampler(num_steps=5, progress=False, resample=2),
    "dpmsolver": DPMSolverSampler(5, progress=False),
    "dpmsolver_sde_resample2": DPMSolverSampler(5, sde=True, progress=False, resample=2),
    "karras_heun": KarrasSampler(5, progress=False),
    "karras_euler": KarrasSampler(5, method="euler", progress=False),
}


# ---- the samplers: masks over frames x features, RePaint ----------------------------------------------------------


@pytest.mark.parametrize("sampler", SAMPLERS.values(), ids=SAMPLERS.keys())
def test_a_mask_over_frames_and_features_keeps_exactly_those_values(sampler):
    schedule = LinearSchedule(num_steps=50)
    denoiser = Denoiser(GaussianOracle(schedule, GAUSSIAN_MEAN, GAUSSIAN_STD), schedule, "epsilon")
    known = torch.full((3, 6, 4), 7.0)
    keep = torch.zeros(3, 6, 4, dtype=torch.bool)
    keep[:, :2] = True  # two whole frames
    keep[:, :, 1] = True  # and one feature on every frame
    out = sampler.sample(denoiser, schedule, torch.randn(3, 6, 4), known=known, known_mask=keep)
    assert torch.equal(out[keep], known[keep])
    assert (out[~keep] - 7.0).abs().min() > 0


@pytest.mark.parametrize("sampler", SAMPLERS.values(), ids=SAMPLERS.keys())
def test_every_network_call_sees_the_known_values_noised_to_its_step(sampler):
    """The known values each call after the first (which sees the starting noise, as RePaint's and MDM's do) sees,
    standardised against them noised to the call's step, are N(0, 1): Heun's corrector calls included (they saw
    their own Euler guess there, standardised mean up to 214 here, before)."""
    schedule = LinearSchedule()
    oracle = GaussianOracle(schedule, GAUSSIAN_MEAN, GAUSSIAN_STD)
    seen = []

    def recording(x_t, t, cond=None, mask=None):
        abar = schedule.alphas_cumprod[t].view(-1, 1, 1).double()  # (B, 1, 1)
        seen.append(((x_t[:, :2].double() - abar.sqrt() * 7.0) / (1 - abar).sqrt()).flatten())  # the known frames
        return oracle(x_t, t)

    known, keep = torch.full((256, 6, 4), 7.0), torch.zeros(256, 6, dtype=torch.bool)
    keep[:, :2] = True
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(256, 6, 4, generator=generator)
    sampler.sample(Denoiser(recording, schedule, "epsilon"), schedule, noise, generator, known, keep)
    means = torch.stack([z.mean() for z in seen[1:]])
    variances = torch.stack([z.var() for z in seen[1:]])
    assert means.abs().max() < 0.1 and (variances - 1).abs().max() < 0.2, (means.abs().max(), variances)


def test_resampling_is_off_by_default_and_only_acts_on_known_values():
    schedule = LinearSchedule(num_steps=30)
    denoiser = Denoiser(GaussianOracle(schedule, GAUSSIAN_MEAN, GAUSSIAN_STD), schedule, "epsilon")
    noise = torch.randn(2, 5, 4)

    def run(sampler, **known):
        return sampler.sample(denoiser, schedule, noise.clone(), torch.Generator().manual_seed(0), **known)

    assert DDPMSampler().resample == 1 and DDPMSampler().describe()["resample"] == 1
    assert torch.equal(run(DDPMSampler(progress=False)), run(DDPMSampler(progress=False, resample=3)))
    known = {"known": torch.zeros(2, 5, 4), "known_mask": torch.tensor([[True, False, False, False, True]] * 2)}
    assert not torch.equal(
        run(DDPMSampler(progress=False), **known), run(DDPMSampler(progress=False).with_resample(3), **known)
    )
    with pytest.raises(UserError, match="resample=0"):
        DDIMSampler(resample=0)


def test_renoising_coefficients_are_the_forward_process_between_the_two_steps():
    schedule = LinearSchedule()
    betas = schedule.exact_betas  # float64, as the schedule was given them
    assert betas.dtype == torch.float64 and float(betas[500]) == pytest.approx(
        1e-4 + (0.02 - 1e-4) * 500 / 999, rel=1e-15
    )
    (scale, std), (last_scale, last_std) = DDPMSampler().renoise_table(schedule, [(500, 499), (0, -1)])
    assert std**2 == pytest.approx(float(betas[500]), rel=1e-12) and scale**2 == pytest.approx(1 - float(betas[500]))
    assert last_std**2 == pytest.approx(float(betas[0]), rel=1e-12)  # the last step re-noises x0 to step 0
    (ddim_scale, ddim_std), *_ = DDIMSampler(10).renoise_table(schedule, [(999, 888)])
    ratio = float(torch.prod(1 - betas[889:1000]))
    assert ddim_scale**2 == pytest.approx(ratio, rel=1e-9) and ddim_std**2 == pytest.approx(1 - ratio, rel=1e-9)


class SmoothGaussianOracle(torch.nn.Module):
    """The exact x0 predictor for sequences x0 ~ N(0, cov) (one feature): cov sqrt(a) (a cov + (1 - a) I)^-1 x_t."""

    def __init__(self, schedule, cov):
        super().__init__()
        self.schedule, (self.eigenvalues, self.basis) = schedule, torch.linalg.eigh(cov)

    def forward(self, x_t, t, cond=None, mask=None):
        abar = self.schedule.alphas_cumprod.double()[t].view(-1, 1)  # (B, 1)
        gain = abar.sqrt() * self.eigenvalues / (abar * self.eigenvalues + 1 - abar)  # (B, N)
        return ((x_t[..., 0].double() @ self.basis * gain) @ self.basis.T).float()[..., None]  # (B, N, 1)


def inpainting_error(resample: int, batch: int = 2000) -> float:
    """Mean |generated - exact conditional mean|^2 over the exact conditional variance (1 = an exact sampler), for
    smooth Gaussian sequences (32 frames, squared-exponential covariance, length 4) with the first and last 8 kept."""
    frames = torch.arange(32, dtype=torch.float64)
    cov = torch.exp(-((frames[:, None] - frames) ** 2) / 32) + 1e-3 * torch.eye(32, dtype=torch.float64)
    kept = torch.cat([torch.arange(8), torch.arange(24, 32)])
    free = torch.arange(8, 24)
    generator = torch.Generator().manual_seed(0)
    truth = torch.randn(batch, 32, generator=generator, dtype=torch.float64) @ torch.linalg.cholesky(cov).T
    keep = torch.zeros(batch, 32, dtype=torch.bool)
    keep[:, kept] = True
    schedule = LinearSchedule()
    denoiser = Denoiser(SmoothGaussianOracle(schedule, cov), schedule, "x0")
    sampler = DDIMSampler(num_steps=50, eta=1.0, progress=False, resample=resample)
    noise = torch.randn(batch, 32, 1, generator=generator)
    out = sampler.sample(denoiser, schedule, noise, generator, truth.float()[..., None], keep)[..., 0].double()
    gain = cov[free][:, kept] @ torch.linalg.inv(cov[kept][:, kept])  # (16, 16)
    mean = truth[:, kept] @ gain.T  # (B, 16): the exact conditional mean of the free frames
    variance = torch.trace(cov[free][:, free] - gain @ cov[kept][:, free])
    return float(((out[:, free] - mean) ** 2).sum(1).mean() / variance)


def test_repaint_resampling_brings_the_generated_part_closer_to_the_exact_conditional():
    # Measured (2000 sequences, DDIM 50 steps eta=1; 1.00 = an exact conditional sampler): plain imposition 2.54,
    # resample=2 2.26, 5 1.94, 10 1.71 (20: 1.47, 50: 1.26). The jump from the last kept to the first generated frame
    # falls from 2.61 x its exact size to 0.88 x with resample=5. docs/editing.md has DDIM eta=0 and DDPM too.
    plain, resampled = inpainting_error(1), inpainting_error(5)
    assert 2.4 < plain < 2.7 and 1.8 < resampled < 2.1, (plain, resampled)


def test_chained_windows_are_windows_over_the_whole_sequence():
    calls = []

    def sample(known, known_mask):
        calls.append(known_mask.clone())
        return torch.where(known_mask.unsqueeze(-1), known, torch.full_like(known, float(len(calls))))

    first = torch.zeros(2, 8, 3)
    long = chain_windows(sample, first, num_windows=3, overlap=2)
    assert long.shape == (2, 8 + 2 * 6, 3) and len(calls) == 2
    assert calls[0][:, :2].all() and not calls[0][:, 2:].any()
    assert torch.equal(long[:, 8:14], torch.ones(2, 6, 3)) and torch.equal(long[:, 14:], torch.full((2, 6, 3), 2.0))


def test_chained_windows_crossfade_over_the_blend_frames():
    calls = []

    def sample(known, known_mask):
        calls.append(known_mask.clone())
        return torch.where(known_mask.unsqueeze(-1), known, torch.full_like(known, 1.0))

    long = chain_windows(sample, torch.zeros(1, 8, 1), num_windows=2, overlap=4, blend=3)
    assert calls[0][0].tolist() == [True] + [False] * 7  # only overlap - blend frames are kept
    # frames 5-7: the old window fades out (weights 3/4, 2/4, 1/4) into the new one, then the new frames follow.
    assert long[0, :, 0].tolist() == [0, 0, 0, 0, 0, 0.25, 0.5, 0.75, 1, 1, 1, 1]


# ---- masks -----------------------------------------------------------------------------------------------------


def test_joint_groups_come_from_the_joint_names():
    names = {group: {SMPL22_NAMES[j] for j in select_joints(group, SMPL22_NAMES, SMPL22_PARENTS)} for group in GROUPS}
    assert names["left_arm"] == {"left_collar", "left_shoulder", "left_elbow", "left_wrist"}
    assert names["legs"] == {f"{s}_{j}" for s in ("left", "right") for j in ("hip", "knee", "ankle", "foot")}
    assert names["lower_body"] == names["legs"] | {"pelvis"} and names["head"] == {"neck", "head"}
    assert names["upper_body"] == set(SMPL22_NAMES) - names["lower_body"]
    assert names["torso"] == {"pelvis", "spine1", "spine2", "spine3"}
    mixamo = ("Hips", "LeftUpLeg", "LeftLeg", "Spine", "LeftShoulder", "LeftArm", "LeftHand", "Neck", "Head")
    parents = (-1, 0, 1, 0, 3, 4, 5, 3, 7)
    assert [mixamo[j] for j in select_joints("left_arm", mixamo, parents)] == ["LeftShoulder", "LeftArm", "LeftHand"]
    assert select_joints(["left_knee", "head"], SMPL22_NAMES, SMPL22_PARENTS) == (4, 15)


def test_every_joint_of_a_cmu_skeleton_falls_in_a_part():
    """CMU's own names (a dance run with joint_map=none keeps them): LHipJoint, LowerBack, RThumb too."""
    names = load_bvh_hierarchy(shared_path("bvh", "normal.bvh")).skeleton.names
    parts = {name: body_part(name) for name in names[1:]}  # the root is "root" by its parent
    assert None not in parts.values(), parts
    assert parts["LHipJoint"] == parts["LeftUpLeg"] == "left_leg" and parts["RHipJoint"] == "right_leg"
    assert parts["LThumb"] == parts["LeftHand"] == "left_arm" and parts["RThumb"] == "right_arm"
    assert parts["LowerBack"] == parts["Spine1"] == "torso" and parts["Neck1"] == parts["Head"] == "head"
    others = {"LEye": "head", "left_eye": "head", "ROOT": "torso", "Backpack": None, "RFoot": "right_leg"}
    assert {name: body_part(name) for name in others} == others


@pytest.mark.parametrize(
    "selection, message",
    [("arm", "did you mean arms"), (["left_knee", "tail"], "'tail'"), ([], "is empty")],
)
def test_unknown_joints_or_groups_are_one_sentence(selection, message):
    with pytest.raises(UserError, match=message):
        select_joints(selection, SMPL22_NAMES, SMPL22_PARENTS)


def test_a_group_matching_none_of_the_joints_says_to_name_them():
    with pytest.raises(UserError, match="matches none of the run's joints"):
        select_joints("arms", ("joint0", "joint1"), (-1, 0))


# ---- tiny trained runs and their sources -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def text_run(tmp_path_factory, procedural_data_dir) -> dict:
    data = procedural_data_dir
    write_procedural_dataset(data / dataset_name(NUM_MOTIONS, 0), num_motions=NUM_MOTIONS, seed=0)
    tiny = ["network.latent_dim=32", "network.num_layers=1", "network.num_heads=4", "dataset.batch_size=8"]
    overrides = ["experiment=text2motion", f"paths.data_dir={data}", f"dataset.procedural.num_motions={NUM_MOTIONS}"]
    run = train.run(
        compose_config("train", tmp_path_factory.mktemp("text"), [*overrides, *tiny, *STEPS, "sampler.num_steps=5"])
    )
    motions = [np.load(path) for path in sorted((data / dataset_name(NUM_MOTIONS, 0) / "new_joint_vecs").glob("*.npy"))]
    source = tmp_path_factory.mktemp("source") / "source.npy"
    np.save(source, next(motion for motion in motions if len(motion) >= 60)[:60])  # (60, 263)
    return {"run_dir": run["run_dir"], "source": source, "data": data}


@pytest.fixture(scope="module")
def dance_run(tmp_path_factory) -> dict:
    run_dir = tmp_path_factory.mktemp("dance")
    run = train.run(compose_config("train", run_dir, ["experiment=dance2d", *STEPS, *TINY_NETWORK]))
    source = run_dir / "source.npy"
    np.save(source, make_procedural_dance(num_frames=70)[1])  # (70, 20, 2): two windows of 48 frames
    return {"run_dir": run["run_dir"], "source": source}


def loaded(run: dict, tmp_path: Path):
    """The trained run and its source, as the edit command loads them."""
    trained = load_trained_run(compose_config("edit", tmp_path, [f"run_dir={run['run_dir']}", "device=cpu"]))
    return trained, load_source(str(run["source"]), trained.module, trained.config.dataset)


def edit_config(mode: str, **changes):
    return OmegaConf.merge(OmegaConf.load(CONFIG_DIR / "edit" / f"{mode}.yaml"), changes)


# What each mode keeps of the 60-frame text source and of the 70-frame dance source (windows of 48 frames).
EDITS = {
    "in_between": ({"ends": 8}, None),
    "prefix": ({"context": 20}, {"text": 50, "dance": 80}),
    "suffix": ({"context": 20}, {"text": 50, "dance": 80}),
    "body_part": ({"joints": "arms"}, None),
    "path": ({}, None),
}


@pytest.mark.parametrize("sampler", ["ddpm", "ddim_resample2"])  # every sampler: the first test of the file
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", ["text", "dance"])
def test_every_mode_gives_back_the_values_it_keeps(request, tmp_path, kind, mode, sampler):
    trained, source = loaded(request.getfixturevalue(f"{kind}_run"), tmp_path)
    module = trained.module
    changes, lengths = EDITS[mode]
    plan = plan_edit(edit_config(mode, **changes), source.features, module.data, lengths and lengths[kind])
    cond = null_condition(2, module.data.text_dim, module.device) if kind == "text" else None
    out = sample_edits(module, SAMPLERS[sampler], plan, 2, torch.Generator().manual_seed(0), cond)  # (2, N, F)

    def raw(features):
        return module.normalizer.denormalize(features).reshape(features.shape)

    keep = plan.keep.expand(2, -1, -1)
    torch.testing.assert_close(raw(out)[keep], raw(plan.known.expand(2, -1, -1))[keep], atol=1e-5, rtol=1e-5)
    assert out.shape == (2, plan.frames, module.data.features)


def test_a_text_edit_longer_than_the_model_makes_goes_window_by_window(text_run, tmp_path):
    trained, source = loaded(text_run, tmp_path)
    module, longest = trained.module, trained.module.data.max_frames
    plan = plan_edit(edit_config("prefix", context=20), source.features, module.data, longest + 30)
    cond = null_condition(1, module.data.text_dim, module.device)
    out = sample_edits(module, SAMPLERS["ddim"], plan, 1, torch.Generator(), cond, overlap=16)  # 2 windows
    assert out.shape == (1, longest + 30, module.data.features)
    torch.testing.assert_close(out[0, :20], source.features[-20:], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", ["text", "dance"])
def test_body_part_changes_the_group_only_and_path_keeps_the_root(request, tmp_path, kind):
    trained, source = loaded(request.getfixturevalue(f"{kind}_run"), tmp_path)
    module, info = trained.module, trained.module.data
    cond = null_condition(1, info.text_dim, module.device) if kind == "text" else None
    source_positions = module.to_keypoints(source.features[None])[0]  # (T, J, D)
    arms = select_joints("arms", info.joint_names, info.parents)
    others = [j for j in range(info.num_joints) if j not in arms]

    def positions(mode, **changes):
        plan = plan_edit(edit_config(mode, **changes), source.features, info, None)
        return module.to_keypoints(sample_edits(module, SAMPLERS["ddim"], plan, 1, torch.Generator(), cond))[0]

    edited = positions("body_part", joints="arms")
    np.testing.assert_allclose(edited[:, others], source_positions[:, others], atol=1e-4)
    assert np.abs(edited[:, list(arms)] - source_positions[:, list(arms)]).max() > 1e-2
    root = info.parents.index(-1)
    on_path = positions("path")
    np.testing.assert_allclose(on_path[:, root], source_positions[:, root], atol=1e-4)
    assert np.abs(on_path - source_positions).max() > 1e-2


# ---- refusals --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mode, changes, length, message",
    [
        ("in_between", {"ends": 30}, None, "keeps every value of all 60 frames"),
        ("body_part", {"joints": list(SMPL22_NAMES)}, None, "keeps nothing of the source"),
        ("in_between", {"keep": [[0, 20], [50, 80]]}, None, r"range \[50,80\] lies outside the 60 frames"),
        ("prefix", {"context": 20}, 20, "leaving nothing to generate"),
        ("body_part", {"joints": "wings"}, None, "neither a joint group nor one of the run's joints"),
        ("path", {}, 40, "drop length=40"),
    ],
)
def test_impossible_edits_are_one_sentence(text_run, tmp_path, mode, changes, length, message):
    trained, source = loaded(text_run, tmp_path)
    with pytest.raises(UserError, match=message):
        plan_edit(edit_config(mode, **changes), source.features, trained.module.data, length)


def test_sources_in_another_representation_or_skeleton_are_refused(text_run, dance_run, tmp_path):
    text, _ = loaded(text_run, tmp_path / "text")
    dance, _ = loaded(dance_run, tmp_path / "dance")
    kit = tmp_path / "kit.npy"
    np.save(kit, np.zeros((30, 251), dtype=np.float32))
    with pytest.raises(UserError, match=r"holds KIT-ML features \(30, 251\) but the run makes HumanML3D features"):
        load_source(str(kit), text.module, text.config.dataset)
    joints = tmp_path / "joints.npy"
    np.save(joints, np.zeros((30, 22, 3), dtype=np.float32))
    with pytest.raises(UserError, match="holds 3D joints of 22 joints .* but the run makes 2D keypoints of 20 joints"):
        load_source(str(joints), dance.module, dance.config.dataset)
    other = tmp_path / "other"
    other.mkdir()
    np.save(other / "sample_00.npy", np.zeros((30, 22, 3), dtype=np.float32))
    skeleton = {"joint_names": [f"j{i}" for i in range(22)], "parents": list(SMPL22_PARENTS), "fps": 20}
    record = {"samples": [{"prompt": "", "joints": "sample_00.npy"}], "skeleton": skeleton}
    (other / "generation.json").write_text(json.dumps(record))
    with pytest.raises(UserError, match="is on a 22-joint skeleton .* but the run's is 22 joints .pelvis"):
        load_source(str(other), text.module, text.config.dataset)
    with pytest.raises(UserError, match="source_sample=3 is not one of the 1 samples"):
        load_source(str(other), text.module, text.config.dataset, sample=3)


def test_a_z_up_bvh_source_is_read_as_its_y_up_original_and_an_unclear_one_names_the_setting(text_run, tmp_path):
    text, _ = loaded(text_run, tmp_path / "text")
    original = load_source(str(shared_path("bvh", "normal.bvh")), text.module, text.config.dataset)
    turned, lying = tmp_path / "normal.bvh", tmp_path / "lying.bvh"
    write_turned(shared_path("bvh", "normal.bvh"), turned, Y_UP_TO_Z_UP)
    source = load_source(str(turned), text.module, text.config.dataset)
    assert (source.features - original.features).abs().max() < 1e-3  # features of joints equal to 1e-5 m
    write_turned(shared_path("bvh", "normal.bvh"), lying, Y_UP_TO_Z_UP, root_only=True)
    with pytest.raises(UserError, match="vertical axis is unclear; set source_up_axis=y or source_up_axis=z"):
        load_source(str(lying), text.module, text.config.dataset)
    told = load_source(str(lying), text.module, text.config.dataset, up_axis="z")
    assert (told.features - original.features).abs().max() < 1e-3


def test_no_source_or_a_prompt_for_an_unconditional_run_is_refused(dance_run, tmp_path):
    with pytest.raises(UserError, match="say what to edit: source="):
        edit_run.run(compose_config("edit", tmp_path / "out", [f"run_dir={dance_run['run_dir']}"]))
    cfg = compose_config("edit", tmp_path / "out", [f"run_dir={dance_run['run_dir']}", f"source={dance_run['source']}"])
    cfg.prompt = "a person waves"
    with pytest.raises(UserError, match="unconditional model .* drop prompt"):
        edit_run.run(cfg)
    assert not (tmp_path / "out" / "generation.json").exists()


# ---- the command ---------------------------------------------------------------------------------------------


def test_the_edit_command_end_to_end(text_run, dance_run, tmp_path):
    """`python -m motiondiff.edit` on a text run (arms regenerated with a prompt) and a dance run (a longer prefix),
    both at once; then the text edit folder exports as BVH like a generation."""
    common = ["num_samples=2", "sampler=ddim", "sampler.num_steps=3", "device=cpu"]
    commands = {
        "text": [
            f"run_dir={text_run['run_dir']}",
            f"source={text_run['source']}",
            "edit=body_part",
            "edit.joints=arms",
            "prompt=a person waves with both hands",
            "guidance_weight=2",
            f"hydra.run.dir={tmp_path / 'text'}",
        ],
        "dance": [
            f"run_dir={dance_run['run_dir']}",
            f"source={dance_run['source']}",
            "edit=prefix",
            "edit.context=30",
            "length=90",
            "edit.resample=2",
            "render=false",
            f"hydra.run.dir={tmp_path / 'dance'}",
        ],
    }
    processes = {
        kind: subprocess.Popen(
            [sys.executable, "-m", "motiondiff.edit", *line, *common],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for kind, line in commands.items()
    }
    for process in processes.values():
        output = process.communicate(timeout=300)[0]
        assert process.returncode == 0, output
    text = json.loads((tmp_path / "text" / "generation.json").read_text())
    assert text["mode"] == "body_part" and text["prompt"] == "a person waves with both hands"
    assert "left_wrist" not in text["edit"]["kept_joints"] and "pelvis" in text["edit"]["kept_joints"]
    assert text["skeleton"]["joint_names"] == list(SMPL22_NAMES) and text["guidance_weight"] == 2
    assert text["sampler"]["num_steps"] == 3 and text["source"]["form"] == "features"
    assert np.load(tmp_path / "text" / "sample_01.npy").shape == (60, 22, 3)
    assert (tmp_path / "text" / "grid.mp4").is_file() and (tmp_path / "text" / "source.json").is_file()
    assert [motion.name for motion in read_motions(tmp_path / "text")] == ["sample_00", "sample_01"]
    dance = json.loads((tmp_path / "dance" / "generation.json").read_text())
    assert dance["edit"]["kept_frames"] == [[0, 30]] and dance["sampler"]["resample"] == 2
    edited, source = np.load(tmp_path / "dance" / "sample_00.npy"), np.load(tmp_path / "dance" / "source_motion.npy")
    assert edited.shape == (90, 20, 2)
    np.testing.assert_allclose(edited[:30], source[-30:], atol=1e-5)
    (group,), _ = player_groups(tmp_path / "dance", dance)  # index.html's player: the source beside the edits
    assert [motion.label for motion in group.motions][:2] == ["source (real)", "sample 0"]
    assert (
        group.motions[1].prompts[:30] == ("kept from the source",) * 30 and group.motions[1].prompts[30] == "generated"
    )
    assert "motiondiffPlayers" in (tmp_path / "dance" / "index.html").read_text()


def test_the_command_line_is_checked_before_anything_is_written(dance_run, tmp_path):
    with pytest.raises(UserError, match="did you mean edit=in_between"):
        preflight(CONFIG_DIR, "edit", [f"run_dir={dance_run['run_dir']}", "edit=in_betwen", "source=x.npy"])
    with pytest.raises(UserError, match="say what to edit: source="):
        preflight(CONFIG_DIR, "edit", [f"run_dir={dance_run['run_dir']}"])
    with pytest.raises(UserError, match="no such file or folder: source=missing.bvh"):
        preflight(CONFIG_DIR, "edit", [f"run_dir={dance_run['run_dir']}", "source=missing.bvh"])


def test_the_resample_benchmark_gives_a_row_per_setting_and_a_column_per_run(text_run, capsys):
    """benchmarks/in_between_resample.py (docs/editing.md's table) on the tiny text run (20 diffusion steps), two
    in-betweens a prompt; a malformed setting is refused before any run is loaded."""
    bench = benchmark_script("in_between_resample")
    table = bench.main([str(text_run["run_dir"]), "--samples", "2", "--settings", "4x1,4x3,8x1"]).splitlines()
    assert table[0].endswith(f"| {Path(text_run['run_dir']).name} |") and len(table) == 2 + 3
    for row, (steps, resample) in zip(table[2:], [(4, 1), (4, 3), (8, 1)]):
        cell = re.fullmatch(rf"\| {steps}, {resample} \({steps * resample}\) \| (\d+\.\d\d) / (\d+\.\d\d) m \|", row)
        assert cell, row  # two travels in metres (nan would not match)
    for bad in ("4", "4x0", "4x1x2", "4x"):
        with pytest.raises(SystemExit):
            bench.main(["/no/such/run", "--settings", f"4x1,{bad}"])
        assert f"'{bad}' is not STEPSxRESAMPLE" in capsys.readouterr().err
