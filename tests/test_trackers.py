"""Experiment trackers and the run's plots: after a 5-step run with every tracker (csv, tensorboard, wandb offline,
mlflow on a local SQLite store) each holds the metrics, the config and the validation samples; the run resumed in
place writes on into the same TensorBoard folder, W&B run and MLflow run; curves.png and metrics.png are drawn."""

import importlib.util
import io
import struct
from pathlib import Path

import lightning as L
import numpy as np
import pytest
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.plugins.hparams import plugin_data_pb2

from conftest import TINY_NETWORK, compose_config
from motiondiff.cli.app import CONFIG_DIR, expand_shorthands
from motiondiff.cli.preflight import preflight
from motiondiff.core.errors import UserError
from motiondiff.data.procedural.text_motion import dataset_name, write_procedural_dataset
from motiondiff.evaluation import run as evaluate
from motiondiff.render.plots import smoothed, spans_a_decade
from motiondiff.runs import train
from motiondiff.runs.directories import save_resumed_config, save_run_config
from motiondiff.tracking import trackers
from motiondiff.training.interrupts import SaveOnInterrupt
from motiondiff.training.metrics_log import read_rows

# The optional trackers join the run when their extras are installed (requirements-test.txt installs both).
OPTIONAL = [name for name in ("wandb", "mlflow") if importlib.util.find_spec(name) is not None]
EVERY_TRACKER = f"logger=[{','.join(['csv', 'tensorboard', *OPTIONAL])}]"
SHORT = [  # validation (and samples for the trackers) after every epoch
    "generate_after_training.num_samples=0",
    "trainer.max_epochs=-1",
    "+trainer.limit_val_batches=1",
    "trainer.check_val_every_n_epoch=1",
    "trainer.log_every_n_steps=1",
    "module.sample_every_n_epochs=1",
    "val_sampler.num_steps=4",
    "callbacks.tracker_samples.num_samples=2",
    "~callbacks.progress_bar",
]
QUICK = [  # a dance run of 5 steps in one epoch
    "experiment=dance2d",
    *TINY_NETWORK,
    "dataset.batch_size=16",
    "module.val_num_samples=2",
    "trainer.max_steps=5",
    "+trainer.limit_train_batches=5",
    *SHORT,
]
SCALARS = {"train/loss", "val/loss", "val/loss_ema", "lr-AdamW", "val/sample_bone_length_error"}


def offline_wandb(monkeypatch, folder: Path) -> None:
    """W&B offline, silent, with every folder it writes inside `folder` (no network, nothing in the home folder)."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for name in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(name, str(folder / name.lower()))


def wandb_records(path: Path) -> list:
    """The protobuf records of a .wandb file (W&B's LevelDB-style log: a 7-byte header, 32 KiB blocks of chunks)."""
    from wandb.proto import wandb_internal_pb2

    data, block = path.read_bytes(), 32768
    assert data[:4] == b":W&B", "not a W&B run file"
    records, pending, position = [], b"", 7
    while position + 7 <= len(data):
        if block - position % block < 7:  # too little left in this block for a chunk header: padding
            position += block - position % block
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + 7])
        pending += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # FULL or LAST chunk: a record is complete
            records.append(wandb_internal_pb2.Record.FromString(pending))
            pending = b""
    return records


def tensorboard_run(folder: Path) -> EventAccumulator:
    accumulator = EventAccumulator(str(folder), size_guidance={"images": 0, "scalars": 0})
    accumulator.Reload()
    return accumulator


def csv_steps(tracked: dict, column: str) -> list:
    """The steps metrics.csv holds a value of `column` at: what every tracker should show."""
    rows = read_rows(tracked["run_dir"] / "logs" / "metrics.csv")
    return [int(row["step"]) for row in rows if row.get(column)]


def is_drawing(path: Path, width: int = 0) -> bool:
    """A PNG that shows something: many colours, not one flat field (and at least `width` pixels wide)."""
    image = np.asarray(Image.open(path).convert("RGB"))
    return image.shape[1] >= width and len(np.unique(image.reshape(-1, 3), axis=0)) > 50 and image.std() > 10


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """A 5-step run with every tracker, what it left, then the same run resumed in place to step 10."""
    root = tmp_path_factory.mktemp("trackers")
    run_dir = root / "dance2d-punet" / "run"
    with pytest.MonkeyPatch.context() as monkeypatch:
        offline_wandb(monkeypatch, root)
        first = compose_config("train", run_dir, [*QUICK, EVERY_TRACKER, f"paths.output_root={root}"])
        train.run(first)
        after_first = {
            "tensorboard": tensorboard_run(run_dir / "logs" / "tensorboard"),
            "wandb": sorted((run_dir / "wandb").glob("offline-run-*")),
            "curves": (run_dir / "logs" / "curves.png").read_bytes(),
        }
        resumed = compose_config(
            "train",
            run_dir,
            [
                *QUICK,
                EVERY_TRACKER,
                f"paths.output_root={root}",
                "trainer.max_steps=10",
                f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}",
            ],
        )
        train.run(resumed)
    return {"root": root, "run_dir": run_dir, "first": after_first}


