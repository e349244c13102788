"""bf16 on the CPU: the processor detection, sampling under autocast (guidance and updates stay float32),
generate's precision option and recorded choice, and a bf16-mixed training run on the CPU."""

import json

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from conftest import ROOT, TINY_NETWORK, compose_config
from motiondiff.core.errors import UserError
from motiondiff.data.procedural.text_motion import dataset_name, write_procedural_dataset
from motiondiff.diffusion.denoiser import Denoiser
from motiondiff.diffusion.samplers import DDIMSampler
from motiondiff.diffusion.schedule import CosineSchedule
from motiondiff.generation import run as generate
from motiondiff.networks.conditioning import AdaLNTransformer
from motiondiff.runs import train
from motiondiff.training import devices, precision_probe
from motiondiff.training.build import build_module


@pytest.fixture
def flags(monkeypatch):
    """Pretend the CPU has the given /proc/cpuinfo flags."""

    def use(*names):
        monkeypatch.setattr(devices, "cpu_flags", lambda: set(names))

    return use


def test_sampling_precision_follows_the_processor(flags):
    flags("avx2", "amx_bf16", "amx_tile")
    assert devices.sampling_dtype("cpu", "auto") == torch.bfloat16
    assert devices.sampling_dtype("cpu", "bf16") == torch.bfloat16
    assert devices.sampling_dtype("cpu", 32) is None  # Hydra reads precision=32 as an int
    assert devices.sampling_dtype("cpu", "auto", conditional=False) is None  # dance runs: float32 under auto
    assert devices.sampling_dtype("cpu", "bf16", conditional=False) == torch.bfloat16  # asked for: given
    flags("avx2", "avx512f")
    assert devices.sampling_dtype("cpu", "auto") is None
    with pytest.raises(UserError, match="precision=bf16 needs bf16 units on the cpu.*use precision=auto"):
        devices.sampling_dtype("cpu", "bf16")
    with pytest.raises(UserError, match="precision=16 is unknown; use one of"):
        devices.sampling_dtype("cpu", "16")


def test_cpu_flags_read_this_machine():
    found = devices.cpu_flags()
    assert isinstance(found, set)
    if found:  # Linux: a real flags line (x86 always lists fpu; Arm lists fp)
        assert found & {"fpu", "fp"}


def tiny_adaln():
    torch.manual_seed(0)
    network = AdaLNTransformer(features=12, text_dim=8, latent_dim=32, num_layers=2, num_heads=4, dropout=0.0)
    for p in network.parameters():  # a network that does something (adaLN-Zero starts as a constant)
        torch.nn.init.normal_(p, std=0.05)
    return network.eval()


