"""The course framework end to end: a lab-layout dataset (205 smplrifke features from procedural motions, the
course's statistics files), a run trained on it, and `evaluator=lab_tmr protocol=lab` with files in the course's
layout (random TMR weights, CLIP-sized token features)."""

import json

import numpy as np
import pytest
import torch

from conftest import compose_config
from motiondiff.data.procedural.actions import make_motion, sample_spec
from motiondiff.data.procedural.captions import captions_for
from motiondiff.data.representations import smplrifke
from motiondiff.evaluation import run as evaluate
from motiondiff.networks.actor_encoder import ActorStyleEncoder
from motiondiff.runs import train
from test_smplrifke import with_hands

SPLITS = {"train": 12, "val": 4, "test": 70}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """The dataset folder, its CLIP-sized token features, and the course's checkpoints folder."""
    root, clip, checkpoints = (tmp_path_factory.mktemp(name) for name in ("lab", "clip", "checkpoints"))
    for folder in ("smpl_rifke", "caption_raw"):
        (root / folder).mkdir()
    rng, features, ids = np.random.default_rng(0), [], []
    for index in range(sum(SPLITS.values())):
        motion_id = f"{index:06d}"
        spec = sample_spec(rng)
        feats = smplrifke.joints_to_features(with_hands(make_motion(spec, rng)))  # (T, 205)
        if index == SPLITS["train"] + SPLITS["val"]:  # the first test id: shorter than the run's min_frames=20
            feats = feats[:15]
        np.save(root / "smpl_rifke" / f"{motion_id}.npy", feats.astype(np.float32))
        captions = captions_for(spec, rng, 2)
        (root / "caption_raw" / f"{motion_id}.txt").write_text("\n".join(captions) + "\n")
        tokens = rng.normal(size=(len(captions), 12, 512)).astype(np.float32)
        tokens[:, 8:] = 0.0  # eight tokens each, zero-padded
        np.save(clip / f"{motion_id}.npy", tokens)
        features.append(feats)
        ids.append(motion_id)
    start = 0
    for split, count in SPLITS.items():
        (root / f"humanml3d_{split}_split.txt").write_text("\n".join(ids[start : start + count]) + "\n")
        start += count
    frames = np.concatenate(features[: SPLITS["train"]])
    mean, std = frames.mean(0), np.maximum(frames.std(0), 1e-3)
    mean[7], std[7] = 0.0, 1.0  # the course's constant feature
    for prefix in ("rifke", "tmr-rifke"):
        torch.save(torch.from_numpy(mean.astype(np.float32)), root / f"{prefix}-mean.pt")
        torch.save(torch.from_numpy(std.astype(np.float32)), root / f"{prefix}-std.pt")
        torch.save(torch.from_numpy(mean.astype(np.float32)), checkpoints / f"{prefix}-mean.pt")
        torch.save(torch.from_numpy(std.astype(np.float32)), checkpoints / f"{prefix}-std.pt")
    torch.manual_seed(0)
    torch.save(ActorStyleEncoder(205).state_dict(), checkpoints / "tmr-motion_encoder.pt")
    torch.save(ActorStyleEncoder(512).state_dict(), checkpoints / "tmr-text_encoder.pt")
    return {"root": root, "clip": clip, "checkpoints": checkpoints}


@pytest.fixture(scope="module")
def lab_run(lab, tmp_path_factory):
    cfg = compose_config(
        "train",
        tmp_path_factory.mktemp("run"),
        [
            "experiment=text2motion",
            "dataset=lab",
            f"dataset.root={lab['root']}",
            "dataset.min_frames=20",
            "dataset.batch_size=8",
            "text_encoder=precomputed",
            f"text_encoder.directory={lab['clip']}",
            f"paths.data_dir={tmp_path_factory.mktemp('cache')}",
            "network=adaln",
            "network.latent_dim=32",
            "network.num_layers=1",
            "network.num_heads=2",
            "trainer.max_steps=2",
            "trainer.check_val_every_n_epoch=1000",
            "callbacks.checkpoint.save_top_k=0",
            "generate_after_training.num_samples=0",
        ],
    )
    return train.run(cfg)["run_dir"]


def test_the_course_protocol_runs_with_the_course_files(lab, lab_run, tmp_path):
    overrides = [
        f"run_dir={lab_run}",
        "evaluator=lab_tmr",
        f"evaluator.root={lab['checkpoints']}",
        f"evaluator.text_features={lab['clip']}",
        "protocol=lab",
        "num_items=70",  # a batch of 64 and a partial one of 6, which the course's test loader keeps
        "replications=2",
        "sampler=ddim",
        "sampler.num_steps=2",
    ]
    evaluate.run(compose_config("evaluate", tmp_path / "e", overrides))
    saved = json.loads((tmp_path / "e" / "metrics.json").read_text())
    generated, real = saved["results"]["generated"], saved["results"]["real"]
    assert list(generated) == ["FD", "TMR-score", "precision", "recall", "density", "coverage", "R@1", "R@2", "R@3"]
    assert real["FD"]["mean"] == pytest.approx(0.0, abs=1e-6)  # real motions against themselves
    assert real["precision"]["mean"] == real["coverage"]["mean"] == 1.0
    assert generated["FD"]["mean"] > 0 and 0.0 <= generated["TMR-score"]["mean"] <= 1.0
    assert saved["settings"]["protocol"] == "lab" and saved["settings"]["test_items"] == 70  # the short one too
    assert saved["settings"]["evaluator_name"] == "lab_tmr"
    # its caption features by name and folder (an object's address before), so evaluations compare alike
    assert saved["settings"]["evaluator_text"] == f"precomputed-{lab['clip'].name}-512 from {lab['clip']}"
