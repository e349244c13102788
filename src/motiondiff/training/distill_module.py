"""A few-step student distilled from a trained diffusion run (`experiment=distill teacher=<run>`).

The student has the teacher's network with one more input, the guidance weight (network.guidance_embedding, zero-
initialised), and starts from the teacher's EMA weights. It trains with diffusion.consistency's loss against its own
EMA (the target network, decay warming up to 0.95), which is also what samples, as in LCM; without `target_dropout`
the target runs without dropout (LCM's network has none), so a target is a function of its inputs. The teacher is
frozen and kept out of the checkpoint: runs.distill loads it from its run and hands it over with `attach_teacher`,
so a distilled run loads, generates and evaluates like any diffusion run (with sampler=consistency).
"""

import logging
from typing import Callable, Optional

import torch
from hydra.utils import instantiate
from torch import nn

from motiondiff.core.errors import UserError
from motiondiff.core.types import FrameMask
from motiondiff.diffusion.consistency import ConsistencyDistillationLoss, guidance_condition
from motiondiff.diffusion.denoiser import Denoiser, check_guidance_weight
from motiondiff.training.diffusion_module import MotionDiffusion

GUIDANCE_KEYS = "guidance_embedder."
log = logging.getLogger(__name__)


class ConsistencyDistillation(MotionDiffusion):
    """Consistency distillation of a frozen teacher into a student that samples in 1-4 steps."""

    def __init__(self, *args, distillation: ConsistencyDistillationLoss, target_dropout: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.distillation = distillation
        self.target_dropout = bool(target_dropout)  # True: the target drops out as the student does (MotionLCM)
        self.teacher: Optional[nn.Module] = None  # a plain attribute once attached: not a submodule, not saved
        self.warned_weights: set = set()  # guidance weights outside the trained range, each warned about once

    def train(self, mode: bool = True) -> "ConsistencyDistillation":
        """As nn.Module.train; without target_dropout the EMA network (the target) stays in eval mode."""
        super().train(mode)
        if not self.target_dropout:
            self.ema_network.eval()
        return self

    @classmethod
    def from_config(cls, cfg, network: nn.Module, data, options: dict) -> "ConsistencyDistillation":
        """As MotionDiffusion.from_config, with the module's `distillation` options built into the loss."""
        options = {**options, "distillation": instantiate(options["distillation"])}
        return super().from_config(cfg, network, data, options)

    @property
    def reads_guidance(self) -> bool:
        """Whether the student takes the guidance weight as an input (text students do)."""
        return getattr(self.network, "guidance_embedder", None) is not None

    def attach_teacher(self, teacher: MotionDiffusion) -> None:
        """Freeze the teacher's EMA network for the targets; start the student (and its EMA) from its weights."""
        if not torch.equal(teacher.schedule.exact_betas, self.schedule.exact_betas):  # same steps, same betas
            raise UserError("the student's schedule differs from the teacher's; keep the teacher's schedule group.")
        if teacher.loss.prediction != self.loss.prediction:
            raise UserError(
                f"the student predicts {self.loss.prediction} but the teacher {teacher.loss.prediction}; keep the "
                "teacher's loss group."
            )
        if self.data.conditional and not self.reads_guidance:
            raise UserError("a text student needs network.guidance_embedding=true (experiment=distill sets it).")
        state = teacher.ema_network.state_dict()
        result = self.network.load_state_dict(state, strict=False)
        missing = [key for key in result.missing_keys if not key.startswith(GUIDANCE_KEYS)]
        if missing or result.unexpected_keys:
            raise UserError(
                f"the student's network differs from the teacher's ({(missing or result.unexpected_keys)[0]}); "
                "keep the teacher's network group and sizes."
            )
        self.ema_network.load_state_dict(self.network.state_dict())
        self.normalizer.load_state_dict(teacher.normalizer.state_dict())
        object.__setattr__(self, "teacher", teacher.ema_network.eval().requires_grad_(False))

    def on_fit_start(self) -> None:
        if self.teacher is None:
            raise UserError("experiment=distill needs the run to distil: add teacher=<run directory>.")
        self.teacher.to(self.device)
        if not self.target_dropout:  # Lightning keeps the modes the modules were built in (train): set it here
            self.ema_network.eval()

    def distillation_loss(
        self,
        batch: dict,
        generator: Optional[torch.Generator] = None,
        online: Optional[nn.Module] = None,
        extra: Optional[Callable] = None,
    ) -> torch.Tensor:
        """The consistency distillation loss of a batch: the student (or `online`) against the EMA target at the
        teacher's guided DDIM step, plus `extra` on the student's clean sample (see ConsistencyDistillationLoss)."""
        return self.distillation(
            self.network if online is None else online,
            self.ema_network,
            self.teacher,
            self.schedule,
            self.loss.prediction,
            batch["motion"],
            batch["mask"],
            cond=batch.get("cond"),
            clip_x0=self.x0_bound,
            generator=generator,
            extra=extra,
        )

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        # module.foot_contact_weight (off by default) on the student's clean sample; validation keeps to the
        # consistency loss alone, which checkpoints monitor.
        extra = self.weighted_foot_contact if self.foot_contact_weight > 0 else None
        loss = self.distillation_loss(batch, extra=extra)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["motion"].shape[0])
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        # The same steps, weights and noise every epoch, so validation losses are comparable. val/loss_ema (what
        # checkpoints monitor) is the sampling network's own consistency along the teacher's steps.
        for name, online in (("val/loss", self.network), ("val/loss_ema", self.ema_network)):
            generator = torch.Generator(device=self.device).manual_seed(batch_idx)
            loss = self.distillation_loss(batch, generator, online)
            self.log(name, loss, prog_bar=name == "val/loss_ema", batch_size=batch["motion"].shape[0], sync_dist=True)

    def denoiser(
        self, cond: Optional[dict], mask: Optional[FrameMask], guidance_weight=None, overlap: Optional[int] = None
    ) -> Denoiser:
        """The target network as the samplers' denoiser; a text student reads the guidance weight from its condition,
        so it takes one network call a step (no unconditional half). `overlap`: as MotionDiffusion.denoiser."""
        if cond is None or not self.reads_guidance:
            return super().denoiser(cond, mask, guidance_weight, overlap)
        weight = self.guidance_weight if guidance_weight is None else check_guidance_weight(guidance_weight)
        self.warn_outside_trained_weights(weight)
        return super().denoiser(guidance_condition(cond, weight), mask, 1.0, overlap)

    def warn_outside_trained_weights(self, weight) -> None:
        """Log once per weight that the student samples with a guidance weight it never learned (an extrapolation)."""
        low, high = self.distillation.guidance_min, self.distillation.guidance_max
        outside = sorted({float(w) for w in torch.as_tensor(weight).flatten().tolist() if not low <= w <= high})
        for value in (w for w in outside if w not in self.warned_weights):
            self.warned_weights.add(value)
            log.warning(
                "guidance weight %g is outside [%g, %g], the weights this student learned (module.distillation."
                "guidance_min/max); its samples there are an extrapolation.",
                value,
                low,
                high,
            )
