"""A training run from a composed config: `motiondiff-train experiment=dance2d [overrides]` calls `run(cfg)`.

The run says what it is about to do (directory, data, network, device, steps), trains, and ends
with a summary and the next commands, all also in the run's train.log. Ctrl-C or SIGTERM saves a
checkpoint at the current step (training.interrupts); `resume=<run>` (or `ckpt_path=last`)
continues in the same directory and the same metrics.csv. What happens after training (samples)
and what is measured during it (validation FD / R@3) are callbacks of the `callbacks` group.
"""

import logging
import time
import warnings
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig

from motiondiff.core.errors import UserError, require_file
from motiondiff.core.units import duration
from motiondiff.runs.directories import (
    latest_checkpoint,
    load_run_config,
    save_resumed_config,
    save_run_config,
    shown,
)
from motiondiff.runs.distill import attach_teacher, with_teacher
from motiondiff.tracking.curves import TrainingCurves
from motiondiff.tracking.packages import check_tracker_packages
from motiondiff.tracking.trackers import (
    build_loggers,
    callbacks_for,
    finish_trackers,
    log_hyperparameters,
    tracker_lines,
    viewer_lines,
)
from motiondiff.training.build import build_module
from motiondiff.training.checkpoint_io import load_checkpoint
from motiondiff.training.config_checks import check_training_config
from motiondiff.training.devices import PROBED, describe_device
from motiondiff.training.diffusion_module import MotionDiffusion, foot_contact_line
from motiondiff.training.interrupts import TrainingInterrupted
from motiondiff.training.metrics_log import METRICS_FILE, truncate_from
from motiondiff.training.precision_probe import MIN_SPEEDUP, choose_precision, first_batch

log = logging.getLogger(__name__)

# Lightning's and the trackers' messages that say nothing about this run (tips, its device banner, warnings about
# choices the configs make on purpose, MLflow setting up its store); the run's own first lines say what matters.
LIGHTNING_CHATTER = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")
# MLflow creating its store and an experiment per run name (warned as "Experiment ... not found. Creating it.").
TRACKER_CHATTER = ("lightning.pytorch.loggers.mlflow", "mlflow.store.db.utils", "alembic")
IRRELEVANT_WARNINGS = (
    ".*smaller than the logging interval.*",
    ".*does not have many workers.*",
    ".*isinstance\\(treespec, LeafSpec\\)` is deprecated.*",
    ".*resuming from a checkpoint that ended before the epoch ended.*",
    ".*Checkpoint directory .* exists and is not empty.*",
)


def run(cfg: DictConfig) -> dict:
    """Train as configured; return the run directory, the module, the last checkpoint and the final metrics."""
    quiet_lightning()
    cfg = with_teacher(cfg)  # experiment=distill: the teacher run's data, network, schedule and loss
    run_dir = Path(cfg.paths.output_dir)
    first_process = rank_zero_only.rank == 0  # under DDP Lightning re-runs this command once per other rank
    ckpt_path = _resume_path(cfg)
    in_place = ckpt_path is not None and Path(ckpt_path).resolve().parent == (run_dir / "checkpoints").resolve()
    if first_process and not in_place and (run_dir / "checkpoints").exists():
        raise UserError(f"'{run_dir}' already holds checkpoints of another run; runs never share a directory.")
    check_training_config(cfg)
    check_tracker_packages(cfg.get("logger"))
    resumed_step = load_checkpoint(Path(ckpt_path))["global_step"] if in_place else None
    L.seed_everything(cfg.seed, workers=True, verbose=False)

    datamodule = instantiate(cfg.dataset)
    datamodule.setup("fit")
    module = build_module(cfg, datamodule.info)
    module.normalizer.load_state_dict(datamodule.normalizer.state_dict())
    if ckpt_path is not None and not in_place:
        check_checkpoint_statistics(Path(ckpt_path), datamodule.normalizer)
    attach_teacher(module, cfg)  # experiment=distill: the student starts from the teacher's weights
    _settle_precision(cfg, run_dir, in_place, module, datamodule)
    if first_process:
        save_resumed_config(cfg, run_dir, resumed_step) if in_place else save_run_config(cfg, run_dir)
    _compile_networks(module, cfg.get("compile"))
    loggers = build_loggers(cfg.get("logger"), run_dir, resumed_step)
    callbacks = callbacks_for([instantiate(c) for c in cfg.callbacks.values()], loggers)
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)
    if in_place and first_process:
        truncate_from(run_dir / "logs" / METRICS_FILE, resumed_step)  # the steps after the checkpoint are redone
    if first_process:
        log_hyperparameters(trainer.loggers, cfg, resumed_step)
    for line in opening_lines(cfg, run_dir, datamodule, module, trainer, resumed_step if in_place else None):
        log.info("%s", line)
    started = time.perf_counter()
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    except TrainingInterrupted as stop:
        finish_trackers(trainer.loggers, stop.exit_status)
        for line in interrupted_lines(stop, trainer, run_dir, time.perf_counter() - started):
            log.warning("%s", line)
        raise SystemExit(stop.exit_status) from None
    except BaseException:
        finish_trackers(trainer.loggers, exit_code=1)
        raise
    finish_trackers(trainer.loggers)
    checkpoint = trainer.checkpoint_callback.last_model_path if trainer.checkpoint_callback else None
    if trainer.is_global_zero:
        for line in closing_lines(trainer, module, run_dir, time.perf_counter() - started, resumed_step or 0):
            log.info("%s", line)
    return {
        "run_dir": run_dir,
        "module": module,
        "metrics": {key: float(value) for key, value in trainer.callback_metrics.items()},
        "checkpoint": checkpoint,
    }