# ---- TensorBoard -------------------------------------------------------------------------------------------


def test_tensorboard_holds_the_scalars_the_config_and_the_samples(tracked):
    events = tracked["first"]["tensorboard"]
    assert SCALARS <= set(events.Tags()["scalars"])
    assert [event.step for event in events.Scalars("train/loss")] == [0, 1, 2, 3, 4]
    start = plugin_data_pb2.HParamsPluginData.FromString(
        events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    ).session_start_info
    assert start.hparams["network.base_channels"].number_value == 16
    assert start.hparams["network.class"].string_value == "PUNet"
    assert "hp_metric" not in events.Tags()["scalars"]  # no placeholder value
    (still,) = events.Images("val/samples")
    (animation,) = events.Images("val/samples_animation")
    assert still.step == animation.step == events.Scalars("val/loss")[0].step  # beside the validation metrics
    strip = Image.open(io.BytesIO(still.encoded_image_string))
    assert strip.size == (6 * 192, 2 * 192)  # 6 frames of each of 2 samples
    gif = Image.open(io.BytesIO(animation.encoded_image_string))
    assert gif.format == "GIF" and gif.n_frames > 10 and gif.info["loop"] == 0


def test_a_resumed_run_writes_on_in_the_same_tensorboard_folder(tracked):
    folder = tracked["run_dir"] / "logs" / "tensorboard"
    assert [path.name for path in (tracked["run_dir"] / "logs").iterdir() if path.is_dir()] == ["tensorboard"]
    events = tensorboard_run(folder)
    steps = [event.step for event in events.Scalars("train/loss")]
    assert steps == csv_steps(tracked, "train/loss") and len(steps) == 10 and steps[:5] == [0, 1, 2, 3, 4]
    assert [image.step for image in events.Images("val/samples")] == csv_steps(tracked, "val/loss")
    files = sorted(folder.glob("events.out.tfevents.*"), key=lambda path: path.stat().st_mtime)
    assert len(files) == 2
    # The resumed writer starts by hiding whatever the stopped run logged from its checkpoint's step on.
    starts = [event for event in EventFileLoader(str(files[1])).Load() if event.HasField("session_log")]
    assert [(event.session_log.status, event.step) for event in starts] == [(1, 5)]  # SessionLog.START at step 5


def test_a_text_run_sends_its_captioned_samples_to_tensorboard(tmp_path, procedural_data_dir):
    """Text runs sample for the first validation captions, at their lengths, drawn as 3D stick figures."""
    write_procedural_dataset(procedural_data_dir / dataset_name(40, 0), num_motions=40, seed=0)
    overrides = [
        "experiment=text2motion",
        f"paths.data_dir={procedural_data_dir}",
        "dataset.procedural.num_motions=40",
        "network.latent_dim=32",
        "network.num_layers=1",
        "network.num_heads=4",
        "dataset.batch_size=8",
        *SHORT,
        "trainer.max_steps=2",
        "+trainer.limit_train_batches=2",
        "logger=tensorboard",
    ]
    train.run(compose_config("train", tmp_path / "run", overrides))
    events = tensorboard_run(tmp_path / "run" / "logs" / "tensorboard")
    (still,) = events.Images("val/samples")
    strip = np.asarray(Image.open(io.BytesIO(still.encoded_image_string)).convert("RGB"))
    assert strip.shape == (2 * 192, 6 * 192, 3) and is_drawing(io.BytesIO(still.encoded_image_string))
    (animation,) = events.Images("val/samples_animation")
    assert Image.open(io.BytesIO(animation.encoded_image_string)).n_frames > 1


# ---- W&B (offline) ------------------------------------------------------------------------------------------


