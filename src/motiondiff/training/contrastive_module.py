"""The LightningModule that trains the motion-text evaluator: TMR-style contrastive training of MotionTextEncoders.

Loss (Petrovich et al. 2023): a symmetric InfoNCE between the caption and motion latents (mu,
unit-normalised, logits = cosine / temperature), where pairs of different items whose captions
are near duplicates (cosine of their pooled text embeddings > negative_threshold) are not used as
negatives. With a VAE network (network.vae=true) TMR's other terms are added: reconstruction of
the motion from its own latent and from its caption's latent (smooth L1 on valid frames), KL of
both posteriors to N(0, I), and a smooth L1 between the two latents; latents are sampled by
reparameterisation in training, mu otherwise.

Validation logs val/loss (the contrastive term) and text->motion val/R@1, val/R@3 over the whole
validation set (shuffled once with a fixed seed, batches of val_batch_size, as evaluation does).
Evaluation (evaluation.evaluators.trained) uses `embed_motion`, `embed_text` and `description`.
"""

from contextlib import contextmanager
from typing import Callable, Optional

import lightning as L
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torch import Tensor

from motiondiff.core.checks import whole_number
from motiondiff.core.errors import UserError
from motiondiff.core.types import FrameMask, Motion, TextPooled, TextTokens, TokenMask
from motiondiff.data.info import TextMotionData
from motiondiff.metrics.retrieval import r_precision
from motiondiff.networks.text_motion_encoders import MotionTextEncoders
from motiondiff.training.clipping import clip_gradients

VAL_SHUFFLE_SEED = 0  # the validation R@k batches are the same every epoch


def info_nce(
    text: Tensor, motion: Tensor, temperature: float, pooled: Optional[TextPooled] = None, threshold: float = 1.0
) -> Tensor:
    """Symmetric InfoNCE of paired latents (B, D); negatives whose captions' pooled cosine > threshold are dropped."""
    assert text.shape == motion.shape and text.ndim == 2, (tuple(text.shape), tuple(motion.shape))
    logits = (
        F.normalize(text, dim=-1) @ F.normalize(motion, dim=-1).T / temperature
    )  # (B, B), text rows, motion columns
    if pooled is not None and threshold < 1.0:
        unit = F.normalize(pooled.to(logits.dtype), dim=-1)  # (B, Dt)
        duplicate = (unit @ unit.T) > threshold  # (B, B) near-identical captions
        duplicate.fill_diagonal_(False)  # the positive pair always stays
        logits = logits.masked_fill(duplicate, float("-inf"))  # (B, B)
    targets = torch.arange(len(logits), device=logits.device)  # (B,)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


def masked_smooth_l1(prediction: Motion, target: Motion, mask: FrameMask) -> Tensor:
    """Smooth L1 averaged over the valid frames (mask True) and the features."""
    error = F.smooth_l1_loss(prediction, target, reduction="none")  # (B, N, F)
    weight = mask[:, :, None].to(error.dtype)  # (B, N, 1)
    return (error * weight).sum() / (weight.sum() * error.shape[-1]).clamp_min(1.0)


def kl_to_standard_normal(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)), averaged over batch and latent dimensions."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).mean()


def reparameterise(mu: Tensor, logvar: Tensor) -> Tensor:
    """A sample mu + sigma * eps (B, D)."""
    return mu + (0.5 * logvar).exp() * torch.randn_like(mu)


