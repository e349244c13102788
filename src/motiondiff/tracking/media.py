"""Samples of the model as pictures in the trackers while it trains (callbacks.tracker_samples).

Every `every_n_epochs` validation epochs the first process draws `num_samples` motions from the EMA network
with the validation sampler (a fixed seed, so epochs compare): dance runs unconditionally, text runs for the
first validation captions at their lengths. Each tracker that shows pictures (TensorBoard, W&B, MLflow) gets a
film strip and an animation of them (tracking.trackers.log_pictures); with only the CSV logger nothing is drawn.
"""

import logging

import lightning as L
import torch

from motiondiff.core.checks import whole_number
from motiondiff.render.filmstrip import animation_frames, clips_of, filmstrip, gif_bytes
from motiondiff.tracking.trackers import log_pictures, takes_pictures
from motiondiff.training.diffusion_module import MotionDiffusion

log = logging.getLogger(__name__)

TAG = "val/samples"


def logging_step(trainer: L.Trainer) -> int:
    """The step Lightning logs this validation's metrics at (its count of stepped batches), so the pictures sit
    beside val/loss in every tracker; the global step where that count is not there."""
    return int(getattr(trainer.fit_loop.epoch_loop, "_batches_that_stepped", trainer.global_step))


class TrackerSamples(L.Callback):
    """Validation samples as a film strip and an animation, to every tracker that shows pictures."""

    def __init__(
        self, num_samples: int = 4, every_n_epochs: int = 10, strip_frames: int = 6, size: int = 192, seed: int = 0
    ):
        self.num_samples = whole_number("callbacks.tracker_samples.num_samples", num_samples, minimum=0)
        self.every_n_epochs = whole_number("callbacks.tracker_samples.every_n_epochs", every_n_epochs)
        self.strip_frames = whole_number("callbacks.tracker_samples.strip_frames", strip_frames)
        self.size = whole_number("callbacks.tracker_samples.size", size, minimum=64)
        self.seed = seed

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        due = (trainer.current_epoch + 1) % self.every_n_epochs == 0
        if trainer.sanity_checking or not due or not trainer.is_global_zero or self.num_samples == 0:
            return
        loggers = [logger for logger in trainer.loggers if takes_pictures(logger)]
        if not loggers or not isinstance(pl_module, MotionDiffusion) or pl_module.val_sampler is None:
            return
        clips, captions = self.draw(trainer, pl_module)
        strip = filmstrip(clips, pl_module.data, captions, self.strip_frames, self.size)
        frames, fps = animation_frames(clips, pl_module.data, captions, self.size)
        step = logging_step(trainer)
        caption = f"EMA samples after {trainer.global_step} steps ({type(pl_module.val_sampler).__name__})"
        log_pictures(loggers, TAG, strip, gif_bytes(frames, fps), step, caption)

    @torch.no_grad()
    def draw(self, trainer: L.Trainer, module: MotionDiffusion) -> tuple:
        """(clips (T_k, J, D) in the data's units, their captions or None) sampled by the EMA network."""
        generator = torch.Generator(device=module.device).manual_seed(self.seed)
        sampler = module.val_sampler
        if not module.conditional:
            with sampler.labelled("samples for the trackers"):
                samples = module.sample(self.num_samples, sampler, generator)  # (K, N, F)
            return clips_of(module.to_keypoints(samples)), None
        val_set = trainer.datamodule.val_set
        batch = trainer.datamodule.collate([val_set[i % len(val_set)] for i in range(self.num_samples)])
        mask = batch["mask"].to(module.device)  # (K, N)
        cond = {key: value.to(module.device) for key, value in batch["cond"].items()}
        with sampler.labelled("samples for the trackers"):
            samples = module.sample(self.num_samples, sampler, generator, mask.shape[1], cond=cond, mask=mask)
        lengths = mask.sum(dim=1).tolist()
        return clips_of(module.to_keypoints(samples), lengths), list(batch["caption"])