def quiet_lightning() -> None:
    """Silence Lightning's tips, banners and the warnings about choices the configs make on purpose."""
    for name in LIGHTNING_CHATTER:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in TRACKER_CHATTER:
        logging.getLogger(name).setLevel(logging.ERROR)
    for pattern in IRRELEVANT_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)


def opening_lines(cfg, run_dir: Path, datamodule, module, trainer, resumed_step) -> list:
    """What the run is about to do: directory, data, network, device, steps."""
    items, batch = len(datamodule.train_set), datamodule.batch_size
    steps_per_epoch = len(datamodule.train_dataloader())
    info = datamodule.info
    network = module.network
    parameters = sum(p.numel() for p in network.parameters())
    steps = f"{trainer.max_steps} steps" if trainer.max_steps > 0 else f"{trainer.max_epochs} epochs"
    return [
        f"Run directory: {shown(run_dir)}" + (f" (resumed at step {resumed_step})" if resumed_step is not None else ""),
        f"Data: {info.kind} from {info.source} · {items} training items of {info.features} features per frame · "
        f"batch {batch}, {steps_per_epoch} steps per epoch",
        f"Network: {type(network).__name__}, {parameters / 1e6:.2f} M parameters (and an EMA copy)",
        *foot_contact_lines(cfg, module),
        f"Device: {describe_device(trainer.strategy.root_device, trainer.precision)}",
        f"Training: {steps}, validation every {trainer.check_val_every_n_epoch} epochs; checkpoints in "
        f"{shown(run_dir / 'checkpoints')} (last.ckpt also on Ctrl-C)",
        *tracker_lines(trainer.loggers, run_dir),
    ]


def foot_contact_lines(cfg, module) -> list:
    """The foot contact term's line where the config names one (3D dances), else none."""
    setting = cfg.get("module", {}).get("foot_contact_weight", 0)
    if not isinstance(module, MotionDiffusion) or (setting != "auto" and not module.foot_contact_weight):
        return []
    return [foot_contact_line(setting, module)]


def closing_lines(trainer, module, run_dir: Path, seconds: float, first_step: int) -> list:
    """The summary: steps, time, best validation loss, checkpoints, samples, the next commands."""
    steps = trainer.global_step - first_step
    speed = f"{seconds / max(1, steps):.3g} s/step"
    lines = [f"Finished: step {trainer.global_step}, {steps} steps in {duration(seconds)} ({speed})"]
    best = trainer.checkpoint_callback
    if best is not None and best.best_model_score is not None:
        lines.append(f"Best {best.monitor}: {float(best.best_model_score):.5g} in {shown(best.best_model_path)}")
    lines.append(f"Last checkpoint: {shown(run_dir / 'checkpoints' / 'last.ckpt')}")
    lines += curves_line(trainer)
    lines += viewer_lines(trainer.loggers, shown(run_dir))
    samples = run_dir / "generations" / "final"
    if samples.is_dir():
        lines.append(f"Samples: {shown(samples)} ({len(list(samples.glob('*.mp4')))} videos)")
    if isinstance(module, MotionDiffusion):
        lines.append(f"Next: python -m motiondiff.generate run_dir={shown(run_dir)}")
        lines.append(f"      python -m motiondiff.evaluate run_dir={shown(run_dir)}")
    else:
        lines.append(f"Next: python -m motiondiff.evaluate run_dir=<a text run> evaluator={shown(run_dir)}")
    return lines