class MotionTextContrastive(L.LightningModule):
    """Trains motion and text encoders into one latent space; embeds raw motions and captions for evaluation."""

    def __init__(
        self,
        network: MotionTextEncoders,
        optimizer: Callable,
        lr_scheduler: Callable,
        data: TextMotionData,
        temperature: float = 0.1,
        negative_threshold: float = 0.8,
        contrastive_weight: float = 1.0,
        recon_weight: float = 1.0,
        kl_weight: float = 1e-5,
        latent_weight: float = 1e-5,
        val_batch_size: int = 32,
    ):
        super().__init__()
        self.check_network_class(type(network))
        check_options(
            temperature, negative_threshold, contrastive_weight, recon_weight, kl_weight, latent_weight, val_batch_size
        )
        self.save_hyperparameters({"data_info": data.to_dict()}, logger=False)  # trackers get the run config
        self.network, self.data = network, data
        self.normalizer = data.make_normalizer()
        self.optimizer_factory, self.lr_scheduler_factory = optimizer, lr_scheduler
        self.temperature, self.negative_threshold = temperature, negative_threshold
        self.weights = {
            "contrastive": contrastive_weight,
            "recon": recon_weight,
            "kl": kl_weight,
            "latent": latent_weight,
        }
        self.val_batch_size = val_batch_size
        self._val_text: list = []  # (B, D) text mu per validation batch
        self._val_motion: list = []  # (B, D) motion mu per validation batch

    @staticmethod
    def check_network_class(network_class: type) -> None:
        """UserError unless network_class is the motion-text encoder pair."""
        if not issubclass(network_class, MotionTextEncoders):
            raise UserError(
                f"module=evaluator trains motion and text encoders, not a {network_class.__name__}; use network=tmr."
            )

    @classmethod
    def from_config(
        cls, cfg, network: MotionTextEncoders, data: TextMotionData, options: dict
    ) -> "MotionTextContrastive":
        """Build from a composed training config: optimizer, lr_scheduler from their groups, `options` from `module`."""
        return cls(
            network=network,
            optimizer=instantiate(cfg.optimizer),
            lr_scheduler=instantiate(cfg.lr_scheduler),
            data=data,
            **options,
        )

    # ------------------------------------------------------------ losses

    def contrastive(self, text: Tensor, motion: Tensor, pooled: Optional[TextPooled]) -> Tensor:
        """The run's InfoNCE (its temperature and negative filtering) of latents (B, D)."""
        return info_nce(text, motion, self.temperature, pooled, self.negative_threshold)

    def losses(self, batch: dict) -> dict:
        """Every loss term of a batch (unweighted) and their weighted sum under "loss"."""
        motion, mask, cond = batch["motion"], batch["mask"], batch["cond"]
        text_mu, text_logvar = self.network.encode_text(cond["text_tokens"], cond["text_mask"])  # (B, D), (B, D) | None
        motion_mu, motion_logvar = self.network.encode_motion(motion, mask)  # (B, D), (B, D) | None
        terms = {"contrastive": self.contrastive(text_mu, motion_mu, cond.get("text_pooled"))}
        loss = self.weights["contrastive"] * terms["contrastive"]
        if self.network.vae:
            sampled = self.training
            text_z = reparameterise(text_mu, text_logvar) if sampled else text_mu  # (B, D)
            motion_z = reparameterise(motion_mu, motion_logvar) if sampled else motion_mu  # (B, D)
            terms["recon_motion"] = masked_smooth_l1(self.network.decode(motion_z, mask), motion, mask)
            terms["recon_text"] = masked_smooth_l1(self.network.decode(text_z, mask), motion, mask)
            terms["kl_motion"] = kl_to_standard_normal(motion_mu, motion_logvar)
            terms["kl_text"] = kl_to_standard_normal(text_mu, text_logvar)
            terms["latent"] = F.smooth_l1_loss(text_z, motion_z)
            loss = loss + self.weights["recon"] * (terms["recon_motion"] + terms["recon_text"])
            loss = loss + self.weights["kl"] * (terms["kl_motion"] + terms["kl_text"])
            loss = loss + self.weights["latent"] * terms["latent"]
        return {"loss": loss, **terms, "text_mu": text_mu.detach(), "motion_mu": motion_mu.detach()}

    # ------------------------------------------------------------ training and validation

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        losses = self.losses(batch)
        size = batch["motion"].shape[0]
        for name, value in losses.items():
            if not name.endswith("_mu"):
                self.log(f"train/{name}", value, prog_bar=name == "loss", batch_size=size)
        return losses["loss"]

    def on_validation_epoch_start(self) -> None:
        self._val_text, self._val_motion = [], []

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        losses = self.losses(batch)
        self.log("val/loss", losses["contrastive"], batch_size=batch["motion"].shape[0], sync_dist=True)
        self._val_text.append(losses["text_mu"])
        self._val_motion.append(losses["motion_mu"])

    def on_validation_epoch_end(self) -> None:
        if not self._val_text:
            return
        text, motion = torch.cat(self._val_text), torch.cat(self._val_motion)  # (N, D) each
        if self.trainer.world_size > 1:
            text = self.all_gather(text).flatten(0, 1)  # (world * N, D)
            motion = self.all_gather(motion).flatten(0, 1)  # (world * N, D)
        order = torch.randperm(len(text), generator=torch.Generator().manual_seed(VAL_SHUFFLE_SEED)).to(
            text.device
        )  # (N,)
        text, motion = F.normalize(text[order], dim=-1), F.normalize(motion[order], dim=-1)  # (N, D) unit rows
        scores = r_precision(
            text, motion, batch_size=self.val_batch_size, top_k=3
        )  # fewer than a batch: one batch of all
        self.log("val/R@1", float(scores["R@1"]), sync_dist=True)
        self.log("val/R@3", float(scores["R@3"]), prog_bar=True, sync_dist=True)
        self._val_text, self._val_motion = [], []

    def configure_optimizers(self) -> dict:
        optimizer = self.optimizer_factory(params=self.network.parameters())
        scheduler = self.lr_scheduler_factory(optimizer=optimizer, total_steps=self.trainer.estimated_stepping_batches)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        clip_gradients(self, optimizer, gradient_clip_val, gradient_clip_algorithm)  # fused optimizers too

    # ------------------------------------------------------------ embedding API (evaluate.py)

    @torch.no_grad()
    def embed_motion(self, raw_features: Motion, mask: FrameMask) -> Tensor:
        """Un-normalised motions (B, N, F) and frame mask (B, N) -> motion latents mu (B, D), not unit-normalised."""
        features = self.normalizer.normalize(raw_features.to(self.device, torch.float32))  # (B, N, F)
        with evaluation_mode(self.network):
            return self.network.encode_motion(features, mask.to(self.device))[0]  # (B, D)

    @torch.no_grad()
    def embed_text(self, tokens: TextTokens, token_mask: TokenMask) -> Tensor:
        """Caption token embeddings (B, L, Dt) with their mask (B, L) -> text latents mu (B, D), not unit-normalised."""
        with evaluation_mode(self.network):
            return self.network.encode_text(tokens.to(self.device, torch.float32), token_mask.to(self.device))[
                0
            ]  # (B, D)

    @property
    def description(self) -> TextMotionData:
        """What this evaluator was trained for (data and text encoder); evaluation refuses other data."""
        return self.data


@contextmanager
def evaluation_mode(module: torch.nn.Module):
    """The module in eval mode (no dropout) inside the block, its previous mode restored after."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


def check_options(
    temperature, negative_threshold, contrastive_weight, recon_weight, kl_weight, latent_weight, val_batch_size
) -> None:
    """Raise a UserError naming the first invalid module option."""
    if not temperature > 0:
        raise UserError(f"module.temperature={temperature} must be > 0 (0.1 is usual).")
    if not 0 < negative_threshold <= 1:
        raise UserError(
            f"module.negative_threshold={negative_threshold} must lie in (0, 1] (0.8 is usual; 1 = no filtering)."
        )
    weights = dict(
        contrastive_weight=contrastive_weight,
        recon_weight=recon_weight,
        kl_weight=kl_weight,
        latent_weight=latent_weight,
    )
    for key, value in weights.items():
        if not value >= 0:
            raise UserError(f"module.{key}={value} must be >= 0.")
    whole_number("module.val_batch_size", val_batch_size, minimum=2, why="32 is the standard protocol")