def test_wandb_offline_run_holds_the_metrics_the_config_and_the_samples(tracked):
    pytest.importorskip("wandb", reason="W&B is optional: pip install -r requirements-test.txt")
    (run,) = tracked["first"]["wandb"]
    (log_file,) = run.glob("run-*.wandb")
    records = wandb_records(log_file)
    history = [
        {item.nested_key[0] if item.nested_key else item.key: item.value_json for item in record.history.item}
        for record in records
        if record.HasField("history")
    ]
    logged = set().union(*history)
    assert {"train/loss", "val/loss_ema", "val/samples", "val/samples_animation"} <= logged
    config = {item.key for record in records if record.HasField("config") for item in record.config.update}
    assert {"network.base_channels", "network.class", "seed"} <= config
    assert list((run / "files" / "media" / "images" / "val").glob("samples_*.png"))
    assert list((run / "files" / "media" / "videos" / "val").glob("samples_animation_*.gif"))


def test_a_resumed_run_continues_the_same_wandb_run(tracked):
    runs = sorted((tracked["run_dir"] / "wandb").glob("offline-run-*"))
    assert len(runs) == 2 and runs[0] == tracked["first"]["wandb"][0]
    assert len({run.name.rsplit("-", 1)[1] for run in runs}) == 1  # one id: `wandb sync` puts both in one run


# ---- MLflow (local SQLite store) ----------------------------------------------------------------------------


def test_mlflow_run_holds_params_metrics_and_samples_and_a_resumed_run_continues_it(tracked):
    pytest.importorskip("mlflow", reason="MLflow is optional: pip install -r requirements-test.txt")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tracked['root']}/mlflow.db")
    experiment = client.get_experiment_by_name("dance2d-punet")
    (run,) = client.search_runs([experiment.experiment_id])  # the resumed run continued it: one run
    assert run.data.tags[trackers.RUN_DIR_TAG] == str(tracked["run_dir"].resolve())
    assert run.data.tags["mlflow.runName"] == "dance2d-punet/run" and run.info.status == "FINISHED"
    assert run.data.params["network.base_channels"] == "16" and run.data.params["network.class"] == "PUNet"
    history = client.get_metric_history(run.info.run_id, "train/loss")
    assert sorted(metric.step for metric in history) == csv_steps(tracked, "train/loss")
    validated = csv_steps(tracked, "val/loss_ema")
    assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "val/loss_ema")) == validated
    gifs = [Path(entry.path).name for entry in client.list_artifacts(run.info.run_id, "val_samples")]
    assert gifs == [f"step{step:07d}.gif" for step in validated]
    images = [entry.path for entry in client.list_artifacts(run.info.run_id, "images")]
    for step in validated:
        assert any(f"val~samples+step+{step}+" in path and path.endswith(".png") for path in images)


# ---- curves.png and what a run says ----------------------------------------------------------------------------


def test_curves_are_drawn_after_training_and_again_over_the_whole_resumed_run(tracked):
    curves = tracked["run_dir"] / "logs" / "curves.png"
    first = Image.open(io.BytesIO(tracked["first"]["curves"]))
    assert first.size[0] == 1200 and is_drawing(io.BytesIO(tracked["first"]["curves"]))
    assert curves.read_bytes() != tracked["first"]["curves"] and is_drawing(curves, width=1200)
    steps = csv_steps(tracked, "train/loss")
    assert len(steps) == 10 and steps == sorted(set(steps))  # one curve over both stretches, no step twice


