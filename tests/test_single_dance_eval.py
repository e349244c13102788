"""The single-dance protocol: chained clips of duration_factor x the training span, measured clip by clip."""

import math
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf

from conftest import compose_config, shared_path
from motiondiff.core.errors import UserError
from motiondiff.data.dance3d import Dance3DDataModule
from motiondiff.data.dance_windows import DanceDataModule
from motiondiff.diffusion.samplers import Sampler  # the base class: its progress labels, no steps
from motiondiff.evaluation.single_dance import chained_windows, evaluate_dance
from motiondiff.metrics.ganimator import PUBLISHED_KEYS
from motiondiff.metrics.single_motion import REPORT_KEYS

DATASET = {"_target_": "motiondiff.data.dance_windows.DanceDataModule", "window": 48}  # the procedural dance


class NoiseModule:
    """A stand-in model: windows of noise that keep the known frames; it records the windows asked for."""

    schedule = SimpleNamespace(num_steps=1000)

    def __init__(self, info):
        self.data, self.device, self.calls, self.starts = info, "cpu", [], []  # starts: strengths asked

    def sample(self, count, sampler, generator, frames=None, known=None, known_mask=None, overlap=None, **guide):
        self.calls.append(count if overlap is None else (count, frames, overlap))  # joint chains: their length
        noise = torch.randn(count, frames or self.data.window, self.data.features, generator=generator)  # (K, N, F)
        if guide:  # a window started from its collage: this stand-in reconstructs the collage exactly
            self.starts.append(guide["strength"])
            noise = guide["source"]
        return noise if known is None else torch.where(known_mask[..., None], known, noise)

    def sdedit_start(self, sampler, strength):
        return round(strength * 999)


@pytest.fixture(scope="module")
def info():
    data = DanceDataModule(**{k: v for k, v in DATASET.items() if k != "_target_"})
    data.setup("fit")
    return data.info


def evaluate(info, module=None, dataset=DATASET, **settings):
    """evaluate_dance of the noise model with the given settings (defaults: 2 clips, 0.5 x the span, 1 replication)
    on `dataset` (a datamodule config; the procedural dance by default)."""
    cfg = OmegaConf.create(
        {"clips": 2, "duration_factor": 0.5, "chain_overlap": 16, "chain_blend": 8, "replications": 1, "seed": 0}
        | settings
    )
    module = NoiseModule(info) if module is None else module
    run = SimpleNamespace(module=module, sampler=Sampler(progress=False), config=OmegaConf.create({"dataset": dataset}))
    rows, details = evaluate_dance(run, cfg)
    return rows, details, run.module.calls


def test_clips_last_duration_factor_times_the_training_span(info):
    rows, settings, calls = evaluate(info, duration_factor=0.5, chain_overlap=16, chain_sampling="sequential")
    assert settings["training_frames"] == 765 and settings["generated_frames"] == round(0.5 * 765) == 382
    assert settings["chained_windows"] == chained_windows(382, 48, 16) == 12  # 48 + 11 x 32 = 400 >= 382 frames
    assert calls == [2] * 12  # one batch of the 2 clips per chained window
    assert settings["chain_sampling"] == "sequential"
    assert settings["duration_factor"] == 0.5 and settings["clips"] == 2
    assert settings["chain_overlap"] == 16 and settings["chain_blend"] == 8
    assert settings["coverage_threshold"] == 0.1 and settings["copy_fraction"] == 0.5
    assert list(rows["generated"][0]) == list(REPORT_KEYS)
    assert rows["generated"][0]["coverage"] == 0.0 and rows["generated"][0]["copy_ratio"] > 1  # noise
    assert math.isnan(rows["generated"][0]["foot_skating_ratio"])  # 2D
    joint, settings, calls = evaluate(info, duration_factor=0.5, chain_overlap=16)  # the default
    assert calls == [(2, 400, 16)] and settings["chain_sampling"] == "joint"  # the 2 clips' 12 windows at once
    assert settings["chain_blend"] is None  # no crossfade: the windows are blended at every step


def test_the_validation_row_is_the_held_out_span_as_one_clip(info):
    rows, settings, _ = evaluate(info, replications=2)
    validation = rows["validation"]
    assert len(validation) == 2 and validation[0] == validation[1]  # the same real motion in every replication
    assert validation[0]["copy_ratio"] == 1.0 and validation[0]["copies_training"] == 0.0
    assert settings["heldout_frames"] == 135 and math.isnan(validation[0]["inter_diversity"])  # one clip


def test_the_config_defaults_follow_ganimator(tmp_path):
    cfg = compose_config("evaluate", tmp_path, ["run_dir=somewhere"])
    assert (cfg.clips, cfg.duration_factor, cfg.chain_overlap, cfg.chain_blend) == (4, 2.0, 16, 8)  # as generation
    assert cfg.chain_sampling == compose_config("generate", tmp_path, []).chain_sampling == "joint"


@pytest.mark.parametrize(
    "settings, match",
    [
        ({"clips": 1}, "clips"),
        ({"duration_factor": 0}, "duration_factor"),
        ({"chain_overlap": 48}, "chain_overlap"),
        ({"chain_blend": 16, "chain_sampling": "sequential"}, "chain_blend"),
        ({"chain_sampling": "parallel"}, "chain_sampling"),
    ],
)
def test_unusable_settings_are_refused(info, settings, match):
    with pytest.raises(UserError, match=match):
        evaluate(info, **settings)


