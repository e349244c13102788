"""Experiment trackers (the `logger` group): building them so that a run resumed in place writes on where it left
off, the run's config as their hyperparameters, and pictures sent to each its own way.

`logger=csv` (StepCSVLogger: logs/metrics.csv) and `logger=tensorboard` (logs/tensorboard/) are the default pair;
`logger=wandb` (W&B, offline unless told otherwise: <run>/wandb/) and `logger=mlflow` (a SQLite store shared by
every run under the output root) need their extra installed, which tracking.packages says before anything is
written. docs/trackers.md says where each writes and how to open it.
"""

import fcntl
import logging
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import numpy as np
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.loggers import Logger, MLFlowLogger, TensorBoardLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from motiondiff.core.files import relative
from motiondiff.tracking.packages import configured
from motiondiff.training.metrics_log import StepCSVLogger

log = logging.getLogger(__name__)

# The MLflow tag that names the run directory: a run resumed in place finds its MLflow run by it.
RUN_DIR_TAG = "motiondiff.run_dir"
# Metrics the TensorBoard HParams table shows beside the config (those a run does not log stay blank).
HPARAM_METRICS = (
    "val/loss_ema",
    "val/loss",
    "train/loss",
    "val/FD",
    "val/R@3",
    "val/R@1",
    "val/sample_bone_length_error",
)
CONFIG_KEYS_LEFT_OUT = ("_recursive_", "_partial_", "_convert_", "_args_")


# ---- building them, resuming in place -----------------------------------------------------------------


def build_loggers(logger_cfg, run_dir: Path, resumed_step: Optional[int] = None) -> list:
    """The configured trackers; with `resumed_step` (a run resumed in place) each continues its own record."""
    loggers = []
    for node in configured(logger_cfg).values():
        with sqlite_store_lock(node):
            logger = instantiate(node, **options_for(node, Path(run_dir), resumed_step))
            if isinstance(logger, MLFlowLogger) and rank_zero_only.rank == 0:
                logger.experiment  # noqa: B018  (creates the store's tables, the experiment and the run, locked)
        if isinstance(logger, WandbLogger):
            # Lightning passes anonymous=None, which this wandb answers with a deprecation warning on every run.
            getattr(logger, "_wandb_init", {}).pop("anonymous", None)
        loggers.append(logger)
    return loggers