class SignalAfter(L.Callback):
    """Deliver SIGTERM to the run's SaveOnInterrupt after training step `step` (as the signal handler would)."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            (saver,) = [c for c in trainer.callbacks if isinstance(c, SaveOnInterrupt)]
            saver.received = "SIGTERM"


def test_the_curves_of_an_interrupted_run_are_drawn_when_it_stops(tmp_path, caplog):
    run_dir = tmp_path / "run"
    signal = ["+callbacks.signal._target_=test_trackers.SignalAfter", "+callbacks.signal.step=2", "logger=csv"]
    with caplog.at_level("WARNING", logger="motiondiff.runs.train"), pytest.raises(SystemExit) as stopped:
        train.run(compose_config("train", run_dir, [*QUICK, *signal]))
    assert stopped.value.code == 128 + 15  # SIGTERM, after saving the step
    assert [int(row["step"]) for row in read_rows(run_dir / "logs" / "metrics.csv")] == [0, 1, 2]
    assert is_drawing(run_dir / "logs" / "curves.png")
    assert f"Curves: {run_dir / 'logs' / 'curves.png'}" in caplog.text


def test_no_trackers_and_csv_alone(tmp_path):
    without_validation = [o for o in QUICK if not o.startswith("+trainer.limit_val_batches")]
    for option, expected in (("logger=null", set()), ("logger=csv", {"metrics.csv", "curves.png"})):
        run_dir = tmp_path / option.split("=")[1]
        overrides = [*without_validation, "trainer.max_steps=2", "+trainer.limit_val_batches=0", option]
        train.run(compose_config("train", run_dir, expand_shorthands(overrides)))
        written = {path.name for path in (run_dir / "logs").iterdir()} if (run_dir / "logs").exists() else set()
        assert written == expected, option


# ---- before anything is written --------------------------------------------------------------------------------


def test_a_tracker_that_is_not_installed_is_one_sentence_before_anything_is_written(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "wandb" else real(name))
    with pytest.raises(UserError, match=r"logger=wandb needs the wandb package.*pip install 'motiondiff\[wandb\]'"):
        preflight(CONFIG_DIR, "train", ["experiment=dance2d", "logger=[csv,wandb]"])
    with pytest.raises(UserError, match="pip install 'motiondiff"):
        train.run(compose_config("train", tmp_path / "run", [*QUICK, "logger=[csv,wandb]"]))
    assert not (tmp_path / "run").exists()
    preflight(CONFIG_DIR, "train", ["experiment=dance2d", "logger=[csv,tensorboard]"])  # installed: passes


def test_every_logger_choice_composes_and_null_means_none(tmp_path):
    for option, keys in (
        ("logger=csv", ["csv"]),
        ("logger=null", None),
        ("~logger", None),
        ("logger=[]", None),
        ("logger=[tensorboard,mlflow]", ["tensorboard", "mlflow"]),
        ("logger=[csv,tensorboard,wandb,mlflow]", ["csv", "tensorboard", "wandb", "mlflow"]),
    ):
        cfg = compose_config("train", tmp_path, expand_shorthands(["experiment=dance2d", option]))
        got = cfg.get("logger")
        assert (None if got is None else list(got)) == keys, option
    assert list(compose_config("train", tmp_path, ["experiment=dance2d"]).logger) == ["csv", "tensorboard"]


def test_a_resumed_run_may_change_its_trackers_but_not_its_training(tmp_path):
    saved = compose_config("train", tmp_path, ["experiment=dance2d", "logger=csv"])
    save_run_config(saved, tmp_path)
    every = "logger=[csv,tensorboard,wandb,mlflow]"
    save_resumed_config(compose_config("train", tmp_path, ["experiment=dance2d", every]), tmp_path, 5)
    with pytest.raises(UserError, match="optimizer.lr"):
        save_resumed_config(compose_config("train", tmp_path, ["experiment=dance2d", "optimizer.lr=0.5"]), tmp_path, 5)


def test_the_config_is_flattened_into_plain_values(tmp_path):
    flat = trackers.flat_config(compose_config("train", tmp_path, ["experiment=dance2d", *TINY_NETWORK]))
    assert flat["network.class"] == "PUNet" and flat["network.base_channels"] == 16
    assert flat["network.channel_mults"] == "[1, 2]" and flat["ckpt_path"] == "null"
    assert all(isinstance(value, (bool, int, float, str)) for value in flat.values())
    assert not any(key.endswith(("._target_", "._partial_")) for key in flat)


def test_the_loss_panel_is_logarithmic_only_over_a_decade():
    assert spans_a_decade([np.array([2.0, 0.1, np.nan])]) and not spans_a_decade([np.array([0.9, 0.2])])


# ---- metrics.png -------------------------------------------------------------------------------------------------


def test_an_evaluation_draws_each_metric_with_its_interval(tracked, tmp_path):
    out = tmp_path / "evaluation"
    options = ["clips=2", "duration_factor=0.1", "replications=2", "sampler=ddim", "sampler.num_steps=3"]
    evaluate.run(compose_config("evaluate", out, [f"run_dir={tracked['run_dir']}", *options]))
    chart = out / "metrics.png"
    assert is_drawing(chart, width=900)
    with pytest.raises(UserError, match="already exists: evaluations never overwrite"):
        evaluate.run(compose_config("evaluate", out, [f"run_dir={tracked['run_dir']}", *options]))
    assert chart.stat().st_size > 10_000


def test_the_smoothed_loss_follows_a_fast_fall_without_lag():
    steps = np.arange(200)
    clean = 0.05 + np.exp(-steps / 8.0)  # a loss that falls twentyfold in the first 30 logged points
    noisy = clean * np.exp(np.random.default_rng(0).normal(0, 0.2, len(steps)))
    line = smoothed(noisy)
    np.testing.assert_allclose(line[[0, -1]], noisy[[0, -1]], rtol=1e-12)  # the ends are the values themselves
    assert np.abs(np.log(line[5:-5] / clean[5:-5])).max() < 0.3  # near the clean curve (an EMA lagged: 0.68)
    np.testing.assert_array_equal(smoothed(noisy[:40]), noisy[:40])  # too short to smooth