def test_bf16_denoiser_returns_float32_close_to_float32():
    network, schedule = tiny_adaln(), CosineSchedule(100)
    cond = {"text_pooled": torch.randn(3, 8), "text_tokens": torch.randn(3, 4, 8), "text_mask": torch.ones(3, 4).bool()}
    x, t = torch.randn(3, 16, 12), torch.full((3,), 50)
    exact = Denoiser(network, schedule, "x0", cond=cond, guidance_weight=2.5)
    half = Denoiser(network, schedule, "x0", cond=cond, guidance_weight=2.5, autocast=torch.bfloat16)
    with torch.no_grad():
        (x0_a, _), (x0_b, eps_b) = exact(x, t), half(x, t)
    assert x0_b.dtype == eps_b.dtype == torch.float32
    scale = x0_a.abs().mean()
    assert 0 < (x0_a - x0_b).abs().mean() < 0.05 * scale  # bf16 really ran, and stayed close
    # A whole deterministic DDIM run stays close too.
    noise = torch.randn(3, 16, 12, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a = DDIMSampler(10, progress=False).sample(exact, schedule, noise)
        b = DDIMSampler(10, progress=False).sample(half, schedule, noise)
    assert b.dtype == torch.float32 and (a - b).abs().mean() < 0.05 * a.abs().mean()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    cfg = compose_config(
        "train",
        tmp_path_factory.mktemp("run"),
        ["experiment=dance2d", "+trainer.fast_dev_run=true", "generate_after_training.num_samples=0", *TINY_NETWORK],
    )
    return train.run(cfg)["run_dir"]


def test_generate_records_and_obeys_its_precision(tiny_run, tmp_path, flags):
    flags("amx_bf16")
    outs = {}
    for choice in ("32", "bf16", "auto"):
        out = tmp_path / choice
        cfg = compose_config(
            "generate",
            out,
            [f"run_dir={tiny_run}", "num_samples=2", "sampler=ddim", "sampler.num_steps=4", "chain_windows=0"]
            + ["render=false", f"precision={choice}"],
        )
        generate.run(cfg)
        # auto samples a dance run in float32 even with bf16 units (bf16 added jitter and saved no time there)
        expected = "32" if choice == "auto" else choice
        assert json.loads((out / "generation.json").read_text())["precision"] == expected
        outs[choice] = np.load(out / "samples.npy")
    assert np.array_equal(outs["auto"], outs["32"])
    assert outs["bf16"].dtype == np.float32 and np.isfinite(outs["bf16"]).all()
    assert not np.array_equal(outs["32"], outs["bf16"])  # the bf16 path ran
    assert np.abs(outs["32"] - outs["bf16"]).mean() < 0.1 * np.abs(outs["32"]).mean()


def test_bf16_mixed_training_on_the_cpu(tmp_path, procedural_data_dir):
    data = procedural_data_dir
    write_procedural_dataset(data / dataset_name(40, 0), num_motions=40, seed=0)
    cfg = compose_config(
        "train",
        tmp_path / "run",
        [
            "experiment=text2motion",
            f"paths.data_dir={data}",
            "dataset.procedural.num_motions=40",
            "dataset.batch_size=8",
            "trainer=cpu",
            "trainer.precision=bf16-mixed",
            "+trainer.fast_dev_run=3",
            "generate_after_training.num_samples=0",
            "network.latent_dim=32",
            "network.num_layers=1",
        ],
    )
    result = train.run(cfg)
    saved = (result["run_dir"] / "config.yaml").read_text()
    assert "precision: bf16-mixed" in saved
    assert (result["run_dir"] / "checkpoints" / "last.ckpt").is_file()


def test_bf16_benchmark_quick_run(tmp_path):
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bf16_cpu

    report = bf16_cpu.main(["--quick", "--out", str(tmp_path)])
    assert set(report["matmul"]) == {"fp32", "bf16"} and report["processor"]
    size = report["sizes"]["quick"]
    assert size["train_speedup"] > 0 and size["guided_speedup"] > 0
    assert (tmp_path / "bf16_cpu.json").is_file()


@pytest.mark.probe
def test_the_trainer_probes_bf16_only_on_a_cpu_with_bf16_units(flags):
    flags("avx2", "avx512_bf16")
    assert devices.precision() == devices.PROBED
    flags("avx2", "avx512f")
    assert devices.precision() == "32-true"


@pytest.mark.parametrize("bf16_seconds, expected", [(0.002, "bf16-mixed"), (0.02, "32-true")])
def test_the_probe_times_both_precisions_and_keeps_the_faster(bf16_seconds, expected):
    import time

    def step():  # float32 takes 10 ms, bf16 as given: the probe reads autocast the way a training step does
        time.sleep(bf16_seconds if torch.is_autocast_enabled("cpu") else 0.01)

    speedup = precision_probe.step_speedup(step, min_seconds=0.05)
    assert speedup == pytest.approx(0.01 / bf16_seconds, rel=0.5)
    assert ("bf16-mixed" if speedup >= precision_probe.MIN_SPEEDUP else "32-true") == expected


@pytest.mark.probe
def test_probed_precision_is_saved_kept_on_resume_and_leaves_the_random_state(tmp_path, flags, monkeypatch):
    """A CPU with bf16 units: the probe picks, config.yaml records it, the run trains as one told that precision
    (the probe draws no random numbers of the run), and a resumed run keeps it instead of probing again."""
    from motiondiff.runs import train as train_run

    flags("avx512_bf16")
    picks = iter(["bf16-mixed", "32-true"])  # the first probe says bf16; a second one would say float32
    monkeypatch.setattr(train_run, "choose_precision", lambda module, batch: (next(picks), 1.5))
    overrides = [*TINY_NETWORK, "trainer.max_steps=3", "dataset.batch_size=8", "generate_after_training.num_samples=0"]
    overrides += ["trainer.check_val_every_n_epoch=1000"]
    probed = train.run(compose_config("train", tmp_path / "probed", ["experiment=dance2d", *overrides]))
    config = (probed["run_dir"] / "config.yaml").read_text()
    assert "precision: bf16-mixed" in config and "precision: auto" not in config
    told = train.run(
        compose_config("train", tmp_path / "told", ["experiment=dance2d", *overrides, "trainer.precision=bf16-mixed"])
    )
    for key, value in probed["module"].state_dict().items():
        assert torch.equal(value, told["module"].state_dict()[key]), key
    resumed = compose_config("train", probed["run_dir"], ["experiment=dance2d", *overrides, "trainer.max_steps=5"])
    resumed.ckpt_path = str(probed["run_dir"] / "checkpoints" / "last.ckpt")
    train.run(resumed)
    assert "precision: bf16-mixed" in (probed["run_dir"] / "config.yaml").read_text()
    assert next(picks) == "32-true"  # not probed again


def test_the_probe_leaves_weights_gradients_and_random_state(tmp_path):
    cfg = compose_config("train", tmp_path / "run", ["experiment=dance2d", *TINY_NETWORK, "dataset.batch_size=8"])
    datamodule = instantiate(cfg.dataset)
    datamodule.setup("fit")
    module = build_module(cfg, datamodule.info).eval()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    torch.manual_seed(3)
    expected = torch.rand(4)
    torch.manual_seed(3)
    choice, speedup = precision_probe.choose_precision(module, precision_probe.first_batch(datamodule))
    assert torch.equal(torch.rand(4), expected)
    assert choice in ("bf16-mixed", "32-true") and speedup > 0
    assert not module.training and all(p.grad is None for p in module.parameters())
    assert all(torch.equal(v, before[k]) for k, v in module.state_dict().items())