@contextmanager
def sqlite_store_lock(node):
    """For an MLflow SQLite store (tracking_uri sqlite:///<file>): an exclusive lock on <file>.lock while the block
    runs. The jobs of a parallel sweep start together, and MLflow creating the store's tables or an experiment
    twice at once fails; once they exist, SQLite serialises the writes itself."""
    uri = str(node.get("tracking_uri") or "")
    if not uri.startswith("sqlite:///"):
        yield
        return
    store = Path(uri.removeprefix("sqlite:///"))
    store.parent.mkdir(parents=True, exist_ok=True)
    with open(store.with_name(f"{store.name}.lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def options_for(node: DictConfig, run_dir: Path, resumed_step: Optional[int]) -> dict:
    """Keyword arguments a tracker gets beside its config: names from the run directory, what resuming needs."""
    name = str(node.get("_target_", "")).rsplit(".", 1)[-1]
    label = run_label(run_dir)
    if name == "TensorBoardLogger":
        # Steps after the checkpoint are done again: TensorBoard hides what the stopped run logged from there on.
        return {} if resumed_step is None else {"purge_step": resumed_step}
    if name == "WandbLogger":
        options = {} if node.get("name") else {"name": label}
        previous = None if resumed_step is None or node.get("id") else wandb_run_id(Path(node.get("save_dir") or "."))
        return options if previous is None else {**options, "id": previous, "resume": "allow"}
    if name == "MLFlowLogger":
        tags = {**(node.get("tags") or {}), RUN_DIR_TAG: str(run_dir.resolve())}
        options = {"tags": tags, **({} if node.get("run_name") else {"run_name": label})}
        previous = None if resumed_step is None or node.get("run_id") else mlflow_run_id(node, run_dir)
        return options if previous is None else {**options, "run_id": previous}
    return {}


def run_label(run_dir: Path) -> str:
    """How trackers name a run: its folder and the one above ('dance2d-punet/2026-01-01_00-00-00-000000')."""
    return "/".join(Path(run_dir).resolve().parts[-2:])


def wandb_run_id(save_dir: Path) -> Optional[str]:
    """The id of the newest W&B run under save_dir/wandb (offline-run-<time>-<id> or run-<time>-<id>), if any."""
    runs = sorted(save_dir.glob("wandb/*run-*-*"), key=lambda path: path.name.split("run-", 1)[1])
    return runs[-1].name.rsplit("-", 1)[1] if runs else None


def mlflow_run_id(node: DictConfig, run_dir: Path) -> Optional[str]:
    """The id of the MLflow run this run directory logged to before (found by its RUN_DIR_TAG), if any."""
    from mlflow.tracking import MlflowClient  # an optional package: imported only when logger=mlflow is chosen

    client = MlflowClient(node.get("tracking_uri"))
    experiment = client.get_experiment_by_name(node.get("experiment_name", "lightning_logs"))
    if experiment is None:
        return None
    where = str(run_dir.resolve()).replace("'", "\\'")
    runs = client.search_runs([experiment.experiment_id], filter_string=f"tags.`{RUN_DIR_TAG}` = '{where}'")
    return runs[0].info.run_id if runs else None


def callbacks_for(callbacks: list, loggers: list) -> list:
    """The callbacks that can work with these trackers: without any, no learning-rate monitor (it logs to them)."""
    if loggers:
        return callbacks
    return [callback for callback in callbacks if not isinstance(callback, LearningRateMonitor)]


def tracker_lines(loggers: list, run_dir: Path) -> list:
    """The opening line about the run's trackers: where each writes (inside the run directory: relative to it)."""
    parts = []
    for logger in loggers:
        if isinstance(logger, StepCSVLogger):
            parts.append(f"CSV {relative(logger.path, run_dir)}")
        elif isinstance(logger, TensorBoardLogger):
            parts.append(f"TensorBoard {relative(logger.log_dir, run_dir)}/")
        elif isinstance(logger, WandbLogger):
            mode = "offline" if getattr(logger, "_offline", False) else "online"
            parts.append(f"W&B ({mode}) {relative(Path(logger.save_dir) / 'wandb', run_dir)}/")
        elif isinstance(logger, MLFlowLogger):
            parts.append(f"MLflow {getattr(logger, '_tracking_uri', '')}")
        else:
            parts.append(type(logger).__name__)
    return [f"Trackers: {' · '.join(parts)}"] if parts else ["Trackers: none (logger=null): no metrics are recorded"]


def viewer_lines(loggers: list, shown_run: str) -> list:
    """The closing lines' commands that open the run in its trackers (`shown_run`: the run directory as shown)."""
    commands = []
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            commands.append(f"tensorboard --logdir {shown_run}")
        elif isinstance(logger, WandbLogger) and getattr(logger, "_offline", False):
            commands.append(f"wandb sync {shown_run}/wandb/offline-run-*")
        elif isinstance(logger, MLFlowLogger):
            commands.append(f"mlflow ui --backend-store-uri {getattr(logger, '_tracking_uri', '')}")
    return [f"{'Look:' if n == 0 else '     '} {command}" for n, command in enumerate(commands)]


# ---- hyperparameters -----------------------------------------------------------------------------------


def flat_config(cfg: DictConfig) -> dict:
    """The composed config as {dotted key: int | float | bool | str}: a `_target_` as `<key>.class` (the class name),
    lists and null as text, Hydra's instantiation flags left out."""
    flat: dict = {}

    def walk(node, prefix: str) -> None:
        for key, value in node.items():
            if key in CONFIG_KEYS_LEFT_OUT:
                continue
            if key == "_target_":
                flat[f"{prefix}class"] = str(value).rsplit(".", 1)[-1]
            elif isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            elif isinstance(value, (bool, int, float, str)):
                flat[f"{prefix}{key}"] = value
            else:
                flat[f"{prefix}{key}"] = "null" if value is None else str(value)

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return flat


def log_hyperparameters(loggers: list, cfg: DictConfig, resumed_step: Optional[int] = None) -> dict:
    """Give every tracker the run's config, flattened (TensorBoard's HParams table lists HPARAM_METRICS beside it).

    MLflow's params cannot change: a run resumed in place adds only new keys there, and each setting it changed
    (trainer.max_steps, ckpt_path) as the tag `resumed_at_<step>.<key>`."""
    params = flat_config(cfg)
    for logger in loggers:
        if isinstance(logger, MLFlowLogger) and resumed_step is not None:
            log_resumed_mlflow_params(logger, params, resumed_step)
            continue
        logger.log_hyperparams(params)
        if isinstance(logger, TensorBoardLogger):
            write_hparams_session(logger, params)
    return params


def log_resumed_mlflow_params(logger: MLFlowLogger, params: dict, step: int) -> None:
    """The params MLflow's run lacks; the changed ones as tags (MLflow refuses a param logged twice differently)."""
    logged = logger.experiment.get_run(logger.run_id).data.params
    logger.log_hyperparams({key: value for key, value in params.items() if key not in logged})
    for key, value in params.items():
        if key in logged and logged[key] != str(value)[:250]:  # Lightning cuts values at 250 characters
            logger.experiment.set_tag(logger.run_id, f"resumed_at_{step}.{key}", str(value))


def finish_trackers(loggers: list, exit_code: int = 0) -> None:
    """End this process's W&B run, as the process's end would: Lightning leaves it open, so a later run in the
    same process (a Hydra sweep's next job, a test) would log into it."""
    for logger in loggers:
        if isinstance(logger, WandbLogger) and getattr(logger, "_experiment", None) is not None:
            logger.experiment.finish(exit_code=exit_code)


def write_hparams_session(logger: TensorBoardLogger, params: dict) -> None:
    """The HParams plugin's records (the config and the metric names; the values are the run's own scalars).

    TensorBoardLogger writes them only with a metric value to log at once (its hp_metric); here nothing is logged
    that the run did not measure."""
    from torch.utils.tensorboard.summary import hparams

    experiment, start, end = hparams(params, dict.fromkeys(HPARAM_METRICS, 0.0))
    writer = logger.experiment._get_file_writer()  # as TensorBoardLogger.log_hyperparams does
    for summary in (experiment, start, end):
        writer.add_summary(summary)


# ---- pictures ------------------------------------------------------------------------------------------


def takes_pictures(logger: Logger) -> bool:
    """Whether a tracker shows images and animations (TensorBoard, W&B, MLflow; not the CSV file)."""
    return isinstance(logger, (TensorBoardLogger, WandbLogger, MLFlowLogger))


def log_pictures(loggers: list, tag: str, strip: np.ndarray, gif: bytes, step: int, caption: str = "") -> None:
    """Send a still (H, W, 3) uint8 and an animated GIF to each tracker that shows pictures, at `step`.

    TensorBoard: the still under `tag` and the GIF under `<tag>_animation` (its images dashboard plays it, as it
    plays add_video's GIFs, with no moviepy). W&B: an Image and a Video from the GIF file. MLflow: the still as a
    stepped image (`tag`) and the GIF as the artifact <tag>/step<step>.gif."""
    with tempfile.TemporaryDirectory(prefix="motiondiff-media-") as folder:
        path = Path(folder) / f"step{step:07d}.gif"
        path.write_bytes(gif)
        for logger in loggers:
            if isinstance(logger, TensorBoardLogger):
                tensorboard_pictures(logger, tag, strip, gif, step)
            elif isinstance(logger, WandbLogger):
                import wandb  # an optional package: imported only when logger=wandb is chosen

                still, moving = wandb.Image(strip, caption=caption), wandb.Video(str(path), format="gif")
                logger.log_metrics({tag: still, f"{tag}_animation": moving}, step)
            elif isinstance(logger, MLFlowLogger):
                logger.experiment.log_image(logger.run_id, strip, key=tag, step=step)
                logger.experiment.log_artifact(logger.run_id, str(path), artifact_path=tag.replace("/", "_"))


def tensorboard_pictures(logger: TensorBoardLogger, tag: str, strip: np.ndarray, gif: bytes, step: int) -> None:
    """The still with add_image, the GIF as an image summary (what SummaryWriter.add_video writes, minus moviepy)."""
    from tensorboard.compat.proto.summary_pb2 import Summary

    writer = logger.experiment
    writer.add_image(tag, strip, step, dataformats="HWC")
    height, width = gif_size(gif)
    image = Summary.Image(height=height, width=width, colorspace=3, encoded_image_string=gif)
    writer._get_file_writer().add_summary(Summary(value=[Summary.Value(tag=f"{tag}_animation", image=image)]), step)


def gif_size(gif: bytes) -> tuple:
    """(height, width) of a GIF from its logical screen descriptor (bytes 6-9, little endian)."""
    assert gif[:3] == b"GIF", "not a GIF"
    return int.from_bytes(gif[8:10], "little"), int.from_bytes(gif[6:8], "little")
