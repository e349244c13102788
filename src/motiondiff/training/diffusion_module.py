"""The LightningModule: trains a network as a diffusion model, keeps an EMA of its weights.

Network, noise schedule, loss and validation sampler are separate objects built from
their own config groups; this class only wires them together. Sampling and generation
always use the EMA weights. Conditional data (batches with a "cond" dict, e.g. text)
are trained with condition dropout, so that the same network also predicts unconditionally
and samplers can apply classifier-free guidance. A network that reads known frames (punet with
`network.context=true`) is trained with a random known prefix or suffix on a `context_prob` share
of the windows, and is shown the known frames whenever it samples with some. What the data is (its
width, skeleton, whether it is conditional, how features become positions) comes from its typed
description (data.info).
"""

from typing import Callable, Optional, Union

import lightning as L
import numpy as np
import torch
from hydra.utils import instantiate
from torch import nn

from motiondiff.core.errors import UserError
from motiondiff.core.types import FrameMask, Motion
from motiondiff.data.info import MotionData, RotationDanceData
from motiondiff.data.kinematics.contacts import CONTACT_SPEED
from motiondiff.diffusion.chaining import WindowedNetwork
from motiondiff.diffusion.denoiser import Denoiser, check_guidance_weight
from motiondiff.diffusion.loss import DiffusionLoss
from motiondiff.diffusion.samplers import Sampler
from motiondiff.diffusion.schedule import NoiseSchedule
from motiondiff.metrics.skeleton import bone_length_error
from motiondiff.networks.text_motion_encoders import MotionTextEncoders
from motiondiff.training.clipping import clip_gradients

# module.foot_contact_weight=auto's weight where feet roll through a contact: the 3D walk's jitter 1.35 -> 1.14 and
# skating 1.13 -> 0.76 with it, Gangnam-Style's 1.19 -> 1.02 (docs/dance3d.md, "the foot contact term on human feet").
FOOT_CONTACT_AUTO = 1.0


