"""The LightningModule: trains a network as a diffusion model, keeps an EMA of its weights.

Network, noise schedule, loss and validation sampler are separate objects built from
their own config groups; this class only wires them together. Sampling and generation
always use the EMA weights. Conditional data (batches with a "cond" dict, e.g. text)
are trained with condition dropout, so that the same network also predicts unconditionally
and samplers can apply classifier-free guidance.
"""

from typing import Callable, Optional

import lightning as L
import numpy as np
import torch
from torch import nn

from motiondiff.data.dance import KeypointNormalizer
from motiondiff.diffusion.denoiser import Denoiser, check_guidance_weight
from motiondiff.diffusion.loss import DiffusionLoss
from motiondiff.diffusion.samplers import Sampler
from motiondiff.diffusion.schedule import NoiseSchedule
from motiondiff.metrics.skeleton import bone_length_error
from motiondiff.errors import UserError
from motiondiff.types import FrameMask, Motion


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
        cond_drop_prob: float = 0.1,
        guidance_weight: float = 1.0,
        val_evaluator: Optional[str] = None,
        val_metrics_every_n_epochs: int = 10,
        val_metrics_items: int = 64,
    ):
        super().__init__()
        self.save_hyperparameters({"data_info": data_info})
        self.network, self.schedule, self.loss = network, schedule, loss
        self.ema = ema(network, include_online_model=False)
        self.normalizer = build_normalizer(data_info)
        self.optimizer_factory, self.lr_scheduler_factory = optimizer, lr_scheduler
        self.val_sampler, self.val_num_samples = val_sampler, val_num_samples
        self.sample_every_n_epochs = sample_every_n_epochs
        # Clip predicted clean samples to clip_x0 x the largest normalised training value (0 = off).
        self.x0_bound = clip_x0 * data_info["feature_abs_max"] if clip_x0 > 0 else None
        self.data_info = data_info
        if not 0.0 <= cond_drop_prob < 1.0:
            raise UserError(f"module.cond_drop_prob={cond_drop_prob} must lie in [0, 1) (0.1 is usual for guidance).")
        self.cond_drop_prob = cond_drop_prob
        self.guidance_weight = check_guidance_weight(guidance_weight)
        # Text runs: FD and R@3 of generations for the first val_metrics_items validation captions, measured
        # with a trained evaluator every val_metrics_every_n_epochs epochs (None = off).
        self.val_evaluator_path, self.val_metrics_every = val_evaluator, val_metrics_every_n_epochs
        self.val_metrics_items = val_metrics_items
        self._val_evaluator: list = []  # loaded on first use; a list so it is not a submodule (not in checkpoints)

    @staticmethod
    def check_network_class(network_class: type) -> None:
        """UserError unless network_class is a denoiser (the evaluator's encoders are not)."""
        if hasattr(network_class, "encode_motion"):
            raise UserError(
                f"network={network_class.__name__} is the motion-text evaluator's network, not a denoiser; "
                "train it with experiment=evaluator (module=evaluator), or pick a diffusion network."
            )

    @classmethod
    def from_config(cls, cfg, network: nn.Module, data_info: dict) -> "MotionDiffusion":
        """Build from a composed training config: schedule, loss, optimizer, ... from their groups."""
        from hydra.utils import instantiate

        from motiondiff.runs import module_options

        cls.check_network_class(type(network))
        return cls(
            network=network,
            schedule=instantiate(cfg.schedule),
            loss=instantiate(cfg.loss),
            optimizer=instantiate(cfg.optimizer),
            lr_scheduler=instantiate(cfg.lr_scheduler),
            ema=instantiate(cfg.ema),
            data_info=data_info,
            val_sampler=instantiate(cfg.val_sampler),
            **module_options(cfg),
        )

    @property
    def ema_network(self) -> nn.Module:
        return self.ema.ema_model

    @property
    def conditional(self) -> bool:
        """True when the data carries a condition (text), so sampling needs one."""
        return "text_dim" in self.data_info

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        cond = self.drop_conditions(batch.get("cond"))
        loss = self.loss(self.network, self.schedule, batch["motion"], batch["mask"], cond=cond)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["motion"].shape[0])
        return loss

    def drop_conditions(self, cond: Optional[dict]) -> Optional[dict]:
        """The condition with a random `drop` flag per sample (probability cond_drop_prob): the null condition."""
        if cond is None:
            return None
        batch = cond["text_pooled"].shape[0]
        drop = torch.rand(batch, device=self.device) < self.cond_drop_prob  # (B,)
        return {**cond, "drop": drop}

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        self.ema.update()

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        x0, mask = batch["motion"], batch["mask"]
        # The same steps and noise every epoch, so validation losses are comparable.
        generator = torch.Generator(device=x0.device).manual_seed(batch_idx)
        t = torch.randint(0, self.schedule.num_steps, (x0.shape[0],), generator=generator, device=x0.device)
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        for name, network in (("val/loss", self.network), ("val/loss_ema", self.ema_network)):
            loss = self.loss(network, self.schedule, x0, mask, cond=batch.get("cond"), t=t, noise=noise)
            self.log(name, loss, prog_bar=name == "val/loss_ema", batch_size=x0.shape[0], sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        if self.conditional:
            if self.val_evaluator_path and (self.current_epoch + 1) % self.val_metrics_every == 0:
                self.log_generation_metrics()
            return
        if self.val_sampler is None or self.val_num_samples < 1:
            return
        if (self.current_epoch + 1) % self.sample_every_n_epochs != 0:
            return
        generator = torch.Generator(device=self.device).manual_seed(0)
        samples = self.sample(self.val_num_samples, self.val_sampler, generator)  # (K, N, F)
        keypoints = self.to_keypoints(samples)  # (K, N, J, D)
        error = bone_length_error(keypoints, self.data_info["bone_lengths"], self.data_info["parents"])
        self.log("val/sample_bone_length_error", error, sync_dist=True)

    def evaluator(self):
        """The trained evaluator named by val_evaluator, loaded once on this module's device."""
        if not self._val_evaluator:
            from motiondiff.evaluation.evaluator_run import check_compatible, load_evaluator

            evaluator = load_evaluator(self.val_evaluator_path, str(self.device))
            check_compatible(evaluator, self.data_info, "this training run")
            if evaluator.module.description.get("text_encoder") != self.data_info["text_encoder"]:
                raise UserError(
                    f"module.val_evaluator '{evaluator.run_dir}' reads {evaluator.module.description.get('text_encoder')} "
                    f"captions but this run uses {self.data_info['text_encoder']}; give an evaluator trained with the same text_encoder."
                )
            self._val_evaluator.append(evaluator.module.eval())
        return self._val_evaluator[0]

    @torch.no_grad()
    def log_generation_metrics(self) -> None:
        """Log val/FD and val/R@3 of one generation per caption for the first val_metrics_items validation items.

        Items are shared out across processes; the torchmetrics states sync, so every process logs the same values.
        """
        from motiondiff.metrics.text_motion import FrechetDistance, RetrievalPrecision

        evaluator, datamodule = self.evaluator(), self.trainer.datamodule
        count = max(min(self.val_metrics_items, len(datamodule.val_set)), self.trainer.world_size)  # every rank gets items
        indices = list(range(self.global_rank, count, self.trainer.world_size))
        batch = datamodule.collate([datamodule.val_set[i % len(datamodule.val_set)] for i in indices])
        mask, cond = batch["mask"].to(self.device), {k: v.to(self.device) for k, v in batch["cond"].items()}
        generator = torch.Generator(device=self.device).manual_seed(0)
        samples = self.sample(len(indices), self.val_sampler, generator, mask.shape[1], cond=cond, mask=mask)  # (B, N, F)
        real = evaluator.embed_motion(self.normalizer.denormalize(batch["motion"].to(self.device)), mask)  # (B, L)
        fake = evaluator.embed_motion(self.normalizer.denormalize(samples), mask)  # (B, L)
        text = evaluator.embed_text(cond["text_tokens"], cond["text_mask"])  # (B, L)
        fd = FrechetDistance(num_features=real.shape[1]).to(self.device)
        fd.update(real, real=True)
        fd.update(fake, real=False)
        retrieval = RetrievalPrecision(batch_size=32, top_k=3).to(self.device)
        retrieval.update(torch.nn.functional.normalize(text, dim=-1), torch.nn.functional.normalize(fake, dim=-1))
        self.log("val/FD", fd.compute().float())
        self.log("val/R@3", retrieval.compute()["R@3"].float())

    @torch.no_grad()
    def sample(
        self,
        num_samples: int,
        sampler: Sampler,
        generator: Optional[torch.Generator] = None,
        frames: Optional[int] = None,
        known: Optional[Motion] = None,
        known_mask: Optional[torch.Tensor] = None,
        cond: Optional[dict] = None,
        mask: Optional[FrameMask] = None,
        guidance_weight: Optional[float] = None,
    ) -> Motion:
        """`num_samples` normalised motions (K, frames, feats) from the EMA network.

        Conditional runs take `cond` (the network's condition dict, batch K) and `mask` (K, frames)
        for motions of different lengths; guidance_weight defaults to the run's module.guidance_weight.
        """
        if self.conditional and cond is None:
            raise UserError("this model is text-conditioned: give a prompt (prompt=... or prompts_file=...).")
        if not self.conditional and cond is not None:
            raise UserError("this model is unconditional (trained without text): drop prompt/prompts_file.")
        shape = (num_samples, frames or self.data_info.get("window") or self.data_info["max_frames"], self.data_info["features"])
        noise = torch.randn(shape, generator=generator, device=self.device)
        weight = self.guidance_weight if guidance_weight is None else guidance_weight
        denoiser = Denoiser(
            self.ema_network, self.schedule, self.loss.prediction, cond=cond, mask=mask, clip_x0=self.x0_bound,
            guidance_weight=weight,
        )  # fmt: skip
        x = sampler.sample(denoiser, self.schedule, noise, generator=generator, known=known, known_mask=known_mask)
        return x if mask is None else x * mask.unsqueeze(-1).to(x.dtype)  # padded frames zeroed

    def to_keypoints(self, features: Motion) -> np.ndarray:
        """Normalised features (..., frames, feats) -> float32 positions (..., frames, joints, dims), original units.

        Dance runs: 2D keypoints. Text-motion runs: 3D joints recovered from the feature representation.
        """
        raw = self.normalizer.denormalize(features.to(self.device).float())
        representation = self.data_info.get("representation")
        if representation is not None:
            from motiondiff.data.representations import get_representation

            raw = get_representation(representation).to_joints(raw)  # (..., frames, joints, 3)
        return raw.cpu().numpy().astype(np.float32)

    def configure_optimizers(self) -> dict:
        optimizer = self.optimizer_factory(params=self.network.parameters())
        scheduler = self.lr_scheduler_factory(optimizer=optimizer, total_steps=self.trainer.estimated_stepping_batches)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def build_normalizer(data_info: dict) -> nn.Module:
    """The (empty) normaliser for the data described by data_info; its statistics load with the weights."""
    if data_info.get("representation") is None:
        return KeypointNormalizer(dims=data_info["dims"])
    from motiondiff.data.text_motion import FeatureNormalizer

    return FeatureNormalizer(data_info["features"])
