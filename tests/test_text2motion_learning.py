"""A short CPU training on procedural text-motion data: the caption must measurably steer the motion.

The property measured is how far the root travels over the ground. Captions of travelling
actions (walk, run, sidestep, jumps forward...) should give motions that travel further
than captions of in-place actions (clap, squat, wave...). An unconditional model (guidance
weight 0) cannot tell them apart; the conditional one must. The same model makes timelines
(editing.timeline): each segment must do what its prompt says, with transitions no jerkier than
the segments, and an in-between must follow its prompt.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from conftest import THREADS, benchmark_script, compose_config
from motiondiff.diffusion.samplers import DDIMSampler
from motiondiff.editing.timeline import generate_timeline, parse_timeline
from motiondiff.metrics.caption_control import ground_travel, raised_side, travel_gap
from motiondiff.runs import train

# 600 steps at batch 16: 117 s for the fixture on one thread of a 2-core AMD EPYC, against about 206 s at batch 32,
# which is no steadier. Trained with seeds 42, 1 and 2 (2026-12-07), batch 16, every check below held for all three
# (read from the printed values). The in-between did so only with RePaint (the edit's default resample 3): walks
# 4.06 / 2.20 / 2.36 m against claps 0.22 / 0.58 / 0.45 m; plain imposition left seed 1's middle standing (0.82
# against 0.58 m: docs/editing.md), as it did at batch 32 (0.54 against 0.61 m, three in-betweens). These are
# measurements of a few short trainings, not margins for every seed.
NUM_MOTIONS, FRAMES, STEPS = 300, 120, 600
WALK, WAVE = "a person walks forward", "a person waves with the right hand"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("data")
    cfg = compose_config(
        "train",
        tmp_path_factory.mktemp("run"),
        [
            "experiment=text2motion",
            "network=adaln",
            f"paths.data_dir={data_dir}",
            f"dataset.procedural.num_motions={NUM_MOTIONS}",
            f"dataset.max_frames={FRAMES}",
            "dataset.batch_size=16",
            "network.latent_dim=96",
            "network.num_layers=3",
            "network.num_heads=4",
            "network.dropout=0.0",
            f"network.max_frames={FRAMES}",
            "optimizer.lr=1e-3",
            "lr_scheduler.warmup_steps=50",
            f"trainer.max_steps={STEPS}",
            "trainer.check_val_every_n_epoch=1000",
            "module.val_num_samples=0",
            "generate_after_training.num_samples=0",
            "callbacks.checkpoint.save_top_k=0",
        ],
    )
    torch.set_num_threads(THREADS)
    result = train.run(cfg)
    return cfg, result


def test_conditional_model_moves_when_the_caption_says_so(trained):
    cfg, result = trained
    module = result["module"].eval()
    root = Path(module.data.source)
    specs = [json.loads(line) for line in (root / "specs.jsonl").read_text().splitlines()]
    held_out = [s for s in specs if s["split"] != "train"][:60]
    true_travel = np.array([ground_travel(np.load(root / "new_joints" / f"{s['id']}.npy")[:FRAMES]) for s in held_out])
    travels = true_travel > 0.5  # (K,) captions whose motions really travel
    assert 0.2 < travels.mean() < 0.8, "the held-out set must mix travelling and in-place captions"
    lengths = [min(s["length"] - 1, FRAMES) for s in held_out]
    cond = instantiate(cfg.text_encoder).encode([s["captions"][0] for s in held_out]).as_cond()
    mask = torch.arange(FRAMES)[None] < torch.tensor(lengths)[:, None]  # (K, N)

    def gap_at(weight: float) -> float:
        generator = torch.Generator().manual_seed(0)
        sampler = DDIMSampler(num_steps=20, progress=False)
        features = module.sample(
            len(held_out), sampler, generator, FRAMES, cond=cond, mask=mask, guidance_weight=weight
        )
        joints = module.to_keypoints(features)  # (K, N, 22, 3)
        return travel_gap([joints[k, :n] for k, n in enumerate(lengths)], travels)

    conditional, unconditional = gap_at(2.5), gap_at(0.0)
    print(f"travel gap (m): conditional {conditional:.2f}, unconditional {unconditional:.2f}")
    assert conditional > 0.8
    assert conditional > unconditional + 0.5


@pytest.fixture(scope="module")
def timelines(trained):
    """Eight motions of the timeline 'walk 4 s, wave 4 s' (a 20-frame transition at 4 s): joints (8, 160, 22, 3)."""
    cfg, result = trained
    module = result["module"].eval()
    segments = parse_timeline(f"0-4s: {WALK}\n4-8s: {WAVE}", module.data.fps, module.data.min_frames)
    encoder, sampler = instantiate(cfg.text_encoder), DDIMSampler(num_steps=10, progress=False)
    generator = torch.Generator().manual_seed(0)
    features = [generate_timeline(module, sampler, encoder, segments, 20, None, generator)[0] for _ in range(8)]
    return module.to_keypoints(torch.stack(features))


def test_timeline_transitions_are_no_jerkier_than_the_segments(timelines):
    acceleration = timelines[:, 2:] - 2 * timelines[:, 1:-1] + timelines[:, :-2]  # (K, 158, 22, 3): frames 1..158
    jitter = np.linalg.norm(acceleration, axis=-1).mean(-1)  # (K, 158)
    seam = np.zeros(jitter.shape[1], dtype=bool)
    seam[70 - 5 - 1 : 90 + 5 - 1] = True  # the transition (frames 70-89) and 5 frames on each side
    ratio = jitter[:, seam].mean() / jitter[:, ~seam].mean()
    print(f"jitter (m/frame^2): seams {jitter[:, seam].mean():.3f}, segments {jitter[:, ~seam].mean():.3f}")
    # Measured (seed 42): seams 0.230, segments 0.176 (ratio 1.31). The model is jittery itself (its segments'
    # 0.18 m/frame^2 against 0.02 in the training motions): this bounds what the transitions add.
    assert ratio <= 1.5


def test_a_timeline_of_two_actions_shows_both(timelines):
    walks, waves = timelines[:, :70], timelines[:, 90:]  # each segment without the transition frames
    travel = [ground_travel(walk) for walk in walks], [ground_travel(wave) for wave in waves]
    right_wrist = [(part[:, :, 21, 1] - part[:, :, 0, 1]).max(1) for part in (walks, waves)]  # (K,) each, above root
    print(
        f"travel (m): walk {np.round(travel[0], 2)}, wave {np.round(travel[1], 2)}; right wrist above the root (m): "
        f"walk {np.round(right_wrist[0], 2)}, wave {np.round(right_wrist[1], 2)}; "
        f"higher wrist in the wave: {[raised_side(wave) for wave in waves]}"
    )
    # Measured (seed 42): travel walk 6.09 m and wave 0.37 m on average; right wrist above the root at most 0.28 m
    # in the walks and at least 0.82 m in the waves. raised_side gives both sides: this model raises both wrists and
    # has not learned sides (alone, 'waves with the right hand' and '... left hand' both gave 'right' 10 times in 16),
    # so the check is that the right wrist rises, not that it rises highest. Medians and 6 of 8, not every sample:
    # with seed 1 one walk of eight lifted a wrist 0.69 m, and four samples of seed 1 at batch 32 had one wave whose
    # wrist stayed down.
    assert np.mean(travel[0]) > 1.0 and np.mean(travel[0]) > np.mean(travel[1]) + 0.8
    assert (right_wrist[1] > 0.6).mean() >= 0.75 and np.median(right_wrist[1]) > np.median(right_wrist[0]) + 0.4


def test_an_in_between_travels_further_under_a_travelling_prompt(trained):
    """edit=in_between as the edit command plans and samples it (configs/edit/in_between.yaml: the first and last
    20 frames kept, each step taken 3 times) with sampler.num_steps=10, between the ends of a generated clap, under
    'walks' and under 'claps': benchmarks/in_between_resample.py's calls, which measured docs/editing.md's table."""
    cfg, result = trained
    module = result["module"].eval()
    bench = benchmark_script("in_between_resample")
    encoder = instantiate(cfg.text_encoder)
    clap = bench.clap_in_between(module, encoder)  # edit=in_between's config and plan on a 100-frame clap
    walking, clapping = bench.in_between_travel(module, encoder, clap, 10, clap.edit.resample)  # 8 each
    print(f"in-between travel (m): '{bench.WALK}' {walking:.2f}, '{bench.CLAP}' {clapping:.2f}")
    # Measured (seed 42): walks forward 4.06 m, claps 0.22 m; seeds 1 and 2 and resample 1: docs/editing.md.
    assert walking > clapping + 0.5