class MotionDiffusion(L.LightningModule):
    """Diffusion training (with EMA) and sampling for any network mapping (x_t, t) to x's shape."""

    # The network's dtype while sampling: runs.loading sets it for generate/evaluate/edit/app (precision=auto|32|bf16);
    # in training, trainer.precision's autocast covers validation sampling.
    sampling_dtype: Optional[torch.dtype] = None

    def __init__(
        self,
        network: nn.Module,
        schedule: NoiseSchedule,
        loss: DiffusionLoss,
        optimizer: Callable,
        lr_scheduler: Callable,
        ema: Callable,
        data: MotionData,
        val_sampler: Optional[Sampler] = None,
        val_num_samples: int = 8,
        sample_every_n_epochs: int = 10,
        clip_x0: float = 0.0,
        cond_drop_prob: float = 0.1,
        guidance_weight: float = 1.0,
        context_prob: float = 0.0,
        foot_contact_weight: Union[float, str] = 0.0,
    ):
        super().__init__()
        self.network, self.schedule, self.loss = network, schedule, loss
        self.ema = ema(network, include_online_model=False)
        self.normalizer = data.make_normalizer()
        self.optimizer_factory, self.lr_scheduler_factory = optimizer, lr_scheduler
        self.val_sampler, self.val_num_samples = val_sampler, val_num_samples
        self.sample_every_n_epochs = sample_every_n_epochs
        # Clip predicted clean samples to clip_x0 x the largest normalised training value (0 = off).
        self.x0_bound = clip_x0 * data.feature_abs_max if clip_x0 > 0 else None
        self.data = data
        if not 0.0 <= cond_drop_prob < 1.0:
            raise UserError(f"module.cond_drop_prob={cond_drop_prob} must lie in [0, 1) (0.1 is usual for guidance).")
        self.cond_drop_prob = cond_drop_prob
        self.guidance_weight = check_guidance_weight(guidance_weight)
        self.context_prob = check_context(context_prob, network)
        self.foot_contact_weight = check_foot_contact(foot_contact_weight, data, loss)
        # The checkpoint keeps the data's description and the weight `auto` chose; trackers get the run config.
        self.save_hyperparameters(
            {"data_info": data.to_dict(), "foot_contact_weight": self.foot_contact_weight}, logger=False
        )

    @staticmethod
    def check_network_class(network_class: type) -> None:
        """UserError unless network_class is a denoiser (the evaluator's encoders are not)."""
        if issubclass(network_class, MotionTextEncoders):
            raise UserError(
                f"network={network_class.__name__} is the motion-text evaluator's network, not a denoiser; "
                "train it with experiment=evaluator (module=evaluator), or pick a diffusion network."
            )

    @classmethod
    def from_config(cls, cfg, network: nn.Module, data: MotionData, options: dict) -> "MotionDiffusion":
        """Build from a composed training config: schedule, loss, optimizer... from groups; `options` from `module`."""
        cls.check_network_class(type(network))
        return cls(
            network=network,
            schedule=instantiate(cfg.schedule),
            loss=instantiate(cfg.loss),
            optimizer=instantiate(cfg.optimizer),
            lr_scheduler=instantiate(cfg.lr_scheduler),
            ema=instantiate(cfg.ema),
            data=data,
            val_sampler=instantiate(cfg.val_sampler),
            **options,
        )

    @property
    def ema_network(self) -> nn.Module:
        return self.ema.ema_model

    @property
    def conditional(self) -> bool:
        """True when the data carries a condition (text), so sampling needs one."""
        return self.data.conditional

    @property
    def reads_context(self) -> bool:
        """True when the network takes known frames as input (punet with network.context=true)."""
        return self.context_prob > 0

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        cond = self.drop_conditions(batch.get("cond"))
        if self.reads_context:
            cond = known_context(batch["motion"], random_known_frames(batch["motion"], self.context_prob))
        extra = self.weighted_foot_contact if self.foot_contact_weight > 0 else None
        loss = self.loss(self.network, self.schedule, batch["motion"], batch["mask"], cond=cond, extra=extra)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["motion"].shape[0])
        return loss

    def weighted_foot_contact(self, x0_hat: Motion, x0: Motion) -> torch.Tensor:
        """foot_contact_weight x `foot_contact_term`, the term logged as train/foot_contact."""
        term = self.foot_contact_term(x0_hat, x0)
        self.log("train/foot_contact", term.detach(), batch_size=x0.shape[0])
        return self.foot_contact_weight * term

    def foot_contact_term(self, x0_hat: Motion, x0: Motion) -> torch.Tensor:
        """The mean squared horizontal step of the predicted feet (positions by forward kinematics) where the real
        feet are planted (low and slow: data.kinematics.contacts), in units of the contact speed limit per frame (MDM's
        foot contact loss, Tevet et al. 2023). In float32 (float64 where given) under any autocast: bf16 kinematics
        put the walk's feet up to 2 cm off a frame, twice the contact limit."""
        contacts = self.data.foot_contacts  # for foot_positions: forward kinematics of the feet's chains only
        with torch.autocast(x0.device.type, enabled=False):
            with torch.no_grad():
                real = self.data.foot_positions(self.normalizer.denormalize(at_least_float32(x0)))
                planted = contacts.in_contact(real)  # (B, N-1, feet)
            predicted = self.data.foot_positions(self.normalizer.denormalize(at_least_float32(x0_hat)))
            steps = contacts.horizontal_steps(predicted)  # (B, N-1, feet, 2)
            limit = CONTACT_SPEED * contacts.height / contacts.fps  # metres a frame
            slide = (steps / limit).pow(2).sum(-1)  # (B, N-1, feet)
            return (slide * planted).sum() / planted.sum().clamp(min=1)

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
        """Dance runs: every sample_every_n_epochs epochs, log the bone-length error of a few EMA samples."""
        if self.trainer.sanity_checking or self.conditional or self.val_sampler is None or self.val_num_samples < 1:
            return
        if (self.current_epoch + 1) % self.sample_every_n_epochs != 0:
            return
        generator = torch.Generator(device=self.device).manual_seed(0)
        with self.val_sampler.labelled("validation samples"):
            samples = self.sample(self.val_num_samples, self.val_sampler, generator)  # (K, N, F)
        keypoints = self.to_keypoints(samples)  # (K, N, J, D)
        error = bone_length_error(keypoints, self.data.bone_lengths, self.data.parents)
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
        cond: Optional[dict] = None,
        mask: Optional[FrameMask] = None,
        guidance_weight: Optional[float] = None,
        source: Optional[Motion] = None,
        strength: Optional[float] = None,
        overlap: Optional[int] = None,
    ) -> Motion:
        """`num_samples` normalised motions (K, frames, feats) from the EMA network.

        Conditional runs take `cond` (the network's condition dict, batch K) and `mask` (K, frames)
        for motions of different lengths; guidance_weight defaults to the run's module.guidance_weight.
        With `source` (K, frames, feats) and `strength` in (0, 1], the sampling starts from the source noised to
        `sdedit_start` instead of from noise (SDEdit: a variation of the source that keeps its coarse course).
        With `overlap`, `frames` longer than the window are denoised as windows sharing `overlap` frames, blended at
        every step (`diffusion.chaining.WindowedNetwork`).
        """
        if self.conditional and cond is None:
            raise UserError("this model is text-conditioned: give a prompt (prompt=... or prompts_file=...).")
        if not self.conditional and cond is not None:
            raise UserError("this model is unconditional (trained without text): drop prompt/prompts_file.")
        shape = (num_samples, frames or self.data.sample_frames, self.data.features)
        noise = torch.randn(shape, generator=generator, device=self.device)
        assert (source is None) == (strength is None), "give source and strength together"
        start = None
        if source is not None:
            assert source.shape == shape, (source.shape, shape)
            source, start = source.to(noise), self.sdedit_start(sampler, strength)
        if self.reads_context and known is not None and overlap is None:  # the network also reads the fixed frames
            shown = trained_pattern(fixed_frames(known_mask).to(self.device))  # (B, N); other patterns: replacement
            cond, guidance_weight = known_context(known, shown), 1.0  # not guided
        denoiser = self.denoiser(cond, mask, guidance_weight, overlap)
        x = sampler.sample(
            denoiser,
            self.schedule,
            noise,
            generator=generator,
            known=known,
            known_mask=known_mask,
            source=source,
            start=start,
        )
        return x if mask is None else x * mask.unsqueeze(-1).to(x.dtype)  # padded frames zeroed

    def sdedit_start(self, sampler: Sampler, strength: float) -> int:
        """The step of the sampler's grid nearest to `strength` x the schedule's last step, where SDEdit starts."""
        assert 0 < strength <= 1, strength
        return sampler.grid_step(self.schedule, strength * (self.schedule.num_steps - 1))

    def denoiser(
        self, cond: Optional[dict], mask: Optional[FrameMask], guidance_weight=None, overlap: Optional[int] = None
    ) -> Denoiser:
        """The EMA network as the samplers' denoiser: guided (module.guidance_weight unless given), x_0 clipped; with
        `overlap`, run over windows of the data's length that share `overlap` frames (`WindowedNetwork`)."""
        network = self.ema_network if overlap is None else WindowedNetwork(self.ema_network, self.data.window, overlap)
        return Denoiser(
            network,
            self.schedule,
            self.loss.prediction,
            cond=cond,
            mask=mask,
            clip_x0=self.x0_bound,
            guidance_weight=self.guidance_weight if guidance_weight is None else guidance_weight,
            autocast=self.sampling_dtype,
        )

    def to_keypoints(self, features: Motion) -> np.ndarray:
        """Normalised features (..., frames, feats) -> float32 positions (..., frames, joints, dims), original units.

        Dance runs: 2D keypoints. Text-motion runs: 3D joints recovered from the feature representation.
        """
        raw = self.normalizer.denormalize(features.to(self.device).float())
        return self.data.to_positions(raw).cpu().numpy().astype(np.float32)

    def configure_optimizers(self) -> dict:
        optimizer = self.optimizer_factory(params=self.network.parameters())
        scheduler = self.lr_scheduler_factory(optimizer=optimizer, total_steps=self.trainer.estimated_stepping_batches)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        clip_gradients(self, optimizer, gradient_clip_val, gradient_clip_algorithm)  # fused optimizers too


