"""Gradient clipping that also works with fused optimizers (`optimizer.fused=true`).

Lightning refuses to clip for an optimizer that unscales gradients itself (fused AdamW) under any mixed precision,
bf16-mixed included. The modules clip them here with torch instead; under a gradient scaler (16-mixed on a GPU) the
gradients are unscaled first, after which the scaler's step hands the fused optimizer only its inf/NaN flag.
A run started from a checkpoint (`ckpt_path=`) keeps the optimizer settings saved in it: torch restores the param
groups, `fused` included.
"""

import torch
from lightning.pytorch.utilities import GradClipAlgorithmType


def clip_gradients(module, optimizer: torch.optim.Optimizer, value, algorithm) -> None:
    """Clip `module`'s gradients as `trainer.gradient_clip_val` / `gradient_clip_algorithm` ask (None or 0 = off)."""
    fused = getattr(optimizer, "_step_supports_amp_scaling", False)  # fused AdamW unscales in its own step
    if not fused:
        module.clip_gradients(optimizer, gradient_clip_val=value, gradient_clip_algorithm=algorithm)
        return
    if not value:
        return
    scaler = getattr(module.trainer.precision_plugin, "scaler", None)
    if scaler is not None:
        scaler.unscale_(optimizer)  # the scaler's step then passes found_inf and no grad_scale to the fused step
    params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    if algorithm == GradClipAlgorithmType.VALUE:
        torch.nn.utils.clip_grad_value_(params, value)
    else:
        torch.nn.utils.clip_grad_norm_(params, value)
