"""Training on the default data lowers a fixed-noise validation loss clearly (not a lucky batch)."""

import torch
from hydra.utils import instantiate

from conftest import compose_config
from motiondiff.diffusion.samplers import DDIMSampler
from motiondiff.metrics.single_motion import coverage
from motiondiff.training.build import build_module

# Small but not tiny: base 16 learns too slowly to show progress in a few hundred steps.
SMALL_NETWORK = ["network.base_channels=48", "network.channel_mults=[1,2]", "network.num_res_blocks=1"]


def fixed_noise_loss(module, windows: torch.Tensor, repeats: int = 8) -> float:
    """The loss on every validation window at fixed random steps and noise (the same before and after)."""
    generator = torch.Generator().manual_seed(1234)
    x0 = windows.repeat(repeats, 1, 1)
    t = torch.randint(0, module.schedule.num_steps, (len(x0),), generator=generator)
    noise = torch.randn(x0.shape, generator=generator)
    with torch.no_grad():
        return module.loss(module.network, module.schedule, x0, t=t, noise=noise).item()


def dance_coverage(module, training) -> float:
    """GANimator coverage of 16 DDIM-20 windows of the module's EMA network against the training span (T, F)."""
    samples = module.sample(16, DDIMSampler(num_steps=20, progress=False), torch.Generator().manual_seed(0))
    return coverage(samples.numpy(), training, window=30)


def test_short_training_halves_the_validation_loss_and_raises_coverage(tmp_path):
    cfg = compose_config(
        "train",
        tmp_path,
        [
            "experiment=dance2d",
            *SMALL_NETWORK,
            "trainer.max_epochs=-1",
            "trainer.max_steps=300",
            "trainer.check_val_every_n_epoch=1000",
            "optimizer.lr=3e-3",
            "lr_scheduler.warmup_steps=20",
            "ema.update_after_step=0",  # the EMA network that samples follows the short run closely
            "ema.beta=0.99",
            "+trainer.enable_checkpointing=false",
            "+trainer.logger=false",
            "callbacks={}",
            "logger={}",
        ],
    )
    torch.manual_seed(0)
    datamodule = instantiate(cfg.dataset)
    datamodule.setup("fit")
    module = build_module(cfg, datamodule.info)
    val_windows = torch.stack([item["motion"] for item in datamodule.val_set])
    before = fixed_noise_loss(module, val_windows)
    training = datamodule.train_set.features.numpy()  # (T, F)
    coverage_before = dance_coverage(module, training)
    trainer = instantiate(cfg.trainer, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, datamodule=datamodule)
    after = fixed_noise_loss(module, val_windows)
    coverage_after = dance_coverage(module, training)
    print(f"validation loss {before:.3f} -> {after:.3f}; coverage {coverage_before:.3f} -> {coverage_after:.3f}")
    assert 0.9 < before < 1.1, before  # the zero-initialised output layer predicts no noise: loss = E[eps^2] = 1
    assert after < 0.5 * before, (before, after)
    # An untrained model reproduces none of the dance's 1 s windows; 300 steps already reproduce some. Measured on a
    # 2-core AMD EPYC: loss 0.990 -> 0.071, coverage 0.120 (400 steps: 0.065, 0.098), 2026-12-06.
    assert coverage_before == 0.0 and coverage_after > 0.05, (coverage_before, coverage_after)
