"""The LightningModule: trains a network as a diffusion model, keeps an EMA of its weights.

Network, noise schedule, loss and validation sampler are separate objects built from
their own config groups; this class only wires them together. Sampling and generation
always use the EMA weights.
"""

from typing import Callable, Optional

import lightning as L
import numpy as np
import torch
from torch import nn

from motiondiff.data.dance import KeypointNormalizer
from motiondiff.diffusion.denoiser import Denoiser
from motiondiff.diffusion.loss import DiffusionLoss
from motiondiff.diffusion.samplers import Sampler
from motiondiff.diffusion.schedule import NoiseSchedule
from motiondiff.metrics.skeleton import bone_length_error
from motiondiff.types import Motion


class MotionDiffusion(L.LightningModule):
    """Diffusion training (with EMA) and sampling for any network mapping (x_t, t) to x's shape."""

    def __init__(
        self,
        network: nn.Module,
        schedule: NoiseSchedule,
        loss: DiffusionLoss,
        optimizer: Callable,
        lr_scheduler: Callable,
        ema: Callable,
        data_info: dict,
        val_sampler: Optional[Sampler] = None,
        val_num_samples: int = 8,
        sample_every_n_epochs: int = 10,
        clip_x0: float = 0.0,
    ):
        super().__init__()
        self.save_hyperparameters({"data_info": data_info})
        self.network, self.schedule, self.loss = network, schedule, loss
        self.ema = ema(network, include_online_model=False)
        self.normalizer = KeypointNormalizer(dims=data_info["dims"])
        self.optimizer_factory, self.lr_scheduler_factory = optimizer, lr_scheduler
        self.val_sampler, self.val_num_samples = val_sampler, val_num_samples
        self.sample_every_n_epochs = sample_every_n_epochs
        # Clip predicted clean samples to clip_x0 x the largest normalised training value (0 = off).
        self.x0_bound = clip_x0 * data_info["feature_abs_max"] if clip_x0 > 0 else None
        self.data_info = data_info

    @property
    def ema_network(self) -> nn.Module:
        return self.ema.ema_model

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self.loss(self.network, self.schedule, batch["motion"], batch["mask"])
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["motion"].shape[0])
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        self.ema.update()

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        x0, mask = batch["motion"], batch["mask"]
        # The same steps and noise every epoch, so validation losses are comparable.
        generator = torch.Generator(device=x0.device).manual_seed(batch_idx)
        t = torch.randint(0, self.schedule.num_steps, (x0.shape[0],), generator=generator, device=x0.device)
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        for name, network in (("val/loss", self.network), ("val/loss_ema", self.ema_network)):
            loss = self.loss(network, self.schedule, x0, mask, t=t, noise=noise)
            self.log(name, loss, prog_bar=name == "val/loss_ema", batch_size=x0.shape[0], sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        if self.val_sampler is None or self.trainer.sanity_checking or self.val_num_samples < 1:
            return
        if (self.current_epoch + 1) % self.sample_every_n_epochs != 0:
            return
        generator = torch.Generator(device=self.device).manual_seed(0)
        samples = self.sample(self.val_num_samples, self.val_sampler, generator)  # (K, N, F)
        keypoints = self.to_keypoints(samples)  # (K, N, J, D)
        error = bone_length_error(keypoints, self.data_info["bone_lengths"], self.data_info["parents"])
        self.log("val/sample_bone_length_error", error, sync_dist=True)

    @torch.no_grad()
    def sample(
        self,
        num_samples: int,
        sampler: Sampler,
        generator: Optional[torch.Generator] = None,
        frames: Optional[int] = None,
        known: Optional[Motion] = None,
        known_mask: Optional[torch.Tensor] = None,
    ) -> Motion:
        """`num_samples` normalised motions (K, frames, feats) from the EMA network."""
        shape = (num_samples, frames or self.data_info["window"], self.data_info["features"])
        noise = torch.randn(shape, generator=generator, device=self.device)
        denoiser = Denoiser(self.ema_network, self.schedule, self.loss.prediction, clip_x0=self.x0_bound)
        return sampler.sample(denoiser, self.schedule, noise, generator=generator, known=known, known_mask=known_mask)

    def to_keypoints(self, features: Motion) -> np.ndarray:
        """Normalised features (..., frames, feats) -> float32 keypoints (..., frames, joints, dims), original units."""
        return self.normalizer.denormalize(features.to(self.device).float()).cpu().numpy().astype(np.float32)

    def configure_optimizers(self) -> dict:
        optimizer = self.optimizer_factory(params=self.network.parameters())
        scheduler = self.lr_scheduler_factory(optimizer=optimizer, total_steps=self.trainer.estimated_stepping_batches)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
