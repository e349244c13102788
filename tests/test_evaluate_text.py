"""evaluate.py on text runs: an evaluator trained by train.py (experiment=evaluator), a text run, the
metric table with its real-data row, and refusals of evaluators trained for other data."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from conftest import CONFIG_DIR, THREADS, compose_config
from motiondiff.cli.preflight import preflight
from motiondiff.core.errors import UserError
from motiondiff.evaluation import nfe_curve
from motiondiff.evaluation import run as evaluate
from motiondiff.evaluation.evaluators.trained import check_compatible, load_trained_evaluator
from motiondiff.runs import train

NUM_MOTIONS, FRAMES = 800, 120  # 120 test items: halves of 60 for a 32-dim evaluator
DATA = [f"dataset.procedural.num_motions={NUM_MOTIONS}", f"dataset.max_frames={FRAMES}", "dataset.batch_size=32"]
NO_VALIDATION = ["trainer.check_val_every_n_epoch=1000", "callbacks.checkpoint.save_top_k=0"]
METRICS = ["FD", "precision", "recall", "density", "coverage", "R@1", "R@2", "R@3", "MM-Dist", "TM-score", "diversity"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, procedural_data_dir):
    """A briefly trained evaluator and a barely trained AdaLN text model on the same procedural data."""
    torch.set_num_threads(THREADS)
    data_dir = procedural_data_dir
    evaluator_cfg = compose_config(
        "train",
        tmp_path_factory.mktemp("evaluator"),
        [
            "experiment=evaluator",
            f"paths.data_dir={data_dir}",
            *DATA,
            "network.latent_dim=32",
            "network.num_layers=2",
            "network.ff_size=128",
            f"network.max_frames={FRAMES}",
            "network.dropout=0.0",
            "optimizer.lr=1e-3",
            "lr_scheduler.warmup_steps=20",
            "trainer.max_steps=200",
            *NO_VALIDATION,
        ],
    )
    evaluator_run = train.run(evaluator_cfg)["run_dir"]
    text_cfg = compose_config(
        "train",
        tmp_path_factory.mktemp("text"),
        [
            "experiment=text2motion",
            f"paths.data_dir={data_dir}",
            *DATA,
            "network.latent_dim=32",
            "network.num_layers=1",
            "network.num_heads=2",
            f"network.max_frames={FRAMES}",
            "trainer.max_steps=2",
            *NO_VALIDATION,
            "generate_after_training.num_samples=0",
        ],
    )
    text_run = train.run(text_cfg)["run_dir"]
    return {"evaluator": evaluator_run, "text": text_run, "data_dir": data_dir}


def evaluate_config(tmp_path, runs, *overrides):
    return compose_config(
        "evaluate",
        tmp_path,
        [
            f"run_dir={runs['text']}",
            f"evaluator={runs['evaluator']}",
            "replications=2",
            "sampler=ddim",
            "sampler.num_steps=4",
            "batch_size=32",
            *overrides,
        ],
    )


def test_untrained_model_is_far_from_real_and_the_real_row_is_a_floor(runs, tmp_path):
    result = evaluate.run(
        evaluate_config(
            tmp_path / "e", runs, "multimodality.captions=4", "multimodality.samples=3", "multimodality.pairs=2"
        )
    )
    real, generated = result["summary"]["real"], result["summary"]["generated"]
    assert list(real) == METRICS and list(generated) == METRICS + ["multimodality"]
    assert all(
        len(entry["values"]) == 2 and np.isfinite(entry["mean"]) for entry in [*real.values(), *generated.values()]
    )
    # Real motions of one half against the other half: a small FD; an untrained model's samples: a large one.
    assert generated["FD"]["mean"] > 5 * real["FD"]["mean"] > 0
    # The evaluator retrieves real motions from their captions far better than chance (3/32); not the untrained model's.
    assert real["R@3"]["mean"] > 0.3 > generated["R@3"]["mean"]
    assert real["TM-score"]["mean"] > generated["TM-score"]["mean"]
    # The untrained model's samples all look alike: they miss most of the real motions.
    assert real["recall"]["mean"] > generated["recall"]["mean"] + 0.5


def test_results_are_written_with_their_settings(runs, tmp_path):
    out = tmp_path / "e"
    result = evaluate.run(evaluate_config(out, runs, "num_test=40", "guidance_weight=2.0", "seed=5"))
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["results"] == json.loads(json.dumps(result["summary"]))
    settings = saved["settings"]
    assert settings["seed"] == 5 and settings["replications"] == 2 and settings["guidance_weight"] == 2.0
    assert settings["sampler"]["num_steps"] == 4 and settings["test_items"] == 40
    assert settings["evaluated_items"] == 20 and settings["evaluator"].endswith("last.ckpt")
    rows = (out / "metrics.csv").read_text().splitlines()
    assert rows[0] == "row,metric,mean,ci95_half_width,values" and len(rows) == 1 + 2 * len(METRICS)
    table = (out / "metrics.md").read_text()
    assert "| real (test split, reference) |" in table and "| generated |" in table and "±" in table
    assert all(f"| {header} |" in table for header in ["FD ↓", "R@3 ↑", "density →", "diversity →"])
    assert "over 2 replications" in table and "## Columns" in table
    printed = result["table"]
    assert "| real (test split, reference) |" in printed and "FD ↓" in printed and "R@3 ↑" in printed
    assert max(len(line) for line in printed.splitlines()[:-1]) <= 100 and "Reference: real test motions" in printed


def test_same_seed_same_numbers(runs, tmp_path):
    first = evaluate.run(evaluate_config(tmp_path / "a", runs, "num_test=40", "replications=1"))
    second = evaluate.run(evaluate_config(tmp_path / "b", runs, "num_test=40", "replications=1"))
    assert first["summary"] == second["summary"]
    assert "±" not in first["table"] and "One replication: no interval; use replications>=2" in first["table"]


def test_evaluator_trained_for_other_data_is_refused(runs):
    evaluator = load_trained_evaluator(str(runs["evaluator"]))
    info = evaluator.module.description
    check_compatible(evaluator, info, "run")  # its own data: accepted
    for change in ({"representation": "smplrifke", "features": 205}, {"dataset_id": "humanml3d-0123456789ab"}):
        with pytest.raises(UserError, match="was not trained for the run"):
            check_compatible(evaluator, dataclasses.replace(info, **change), "run")


def test_missing_or_wrong_evaluator_is_one_clear_error(runs, tmp_path):
    with pytest.raises(UserError, match="experiment=evaluator"):
        evaluate.run(compose_config("evaluate", tmp_path / "a", [f"run_dir={runs['text']}"]))
    for command in ("evaluate", "nfe_curve"):  # and before Lightning is imported: the run's config names a text network
        with pytest.raises(UserError, match="text runs are measured with a motion-text evaluator"):
            preflight(CONFIG_DIR, command, [f"run_dir={runs['text']}"])
        preflight(CONFIG_DIR, command, [f"run_dir={runs['text']}", f"evaluator.run={runs['evaluator']}"])  # accepted
    with pytest.raises(UserError, match="not a motion-text evaluator"):
        evaluate.run(evaluate_config(tmp_path / "b", runs, f"evaluator={runs['text']}"))
    with pytest.raises(UserError, match="not found"):
        evaluate.run(evaluate_config(tmp_path / "c", runs, f"evaluator={tmp_path / 'nowhere'}"))


def test_training_logs_fd_and_r3_with_an_evaluator(runs, tmp_path):
    cfg = compose_config(
        "train",
        tmp_path / "run",
        [
            "experiment=text2motion",
            f"paths.data_dir={runs['data_dir']}",
            *DATA,
            "network.latent_dim=32",
            "network.num_layers=1",
            "network.num_heads=2",
            f"network.max_frames={FRAMES}",
            "trainer.max_steps=-1",
            "trainer.max_epochs=1",
            "+trainer.limit_train_batches=2",
            "+trainer.limit_val_batches=1",
            "trainer.check_val_every_n_epoch=1",
            f"callbacks.generation_metrics.evaluator={runs['evaluator']}",
            "callbacks.generation_metrics.every_n_epochs=1",
            "callbacks.generation_metrics.items=32",
            "val_sampler.num_steps=3",
            "generate_after_training.num_samples=0",
        ],
    )
    metrics = train.run(cfg)["metrics"]
    assert np.isfinite(metrics["val/FD"]) and metrics["val/FD"] > 0
    assert 0 <= metrics["val/R@3"] <= 1


def test_an_evaluator_run_cannot_be_generated_from(runs, tmp_path):
    from motiondiff.generation import run as generate

    with pytest.raises(UserError, match="does not generate"):
        generate.run(
            compose_config("generate", tmp_path / "g", [f"run_dir={runs['evaluator']}", "prompt=a person waves"])
        )


def test_nfe_curve_measures_fd_and_r3_on_a_text_run(runs, tmp_path):
    out = tmp_path / "curve"
    overrides = [
        f"run_dir={runs['text']}",
        f"evaluator={runs['evaluator']}",
        "samplers=[ddim,dpmsolver]",
        "steps=[2]",
        "skip_ddpm=true",
        "replications=2",
        "ddim_reference_steps=3",
        "num_test=40",
        "batch_size=32",
    ]
    result = nfe_curve.run(compose_config("nfe_curve", out, overrides))
    record = json.loads((out / "nfe_curve.json").read_text())
    assert record["settings"]["metrics"] == ["FD", "R@3"] and result["settings"]["metrics"] == ["FD", "R@3"]
    points = [(p["kind"], p["label"], p["nfe"]) for p in record["points"]]
    assert points == [("curve", "ddim", 2), ("curve", "dpmsolver", 2), ("reference", "ddim-3", 3)]
    for point in record["points"]:
        assert len(point["metrics"]["FD"]["values"]) == 2 and np.isfinite(point["metrics"]["FD"]["mean"])
        assert 0.0 <= point["metrics"]["R@3"]["mean"] <= 1.0
    table = (out / "nfe_curve.md").read_text()
    assert "FD" in table and "R@3" in table and "not measured (skip_ddpm=true)" in table
    assert (out / "nfe_curve.png").read_bytes()[:4] == b"\x89PNG"


def test_a_distilled_run_is_evaluated_like_any_other(runs, tmp_path):
    overrides = [
        "experiment=distill",
        f"teacher={runs['text']}",
        f"paths.data_dir={runs['data_dir']}",
        "trainer.max_steps=2",
        *NO_VALIDATION,
        "generate_after_training.num_samples=0",
    ]
    student = train.run(compose_config("train", tmp_path / "student", overrides))["run_dir"]
    out = tmp_path / "e"
    overrides = [f"run_dir={student}", f"evaluator={runs['evaluator']}", "replications=2", "num_test=40"]
    result = evaluate.run(compose_config("evaluate", out, [*overrides, "batch_size=32"]))
    settings = json.loads((out / "metrics.json").read_text())["settings"]
    assert settings["sampler"]["name"] == "ConsistencySampler" and settings["evaluated_items"] == 20
    generated = result["summary"]["generated"]
    assert all(np.isfinite(generated[metric]["mean"]) for metric in METRICS)
