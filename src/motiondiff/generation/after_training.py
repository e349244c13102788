"""Samples of the finished model, written when training ends (callbacks.generate_after_training)."""

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig

from motiondiff.core.errors import UserError
from motiondiff.generation.prompts import generate_text_and_save
from motiondiff.generation.windows import generate_and_save
from motiondiff.report.page import write_report
from motiondiff.training.diffusion_module import MotionDiffusion

log = logging.getLogger(__name__)


class GenerateAfterTraining(L.Callback):
    """After training, the first process samples with the run's sampler into out_dir: dance windows or prompts."""

    def __init__(
        self,
        sampler: DictConfig,
        text_encoder: Optional[DictConfig],
        out_dir: str,
        num_samples: int = 8,
        chain_windows: int = 4,
        prompts: Optional[Sequence[str]] = None,
        seed: int = 0,
    ):
        self.sampler_cfg, self.text_encoder_cfg, self.out_dir = sampler, text_encoder, Path(out_dir)
        self.num_samples, self.chain_windows, self.prompts, self.seed = num_samples, chain_windows, prompts, seed
        self.written: dict = {}

    def wanted(self, pl_module: L.LightningModule) -> bool:
        """Whether this run generates: a diffusion model and at least one sample asked for."""
        return self.num_samples > 0 and isinstance(pl_module, MotionDiffusion)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Refuse a text run without prompts before it trains."""
        if self.wanted(pl_module) and pl_module.conditional and not self.prompts:
            raise UserError(
                "generate_after_training.prompts is empty: list prompts for a text run, or set num_samples=0."
            )

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.wanted(pl_module) or not trainer.is_global_zero:
            return
        module, sampler = pl_module.eval(), instantiate(self.sampler_cfg)
        out_dir = self.out_dir
        if out_dir.is_dir() and any(out_dir.iterdir()):  # a finished run resumed to more steps: keep its samples
            out_dir = out_dir.with_name(f"{out_dir.name}-step{trainer.global_step}")
        if module.conditional:
            prompts = [(text, None) for text in self.prompts]
            encoder = instantiate(self.text_encoder_cfg)
            self.written = generate_text_and_save(
                module, sampler, encoder, out_dir, prompts, self.num_samples, seed=self.seed
            )
        else:
            self.written = generate_and_save(module, sampler, out_dir, self.num_samples, self.seed, self.chain_windows)
        self.written["report"] = write_report(out_dir)
        log.info("Generated samples in %s; open %s in a browser", out_dir, self.written["report"])