def interrupted_lines(stop: TrainingInterrupted, trainer, run_dir: Path, seconds: float) -> list:
    """What an interrupted run says: where it stopped, what it saved, how to go on."""
    of = f" of {trainer.max_steps}" if trainer.max_steps > 0 else ""
    return [
        f"Stopped by {stop.signal_name} at step {stop.step}{of} after {duration(seconds)}; "
        f"saved {shown(stop.checkpoint)}",
        *curves_line(trainer),
        f"Resume (same directory, same logs): python -m motiondiff.train resume={shown(run_dir)}",
    ]


def curves_line(trainer) -> list:
    """'Curves: <run>/logs/curves.png' when the run has drawn them (callbacks.training_curves with logger=csv)."""
    drawn = [c.written for c in trainer.callbacks if isinstance(c, TrainingCurves) and c.written is not None]
    return [f"Curves: {shown(drawn[0])}"] if drawn else []


def _settle_precision(cfg: DictConfig, run_dir: Path, in_place: bool, module, datamodule) -> None:
    """trainer.precision=auto (a CPU with bf16 units): a run resumed in place keeps its saved choice; a new run takes
    bf16-mixed where its training step measures clearly faster (training.precision_probe), else 32-true."""
    if str(cfg.trainer.get("precision")) != PROBED:
        return
    if in_place:
        cfg.trainer.precision = load_run_config(run_dir).trainer.precision
        return
    choice, speedup = choose_precision(module, first_batch(datamodule))
    cfg.trainer.precision = choice
    log.info(
        "Precision: a training step ran %.2fx as fast in bf16-mixed as in float32 on this CPU, so %s "
        "(bf16-mixed from %.2fx; trainer.precision=32-true or bf16-mixed fixes it)",
        speedup,
        choice,
        MIN_SPEEDUP,
    )


def _compile_networks(module: L.LightningModule, options) -> None:
    """torch.compile the network and its EMA copy in place (their state-dict keys stay the same)."""
    if not options or not options.enabled:
        return
    for network in (module.network, getattr(module, "ema_network", None)):
        if network is not None:
            network.compile(mode=options.mode, backend=options.backend)
    log.info("torch.compile: mode=%s backend=%s", options.mode, options.backend)


def check_checkpoint_statistics(ckpt_path: Path, normalizer) -> None:
    """UserError when a run started from another run's checkpoint would standardise its batches with statistics other
    than those its checkpoint's normaliser (restored with the weights) decodes samples with."""
    state = load_checkpoint(ckpt_path).get("state_dict", {})
    for name, ours in normalizer.state_dict().items():
        saved = state.get(f"normalizer.{name}")
        if saved is None or saved.shape != ours.shape:
            return  # not a run of this data's kind: loading the weights says what differs
        if not torch.allclose(saved.float().cpu(), ours.float().cpu(), rtol=1e-5, atol=1e-7):
            raise UserError(
                f"ckpt_path={ckpt_path} was trained on data standardised with other statistics (its normaliser's "
                f"{name} differs from the dataset's), so batches and samples would be scaled two ways; give the "
                "dataset the statistics it trained with (a dataset=lab run saved before dataset.statistics_files: "
                "dataset.statistics_files=null)."
            )


def _resume_path(cfg: DictConfig):
    """The checkpoint to resume from: None, an existing file, or the newest last.ckpt for ckpt_path=last."""
    if cfg.ckpt_path is None:
        return None
    if cfg.ckpt_path == "last":
        return str(latest_checkpoint(cfg.paths.output_root, cfg.run_name))
    require_file(cfg.ckpt_path, "checkpoint (ckpt_path)", "check the path, or use ckpt_path=last")
    return str(cfg.ckpt_path)