def test_the_crossfade_is_checked_only_where_it_is_used(info):
    _, settings, _ = evaluate(info, chain_overlap=4, chain_blend=8)  # joint: no crossfade
    assert settings["chain_blend"] is None
    with pytest.raises(UserError, match="chain_blend"):
        evaluate(info, chain_overlap=4, chain_blend=8, chain_sampling="sequential")


def test_with_a_collage_every_window_starts_from_the_clip_s_own_collage(info):
    """A model that rebuilds what it starts from exactly turns each clip into its collage of the training span:
    pieces of every part of the dance (coverage near 1), shuffled differently per clip; the settings record it."""
    module = NoiseModule(info)
    rows, settings, calls = evaluate(
        info, module, collage_strength=0.3, duration_factor=2.0, chain_sampling="sequential"
    )
    assert settings["collage"] == {"strength": 0.3, "start": 300, "piece": 48}
    assert module.starts == [0.3] * len(calls) and len(calls) == settings["chained_windows"]
    generated = rows["generated"][0]
    assert generated["coverage"] > 0.9 and generated["copies_training"] == 0  # cut into 48-frame pieces: no copy
    assert generated["inter_diversity"] > 0.1  # the two clips' collages differ
    module = NoiseModule(info)
    joint, settings, calls = evaluate(info, module, collage_strength=0.3, duration_factor=2.0)  # all windows at once
    assert module.starts == [0.3] and len(calls) == 1 and joint["generated"][0]["coverage"] > 0.9
    free, settings, _ = evaluate(info, duration_factor=2.0)
    assert settings["collage"] is None and free["generated"][0]["coverage"] == 0.0  # noise


def test_a_collage_piece_longer_than_the_training_span_is_refused(info):
    with pytest.raises(UserError, match="collage_piece"):
        evaluate(info, collage_strength=0.3, collage_piece=10_000)


def test_a_3d_dance_is_measured_in_ganimator_s_units_too():
    """3D rows add GANimator's rotation measures (metrics.ganimator); a collage of the dance covers it in those units
    too and rebuilds from its pieces at a fraction of what noise costs."""
    source = str(shared_path("bvh", "Crab-dance-long.bvh"))
    data = Dance3DDataModule(source)
    data.setup("fit")
    dataset = {"_target_": "motiondiff.data.dance3d.Dance3DDataModule", "source": source}
    collage, _, _ = evaluate(data.info, dataset=dataset, collage_strength=0.3, duration_factor=2.0)
    noise, _, _ = evaluate(data.info, dataset=dataset, duration_factor=2.0)
    for rows in (collage, noise):
        assert list(rows["generated"][0]) == list(rows["validation"][0]) == [*REPORT_KEYS, *PUBLISHED_KEYS]
    pieces, random = collage["generated"][0], noise["generated"][0]
    assert pieces["ganimator_coverage"] > 0.9 and random["ganimator_coverage"] == 0.0
    assert pieces["ganimator_global_diversity"] < 0.2 * random["ganimator_global_diversity"]
    assert 0 < collage["validation"][0]["ganimator_local_diversity"] < random["ganimator_local_diversity"]


def test_a_2d_dance_from_a_bvh_file_is_scored_at_ganimator_s_strictness_too(info):
    """A 2D dance read from a BVH file adds ganimator_coverage: its coverage at the RMS threshold as strict as 2.0 on
    the same frames' rotations (metrics.ganimator.matched_threshold), which the settings state; other 2D dances have
    no rotations to match and leave it out."""
    source = str(shared_path("bvh", "Gangnam-Style.bvh"))
    dataset = {"_target_": "motiondiff.data.dance_windows.DanceDataModule", "source": source, "window": 48}
    data = DanceDataModule(source=source, window=48)
    data.setup("fit")
    collage, settings, _ = evaluate(data.info, dataset=dataset, collage_strength=0.3, duration_factor=2.0)
    noise, _, _ = evaluate(data.info, dataset=dataset, duration_factor=2.0)
    matched = settings["ganimator_threshold"]
    assert matched["window"] == 30 and 0.1 < matched["rms"] < 0.3 and 0 < matched["kappa"] <= 1  # looser than 0.1
    for rows in (collage, noise):
        assert list(rows["generated"][0]) == list(rows["validation"][0]) == [*REPORT_KEYS, "ganimator_coverage"]
    pieces, random = collage["generated"][0], noise["generated"][0]
    assert pieces["ganimator_coverage"] >= pieces["coverage"] > 0.9 and random["ganimator_coverage"] == 0.0
    procedural, settings, _ = evaluate(info)
    assert "ganimator_threshold" not in settings and list(procedural["generated"][0]) == list(REPORT_KEYS)
    short_windows = DanceDataModule(source=source, window=24)
    short_windows.setup("fit")
    short, settings, _ = evaluate(  # clips of one 24-frame window: under 1 s
        short_windows.info, dataset=dataset | {"window": 24}, duration_factor=0.05, chain_overlap=8
    )
    assert settings["generated_frames"] == 24 and math.isnan(short["generated"][0]["ganimator_coverage"])
    assert short["validation"][0]["ganimator_coverage"] == collage["validation"][0]["ganimator_coverage"]  # 56 frames
