"""FD and R@3 of generations during training, measured with a trained evaluator (callbacks.generation_metrics).

Every `every_n_epochs` validation epochs of a text run, the EMA model generates one motion for each
of the first `items` validation captions (shared out across DDP processes; the torchmetrics states
sync, so every process logs the same values) and val/FD and val/R@3 are logged.
"""

from typing import Optional

import lightning as L
import torch
import torch.nn.functional as F

from motiondiff.core.checks import whole_number
from motiondiff.core.errors import UserError
from motiondiff.evaluation.evaluators.trained import check_compatible, load_trained_evaluator
from motiondiff.metrics.text_motion import FrechetDistance, RetrievalPrecision
from motiondiff.training.contrastive_module import MotionTextContrastive
from motiondiff.training.diffusion_module import MotionDiffusion


class GenerationMetrics(L.Callback):
    """Logs val/FD and val/R@3 of a text run's generations; off while `evaluator` (an evaluator run) is null."""

    def __init__(self, evaluator: Optional[str] = None, every_n_epochs: int = 10, items: int = 64):
        self.evaluator_path = evaluator
        self.every_n_epochs = whole_number("callbacks.generation_metrics.every_n_epochs", every_n_epochs)
        self.items = whole_number("callbacks.generation_metrics.items", items)
        self.evaluator: Optional[MotionTextContrastive] = None  # loaded on first use, never saved with the run

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.evaluator_path is None or trainer.sanity_checking or not isinstance(pl_module, MotionDiffusion):
            return
        if pl_module.conditional and (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self.log_metrics(trainer, pl_module)

    def load(self, pl_module: MotionDiffusion) -> MotionTextContrastive:
        """The trained evaluator, loaded once on the module's device and checked against the run's data."""
        if self.evaluator is None:
            evaluator = load_trained_evaluator(self.evaluator_path, str(pl_module.device))
            check_compatible(evaluator, pl_module.data, "this training run")
            if evaluator.module.description.text_encoder != pl_module.data.text_encoder:
                raise UserError(
                    f"callbacks.generation_metrics.evaluator '{evaluator.run_dir}' reads "
                    f"{evaluator.module.description.text_encoder} captions but this run uses "
                    f"{pl_module.data.text_encoder}; "
                    "give an evaluator trained with the same text_encoder."
                )
            self.evaluator = evaluator.module.eval()
        return self.evaluator

    @torch.no_grad()
    def log_metrics(self, trainer: L.Trainer, module: MotionDiffusion) -> None:
        """Generate for this process's share of the first `items` validation captions; log val/FD and val/R@3."""
        evaluator, datamodule, device = self.load(module), trainer.datamodule, module.device
        count = max(min(self.items, len(datamodule.val_set)), trainer.world_size)  # every rank gets items
        indices = list(range(trainer.global_rank, count, trainer.world_size))
        batch = datamodule.collate([datamodule.val_set[i % len(datamodule.val_set)] for i in indices])
        mask, cond = batch["mask"].to(device), {key: value.to(device) for key, value in batch["cond"].items()}
        generator = torch.Generator(device=device).manual_seed(0)
        samples = module.sample(
            len(indices), module.val_sampler, generator, mask.shape[1], cond=cond, mask=mask
        )  # (B, N, F)
        real = evaluator.embed_motion(module.normalizer.denormalize(batch["motion"].to(device)), mask)  # (B, L)
        fake = evaluator.embed_motion(module.normalizer.denormalize(samples), mask)  # (B, L)
        text = evaluator.embed_text(cond["text_tokens"], cond["text_mask"])  # (B, L)
        fd = FrechetDistance(num_features=real.shape[1]).to(device)
        fd.update(real, real=True)
        fd.update(fake, real=False)
        retrieval = RetrievalPrecision(batch_size=32, top_k=3).to(device)
        retrieval.update(F.normalize(text, dim=-1), F.normalize(fake, dim=-1))
        module.log("val/FD", fd.compute().float())
        module.log("val/R@3", retrieval.compute()["R@3"].float())