def at_least_float32(x: torch.Tensor) -> torch.Tensor:
    """x in float32, or as it is when wider (float64)."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def check_foot_contact(weight, data: MotionData, loss: DiffusionLoss) -> float:
    """`weight` as a float; UserError unless it is 0, positive or `auto` (`auto_foot_contact`'s choice), and where
    positive, the data a 3D dance with feet and the loss x0 prediction."""
    if weight == "auto":
        return auto_foot_contact(data, loss)[0]
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight >= 0:
        raise UserError(f"module.foot_contact_weight={weight!r} must be 0 (off), positive, or auto.")
    if weight > 0 and not (isinstance(data, RotationDanceData) and data.foot_joints):
        raise UserError(
            f"module.foot_contact_weight={weight} needs a 3D dance whose feet touch the ground (experiment=dance3d; "
            "for experiment=distill, a teacher trained on one)."
        )
    if weight > 0 and loss.prediction != "x0":
        raise UserError(
            f"module.foot_contact_weight={weight} needs loss.prediction=x0 (use loss=x0; for experiment=distill, a "
            "teacher trained with it)."
        )
    return float(weight)


def auto_foot_contact(data: MotionData, loss: DiffusionLoss) -> tuple:
    """`foot_contact_weight=auto`: (weight, why). FOOT_CONTACT_AUTO for a 3D dance whose feet roll through a contact
    (human ankles and toes: `pins_fit` false) and x0 prediction; 0 for rigid tips (the crab's: IK pins them after
    sampling, and the term broke their training), for data without 3D feet, and for epsilon prediction."""
    if not (isinstance(data, RotationDanceData) and data.foot_joints):
        return 0.0, "no 3D feet on the ground"
    if data.pins_fit:
        return 0.0, "the feet are rigid tips, pinned by IK instead"
    if loss.prediction != "x0":
        return 0.0, "the term needs loss.prediction=x0"
    return FOOT_CONTACT_AUTO, "feet that roll through a contact"


def foot_contact_line(setting, module: "MotionDiffusion") -> str:
    """The training's opening line on the foot contact term: its weight, and where `auto` chose it, why."""
    line = f"Foot contact term: weight {module.foot_contact_weight:g}"
    return f"{line} (auto: {auto_foot_contact(module.data, module.loss)[1]})" if setting == "auto" else line


def check_context(context_prob: float, network: nn.Module) -> float:
    """context_prob as a float; UserError unless it lies in [0, 1) and agrees with the network's `context` input."""
    if not 0.0 <= context_prob < 1.0:
        raise UserError(
            f"module.context_prob={context_prob} must lie in [0, 1) (0 = off; 0.5 trains half the windows "
            "with known frames)."
        )
    takes = bool(getattr(network, "context", False))
    if context_prob > 0 and not takes:
        raise UserError(
            f"module.context_prob={context_prob} needs a network that reads known frames: use network=punet "
            "network.context=true, or module.context_prob=0."
        )
    if takes and context_prob == 0:
        raise UserError(
            "network.context=true needs module.context_prob > 0 (0.5 is usual): a network never shown "
            "known frames in training must not be given any when sampling."
        )
    return float(context_prob)


def random_known_frames(x0: Motion, prob: float, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """(B, N) bool: for a `prob` share of the windows a known prefix or suffix (even odds) of 1 to N/2 frames."""
    batch, frames = x0.shape[:2]
    device = x0.device
    chosen = torch.rand(batch, generator=generator, device=device) < prob  # (B,)
    lengths = torch.randint(1, frames // 2 + 1, (batch, 1), generator=generator, device=device)  # (B, 1)
    suffix = torch.rand(batch, 1, generator=generator, device=device) < 0.5  # (B, 1)
    index = torch.arange(frames, device=device).expand(batch, frames)  # (B, N)
    position = torch.where(suffix, frames - 1 - index, index)  # distance from the known end
    return (position < lengths) & chosen[:, None]


def fixed_frames(known_mask: torch.Tensor) -> torch.Tensor:
    """(B, N) bool: the frames a known_mask over frames (B, N) or frames x features (B, N, F) fixes in every feature."""
    return known_mask.bool() if known_mask.ndim == 2 else known_mask.bool().all(dim=-1)


def trained_pattern(frames: torch.Tensor) -> torch.Tensor:
    """(B, N) bool: the rows of `frames` (B, N) that are a prefix or a suffix of at most N/2 frames (what training
    shows), the other rows emptied (those windows are sampled by replacement alone)."""
    length = frames.shape[1]
    count = frames.sum(dim=1, keepdim=True)  # (B, 1)
    index = torch.arange(length, device=frames.device)[None]  # (1, N)
    prefix = (frames == (index < count)).all(dim=1)  # (B,)
    suffix = (frames == (index >= length - count)).all(dim=1)  # (B,)
    seen = (prefix | suffix) & (count[:, 0] <= length // 2)  # (B,)
    return frames & seen[:, None]


def known_context(known: Motion, known_frames: torch.Tensor) -> dict:
    """The network's context condition: known values (B, N, F) and the frames they fix (B, N) bool."""
    assert known_frames.shape == known.shape[:2] and known_frames.dtype == torch.bool, (known_frames.shape, known.shape)
    return {"known": known, "known_mask": known_frames}
