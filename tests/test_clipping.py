"""Gradient clipping with the fused AdamW of configs/optimizer/adamw.yaml (training.clipping)."""

import types
from pathlib import Path

import lightning as L
import pytest
import torch
from omegaconf import OmegaConf

from motiondiff.training.clipping import clip_gradients

OPTIMIZER_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "optimizer" / "adamw.yaml"


def with_gradients(scale: float = 10.0, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Linear(7, 3))
    for param in net.parameters():
        param.grad = scale * torch.randn_like(param)
    return net


def fake_module(scaler=None, calls=None):
    """What clip_gradients reads of a LightningModule: its trainer's precision plugin, and clip_gradients."""
    plugin = types.SimpleNamespace(scaler=scaler)
    trainer = types.SimpleNamespace(precision_plugin=plugin, precision="16-mixed" if scaler else "bf16-mixed")
    record = (lambda optimizer, **kwargs: calls.append(kwargs)) if calls is not None else None
    return types.SimpleNamespace(trainer=trainer, clip_gradients=record)


def gradients(net) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in net.parameters()])


def test_the_config_asks_for_the_fused_adamw():
    assert OmegaConf.load(OPTIMIZER_CONFIG).fused is True


@pytest.mark.parametrize("algorithm", [None, "norm", "value"])
def test_fused_optimizers_clip_as_torch_does(algorithm):
    net, reference = with_gradients(), with_gradients()
    optimizer = torch.optim.AdamW(net.parameters(), fused=True)
    clip_gradients(fake_module(), optimizer, 0.5, algorithm)
    if algorithm == "value":
        torch.nn.utils.clip_grad_value_(reference.parameters(), 0.5)
        assert gradients(net).abs().max() <= 0.5
    else:
        torch.nn.utils.clip_grad_norm_(reference.parameters(), 0.5)
        assert gradients(net).norm() == pytest.approx(0.5, rel=1e-5)
    assert torch.equal(gradients(net), gradients(reference))


@pytest.mark.parametrize("value", [None, 0.0])
def test_no_clip_value_leaves_the_gradients(value):
    net, reference = with_gradients(), with_gradients()
    clip_gradients(fake_module(), torch.optim.AdamW(net.parameters(), fused=True), value, None)
    assert torch.equal(gradients(net), gradients(reference))


def test_other_optimizers_clip_through_lightning():
    calls = []
    net = with_gradients()
    clip_gradients(fake_module(calls=calls), torch.optim.AdamW(net.parameters()), 1.0, "norm")
    assert calls == [{"gradient_clip_val": 1.0, "gradient_clip_algorithm": "norm"}]


class Tiny(L.LightningModule):
    """A linear model trained with AdamW (fused or not), recording the gradient norm each optimizer step used."""

    def __init__(self, fused: bool = True):
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
        self.fused = fused
        self.norms = []

    def training_step(self, batch, index):
        return 100 * self.layer(batch[0]).pow(2).mean()

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.parameters(), fused=self.fused)
        optimizer.register_step_post_hook(lambda *_: self.norms.append(float(gradients(self.layer).norm())))
        return optimizer

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):
        clip_gradients(self, optimizer, gradient_clip_val, gradient_clip_algorithm)


def fit(module, scale: float = 10.0, **trainer_options) -> None:
    torch.manual_seed(0)
    data = torch.utils.data.TensorDataset(scale * torch.randn(12, 4))
    trainer = L.Trainer(
        max_steps=3,
        gradient_clip_val=0.01,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **trainer_options,
    )
    trainer.fit(module, torch.utils.data.DataLoader(data, batch_size=4))


def test_lightning_bf16_mixed_training_clips_with_a_fused_optimizer():
    """Lightning alone raises here ("does not allow for gradient clipping"); the modules' hook clips instead."""
    module = Tiny()
    fit(module, precision="bf16-mixed")
    assert len(module.norms) == 3 and max(module.norms) == pytest.approx(0.01, rel=1e-4)


def test_a_gradient_scaler_unscales_before_a_fused_optimizer_is_clipped():
    """16-mixed's scaler (as on a GPU): the fused step clips the unscaled gradients and ends where the loop ends."""
    from lightning.pytorch.plugins.precision import MixedPrecision

    weights = {}
    for fused in (False, True):
        module = Tiny(fused)
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0**4)
        fit(module, scale=0.3, plugins=[MixedPrecision("16-mixed", "cpu", scaler=scaler)])  # no overflow: 3 steps
        assert len(module.norms) == 3 and max(module.norms) == pytest.approx(0.01, rel=1e-3), fused
        weights[fused] = module.layer.weight.detach().clone()
    assert torch.allclose(weights[True], weights[False], atol=1e-6)
