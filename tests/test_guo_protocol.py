"""The published protocol (protocol=guo): its measures with the reference conventions on synthetic embeddings, and
an end-to-end evaluation of a procedural run with a randomly initialised evaluator written in the release layout."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import THREADS, compose_config
from motiondiff.core.errors import UserError
from motiondiff.evaluation import run as evaluate
from motiondiff.metrics.distribution import prdc
from motiondiff.metrics.reference_protocol import (
    clamped_mean_cosine,
    diversity_reference,
    independent_pairs,
    multimodality_reference,
    normal_interval,
    prdc_in_splits,
    r_precision_full_batches,
)
from motiondiff.metrics.retrieval import r_precision
from motiondiff.runs import train
from motiondiff.training.checkpoint_io import load_checkpoint
from release_files import write_t2m_evaluator

# ------------------------------------------------------------ the measures


def test_r_precision_of_a_perfect_matching_is_one_and_mm_dist_covers_full_batches_only():
    rng = np.random.default_rng(0)
    motions = rng.normal(size=(70, 16))
    result = r_precision_full_batches(motions, motions.copy(), batch_size=32)
    assert result["R@1"] == result["R@2"] == result["R@3"] == 1.0 and result["MM-Dist"] == 0.0
    texts = motions.copy()
    texts[64:] += 100.0  # the 6 items of the partial third batch are dropped, so they change nothing
    assert r_precision_full_batches(texts, motions, batch_size=32) == result
    texts[:64] += 2.0  # every text of the two full batches moves by (2, ..., 2): distance 2 * sqrt(16) = 8
    assert r_precision_full_batches(texts, motions, batch_size=32)["MM-Dist"] == pytest.approx(8.0)


def test_r_precision_of_random_embeddings_is_chance():
    rng = np.random.default_rng(1)
    result = r_precision_full_batches(rng.normal(size=(32 * 400, 8)), rng.normal(size=(32 * 400, 8)), batch_size=32)
    for k in (1, 2, 3):
        assert result[f"R@{k}"] == pytest.approx(k / 32, abs=0.012)
    with pytest.raises(UserError, match="one full batch of 32"):
        r_precision_full_batches(np.zeros((31, 4)), np.zeros((31, 4)))


def test_diversity_and_multimodality_draw_as_the_reference():
    rng = np.random.default_rng(2)
    assert diversity_reference(np.ones((400, 5)), 300, rng) == 0.0  # identical samples
    first, second = independent_pairs(300, 300, np.random.default_rng(3))
    assert sorted(first) == sorted(second) == list(range(300)) and (first == second).any()  # self-pairs can occur
    points = np.zeros((2, 30, 1))
    points[:, :, 0] = np.arange(30)
    pairs = independent_pairs(30, 10, np.random.default_rng(4))
    expected = np.abs(pairs[0] - pairs[1]).mean()
    assert multimodality_reference(points, 10, np.random.default_rng(4)) == pytest.approx(expected)
    with pytest.raises(UserError, match="at least 300 items"):
        diversity_reference(np.zeros((299, 2)), 300, rng)


def test_the_interval_is_the_papers_formula():
    values = [0.50, 0.52, 0.47, 0.51]
    assert normal_interval(values) == pytest.approx(1.96 * np.std(values) / math.sqrt(4))
    assert math.isnan(normal_interval([0.5]))


# ------------------------------------------------------------ end to end

NUM_MOTIONS, FRAMES = 800, 120


@pytest.fixture(scope="module")
def text_run(tmp_path_factory, procedural_data_dir):
    torch.set_num_threads(THREADS)
    data_dir = procedural_data_dir
    cfg = compose_config(
        "train",
        tmp_path_factory.mktemp("text"),
        [
            "experiment=text2motion",
            f"paths.data_dir={data_dir}",
            f"dataset.procedural.num_motions={NUM_MOTIONS}",
            f"dataset.max_frames={FRAMES}",
            "dataset.batch_size=32",
            "network.latent_dim=32",
            "network.num_layers=1",
            "network.num_heads=2",
            f"network.max_frames={FRAMES}",
            "trainer.max_steps=2",
            "trainer.check_val_every_n_epoch=1000",
            "callbacks.checkpoint.save_top_k=0",
            "generate_after_training.num_samples=0",
        ],
    )
    return train.run(cfg)["run_dir"]


def guo_config(out, run_dir, evaluator_root, *overrides):
    return compose_config(
        "evaluate",
        out,
        [
            f"run_dir={run_dir}",
            "evaluator=t2m",
            f"evaluator.root={evaluator_root}",
            "protocol=guo",
            "replications=2",
            "num_generated=40",
            "diversity_pairs=30",
            "multimodality.captions=4",
            "multimodality.samples=3",
            "multimodality.pairs=2",
            "sampler=ddim",
            "sampler.num_steps=2",
            "batch_size=64",
            *overrides,
        ],
    )


def test_the_published_protocol_runs_end_to_end_with_the_release_layout(text_run, tmp_path):
    evaluator_root = write_t2m_evaluator(tmp_path / "t2m")
    result = evaluate.run(guo_config(tmp_path / "e", text_run, evaluator_root))
    saved = json.loads((tmp_path / "e" / "metrics.json").read_text())
    real, generated = saved["results"]["real"], saved["results"]["generated"]
    assert list(real) == ["R@1", "R@2", "R@3", "MM-Dist", "FID", "Diversity"]
    assert list(generated) == ["R@1", "R@2", "R@3", "MM-Dist", "FID", "Diversity", "MultiModality"]
    for row in (real, generated):
        assert all(len(entry["values"]) == 2 and np.isfinite(entry["mean"]) for entry in row.values())
        assert all(entry["normal_interval"] is not None for entry in row.values())
        assert 0 <= row["R@1"]["mean"] <= row["R@2"]["mean"] <= row["R@3"]["mean"] <= 1
    # The real row's FID compares two random passes over the same motions; an untrained model's samples are far off.
    assert real["FID"]["mean"] < generated["FID"]["mean"]
    settings = saved["settings"]
    assert settings["protocol"] == "guo" and settings["generated_per_replication"] == 64  # whole batches of 32
    assert settings["evaluator_name"] == "t2m" and settings["evaluator"].endswith("finest.tar")
    assert settings["test_items"] >= 64
    paper = (tmp_path / "e" / "paper_table.md").read_text()
    assert "| Methods | R-Precision Top 1 ↑ | Top 2 ↑ | Top 3 ↑ | FID ↓ | MM Dist ↓ | Diversity → |" in paper
    assert "| Real motion (reference) |" in paper and "±" in paper
    assert paper.split("\n\n")[0] in (tmp_path / "e" / "metrics.md").read_text()
    assert result["table"].startswith("| Methods ") and "| Real motion (reference) |" in result["table"]
    assert "over 2 replications, as the papers report it" in result["table"]


def test_the_published_protocol_is_reproducible_and_refuses_other_data(text_run, tmp_path):
    evaluator_root = write_t2m_evaluator(tmp_path / "t2m")
    quick = ["replications=1", "multimodality.captions=0"]
    first = evaluate.run(guo_config(tmp_path / "a", text_run, evaluator_root, *quick))
    second = evaluate.run(guo_config(tmp_path / "b", text_run, evaluator_root, *quick))
    assert first["summary"] == second["summary"]
    assert "±" not in first["table"] and "One replication: no interval" in first["table"]
    kit_root = write_t2m_evaluator(tmp_path / "kit", features=251)
    with pytest.raises(UserError, match=r"not made for the run .*feature representation kit vs humanml3d"):
        evaluate.run(guo_config(tmp_path / "c", text_run, kit_root, *quick))


def test_tmr_from_its_release_layout_evaluates_a_run_with_our_protocol(text_run, tmp_path):
    from test_tmr_evaluator import write_tmr

    files = write_tmr(tmp_path / "tmr")
    checkpoint = load_checkpoint(text_run / "checkpoints" / "last.ckpt")
    texts = Path(checkpoint["hyper_parameters"]["data_info"]["source"]) / "texts"  # the run's dataset
    rng = np.random.default_rng(0)
    for path in texts.glob("*.txt"):  # one row of distilbert-sized token features per caption line
        lines = [line for line in path.read_text().splitlines() if line.strip()]
        np.save(
            Path(files["text_features"]) / f"{path.stem}.npy", rng.normal(size=(len(lines), 5, 768)).astype(np.float32)
        )
    overrides = [f"run_dir={text_run}", "evaluator=tmr", *[f"evaluator.{key}={value}" for key, value in files.items()],
                 "protocol=ours", "num_test=40", "replications=1", "sampler=ddim", "sampler.num_steps=2"]  # fmt: skip
    result = evaluate.run(compose_config("evaluate", tmp_path / "e", overrides))
    generated = result["summary"]["generated"]
    assert 0.0 <= generated["TM-score"]["mean"] <= 1.0 and result["settings"]["evaluator_name"] == "tmr"


# ------------------------------------------------------------ the course protocol's measures


def test_the_course_prdc_pairs_real_and_fake_by_index_in_its_recall():
    rng = np.random.default_rng(5)
    real, fake = rng.normal(size=(12, 3)), rng.normal(size=(12, 3)) * 2.0
    k = 3
    fake_radius = [np.sort(np.linalg.norm(fake - f, axis=1))[k] for f in fake]  # k-th neighbour, self excluded
    by_index = np.mean([any(np.linalg.norm(real[i] - f) < fake_radius[i] for f in fake) for i in range(12)])
    published = np.mean([any(np.linalg.norm(r - fake[j]) < fake_radius[j] for j in range(12)) for r in real])
    assert prdc(real, fake, k, course_recall=True)["recall"] == pytest.approx(by_index)
    assert prdc(real, fake, k)["recall"] == pytest.approx(published)
    halves = [prdc(real[:6], fake[:6], 2, course_recall=True), prdc(real[6:], fake[6:], 2, course_recall=True)]
    split = prdc_in_splits(real, fake, k=2, splits=2)
    assert split == {key: pytest.approx((halves[0][key] + halves[1][key]) / 2) for key in halves[0]}
    with pytest.raises(UserError, match="as many of each"):
        prdc(real, fake[:10], k, course_recall=True)
    real, fake = rng.normal(size=(23, 3)), rng.normal(size=(23, 3))  # torch.chunk's cut: 5, 5, 5, 5, 3 rows
    chunks = zip(torch.from_numpy(real).chunk(5), torch.from_numpy(fake).chunk(5))
    course = [prdc(r.numpy(), f.numpy(), 2, course_recall=True) for r, f in chunks]
    assert prdc_in_splits(real, fake, k=2, splits=5) == {
        key: pytest.approx(np.mean([c[key] for c in course])) for key in course[0]
    }


def test_the_course_r_precision_keeps_the_partial_last_batch():
    texts = motions = np.eye(6)[:, :3]  # rows 3-5 are zero: in the partial batch (4, 5) both ties count against
    kept = r_precision(texts, motions, batch_size=4, top_k=1, partial_batch=True)["R@1"]
    dropped = r_precision(texts, motions, batch_size=4, top_k=1)["R@1"]
    assert dropped == 1.0 and kept == 4 / 6


def test_the_course_tmr_score_is_the_clamped_mean_cosine():
    texts = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert clamped_mean_cosine(texts, np.array([[2.0, 0.0], [0.0, 3.0]])) == pytest.approx(1.0)
    assert clamped_mean_cosine(texts, -texts) == 0.0
