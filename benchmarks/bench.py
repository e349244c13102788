"""motiondiff benchmark: training and sampling speed against peer implementations (issue 6).

    make bench                                    # installs benchmarks/requirements.txt, runs the full benchmark
    .venv/bin/python benchmarks/bench.py --quick  # tiny sizes, under a minute (the smoke test runs this)

Sections (each figure is a median over repeats after warm-up; comparisons are measured side by side,
interleaved, in this one process):
  1. punet training step (forward + backward + AdamW + EMA) vs denoising-diffusion-pytorch's Unet1D +
     GaussianDiffusion1D at a matched parameter count: samples/s and the ratio.
  2. sampling 64 dance windows, DDPM-1000 and DDIM-50: our samplers vs the same network stepped by
     diffusers' DDPMScheduler / DDIMScheduler; sampler overhead = (total - pure network time) / total, the loop's
     network calls timed alone in its rounds and paired within each round;
     dance coverage of DDPM vs DDIM samples from a dance model trained here for a few hundred steps.
  3. DiT variants (incontext, adaln, cross_attention) at the reference and the CPU size, as configs/network/*.yaml
     build them: training samples/s, guided DDIM-50 latency for a batch of 32, peak memory; at the reference
     size also today's network (the class defaults: residual dropout, tanh GELU, separate q/kv, masks always
     built) against the config defaults, each network in its own process (as a user trains one), the two
     alternating: training samples/s and guided step time (issue 19; --quick: adaln alone). Today's process leaves
     glibc's malloc as it was; the config's, and this one, keep freed memory as motiondiff's commands do
     (core.allocator).
  4. achieved throughput: model FLOPs (torch.utils.flop_counter) per second of a training step and a
     guided sampling step, as a fraction of the float32 matmul peak measured in this run; on CUDA (and with
     --quick) also the bfloat16 matmul peak.
  5. the data pipeline at HumanML3D's scale (benchmarks/data_bench.py's section: 29,000 procedural motions, cold and
     warm start, loader samples/s against the reference training rate, memory); --data-motions 0 skips it, --quick
     leaves it out (tests/test_data_bench.py runs it small).
On CUDA the matmuls are 8192 wide and the reference size runs its whole guided DDIM-50 loop; the rest is as on CPU.
Writes <out>/bench.json (also after each section, so a stopped run keeps what it measured) and <out>/bench.md.
"""

import argparse
import datetime
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from data_bench import data_markdown, section_data  # benchmarks/
from motiondiff.core.allocator import keep_freed_memory
from motiondiff.core.tables import markdown_table
from motiondiff.diffusion.denoiser import Denoiser
from motiondiff.diffusion.loss import DiffusionLoss
from motiondiff.diffusion.samplers import DDIMSampler, DDPMSampler
from motiondiff.diffusion.schedule import LinearSchedule
from motiondiff.networks.punet import PUNet
from motiondiff.runs.legacy import OPTIONS_ADDED

SECTIONS = ("punet_training", "sampling", "dit_variants", "throughput")
VARIANTS = ("incontext", "adaln", "cross_attention")

# Targets of issue 6.
TARGET_TRAIN_RATIO = 1.3
TARGET_OVERHEAD = 0.05
TARGET_DDIM_SPEEDUP = 15.0
TARGET_COVERAGE_POINTS = 5.0
TARGET_PEAK_FRACTION = 0.40
# Targets of issue 19: the config defaults of the DiT variants against today's network, same run, float32.
TARGET_DIT_TRAIN_SPEEDUP = 1.35
TARGET_DIT_GUIDED_TIME = 0.8
# The cost options of configs/network/*.yaml (the class defaults are today's network: runs/legacy.py keeps the one
# table of them) and of the optimizer config (today's: torch's AdamW defaults, the per-tensor loop).
COST_OPTIONS = tuple(OPTIONS_ADDED["network"][1])
CONFIGS = Path(__file__).resolve().parents[1] / "configs"
NETWORK_CONFIGS = CONFIGS / "network"


# ----------------------------------------------------------------------------------------------- helpers


def import_peers():
    """Unet1D/GaussianDiffusion1D and the diffusers schedulers, or raise ImportError naming what is missing.

    denoising_diffusion_pytorch's package __init__ imports its 2D trainer, which needs torchvision (and
    pytorch-fid); the 1D module needs neither, so it is loaded without running that __init__.
    """
    spec = importlib.util.find_spec("denoising_diffusion_pytorch")
    if spec is None:
        raise ImportError("denoising-diffusion-pytorch is not installed (pip install -r benchmarks/requirements.txt)")
    if "denoising_diffusion_pytorch" not in sys.modules:
        package = types.ModuleType("denoising_diffusion_pytorch")
        package.__path__ = list(spec.submodule_search_locations)
        sys.modules["denoising_diffusion_pytorch"] = package
    from denoising_diffusion_pytorch.denoising_diffusion_pytorch_1d import GaussianDiffusion1D, Unet1D
    from diffusers import DDIMScheduler, DDPMScheduler

    return Unet1D, GaussianDiffusion1D, DDPMScheduler, DDIMScheduler


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device):
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def interleaved_times(fns: dict, device, warmup: int, repeats: int) -> tuple:
    """({name: wall seconds per round}, {name: process CPU seconds per round}) of callables run in turn, round by
    round, after `warmup` rounds (pairs within a round share the machine's load)."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    wall, cpu = {name: [] for name in fns}, {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            started = time.process_time()
            wall[name].append(timed(fn, device))
            cpu[name].append(time.process_time() - started)
    return wall, cpu


def median_times(fns: dict, device, warmup: int, repeats: int) -> dict:
    """Median seconds of each callable; warm-up first, then the callables interleaved round by round."""
    wall, _ = interleaved_times(fns, device, warmup, repeats)
    return {name: statistics.median(values) for name, values in wall.items()}


def count_flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def matmul_peak(device, size: int, repeats: int, dtype=torch.float32) -> float:
    """FLOP/s of a large square matmul (median of repeats)."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    seconds = median_times({"mm": lambda: torch.mm(a, b)}, device, warmup=2, repeats=repeats)["mm"]
    return 2 * size**3 / seconds


class PeakMemory:
    """Peak memory above the starting level in the block: CUDA allocator stats, or RSS sampled every 10 ms on CPU."""

    def __init__(self, device):
        self.device, self.peak_bytes = device, 0

    @staticmethod
    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
            return self
        self.base, self.max, self.running = self.rss(), self.rss(), True

        def poll():
            while self.running:
                self.max = max(self.max, self.rss())
                time.sleep(0.01)

        self.thread = threading.Thread(target=poll, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            self.peak_bytes = torch.cuda.max_memory_allocated() - self.base
        else:
            self.running = False
            self.thread.join()
            self.peak_bytes = max(self.max, self.rss()) - self.base


def num_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def make_ema(network):
    """The EMA the training module uses (configs/ema/default.yaml)."""
    from ema_pytorch import EMA

    return EMA(
        network,
        beta=0.999,
        update_after_step=100,
        update_every=1,
        inv_gamma=1.0,
        power=0.75,
        include_online_model=False,
    )


def machine_info(device) -> dict:
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
        "load_average": list(os.getloadavg()),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


# ----------------------------------------------------------------------------------------------- sizes


def sizes(quick: bool, cuda: bool = False) -> dict:
    if quick:
        tiny = dict(latent_dim=32, num_layers=1, num_heads=4, frames=16, train_batch=2, gen_batch=2, gen_full=True)
        tiny_compared = {**tiny, "compare_today": ("adaln",)}  # one variant: each side is a process of ~5 s
        return dict(
            batch=4,
            window=48,
            warmup=1,
            repeats=2,
            schedule_steps=20,
            ddim_steps=4,
            num_windows=4,
            train_steps=2,
            sampling_repeats=1,
            matmul=128,
            matmul_bf16=128,
            dit={"reference": tiny_compared, "cpu": tiny},
            dit_warmup=1,
            dit_repeats=1,
            dit_step_repeats=1,
            dit_compare_repeats=1,
            dit_compare_rounds=1,
        )
    return dict(
        batch=128,
        window=48,
        warmup=3,
        repeats=10,
        schedule_steps=1000,
        ddim_steps=50,
        num_windows=64,
        train_steps=400,
        sampling_repeats=2,
        matmul=8192 if cuda else 2048,
        matmul_bf16=8192,  # measured on CUDA only
        # The reference size is too slow on 2 CPU cores for a full training batch of 32 or a whole guided
        # DDIM-50 run: its training batch is 8 and its latency is 50 x the median guided step (plus the
        # measured per-step sampler cost of the CPU size); the CPU size runs the whole loop, and on CUDA both do.
        dit={
            "reference": dict(
                latent_dim=512,
                num_layers=8,
                num_heads=16,
                frames=196,
                train_batch=8,
                gen_batch=32,
                gen_full=cuda,
                compare_today=VARIANTS,  # today's network against the config defaults (issue 19)
            ),
            "cpu": dict(
                latent_dim=128, num_layers=4, num_heads=4, frames=196, train_batch=64, gen_batch=32, gen_full=True
            ),
        },
        dit_warmup=1,
        dit_repeats=3,
        dit_step_repeats=2,
        dit_compare_repeats=5,
        dit_compare_rounds=2,
    )


# ----------------------------------------------------------------------------------------------- sections


def dance_data(window: int):
    from motiondiff.data.dance_windows import DanceDataModule

    data = DanceDataModule(
        source="procedural",
        window=window,
        stride=2,
        batch_size=128,
        procedural={"num_frames": 900, "seed": 0, "bpm": 120},
    )
    data.setup()
    return data


def our_punet(features: int) -> PUNet:
    # configs/experiment/dance2d.yaml: base_channels 64, channel_mults [1, 2], one ResBlock per level.
    return PUNet(features, base_channels=64, channel_mults=(1, 2), num_res_blocks=1, attention=True, attention_heads=4)


def matched_unet1d(Unet1D, features: int, target: int):
    """The Unet1D (dim a multiple of 8, dim_mults (1, 2) or (1, 2, 4)) whose parameter count is closest to target."""
    best = None
    for mults in ((1, 2), (1, 2, 4)):
        for dim in range(16, 129, 8):
            count = num_params(Unet1D(dim=dim, dim_mults=mults, channels=features))
            if best is None or abs(count - target) < abs(best[0] - target):
                best = (count, dim, mults)
    count, dim, mults = best
    return Unet1D(dim=dim, dim_mults=mults, channels=features), dict(dim=dim, dim_mults=list(mults), params=count)


def train_dance_model(data, steps: int, batch: int, schedule, device, seed: int = 0):
    """Our punet trained `steps` steps on the dance (x0 loss, AdamW 2e-3 as dance2d.yaml); returns the EMA network."""
    torch.manual_seed(seed)
    network = our_punet(data.info.features).to(device)
    ema = make_ema(network).to(device)
    loss_fn = DiffusionLoss("x0")
    optimizer = torch.optim.AdamW(network.parameters(), lr=2e-3, weight_decay=0.01)
    windows = torch.stack([data.train_set[i]["motion"] for i in range(len(data.train_set))]).to(device)  # (W, N, F)
    generator = torch.Generator().manual_seed(seed)
    for step in range(steps):
        lr = 2e-3 * min(1.0, (step + 1) / 200)  # the config's linear warm-up over 200 steps
        for group in optimizer.param_groups:
            group["lr"] = lr
        index = torch.randint(0, windows.shape[0], (batch,), generator=generator)
        loss = loss_fn(network, schedule, windows[index.to(device)])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        ema.update()
    return ema.ema_model.eval(), float(loss.detach())


def section_punet_training(args, size, device, peers, report):
    Unet1D, GaussianDiffusion1D = peers[0], peers[1]
    features, window, batch = 40, size["window"], size["batch"]
    torch.manual_seed(0)
    schedule = LinearSchedule(size["schedule_steps"]).to(device)
    ours = our_punet(features).to(device)
    peer_unet, peer_config = matched_unet1d(Unet1D, features, num_params(ours))
    peer = GaussianDiffusion1D(
        peer_unet, seq_length=window, timesteps=size["schedule_steps"], objective="pred_x0", auto_normalize=False
    ).to(device)
    loss_fn = DiffusionLoss("x0")
    x0 = torch.randn(batch, window, features, device=device)
    x0_peer = x0.transpose(1, 2).contiguous()  # Unet1D works on (B, C, N)
    setups = {}
    for name, model, call in (
        ("ours", ours, lambda: loss_fn(ours, schedule, x0)),
        ("peer", peer, lambda: peer(x0_peer)),
    ):
        network = model if name == "ours" else peer_unet
        optimizer = torch.optim.AdamW(network.parameters(), lr=2e-3, weight_decay=0.01)
        ema = make_ema(network).to(device)

        def step(call=call, optimizer=optimizer, ema=ema):
            loss = call()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            ema.update()

        setups[name] = step
    seconds = median_times(setups, device, size["warmup"], size["repeats"])
    flops = {
        "ours": count_flops(lambda: loss_fn(ours, schedule, x0).backward()),
        "peer": count_flops(lambda: peer(x0_peer).backward()),
    }
    result = {
        "batch": batch,
        "window": window,
        "features": features,
        "ours_params": num_params(ours),
        "peer_params": peer_config["params"],
        "peer_config": peer_config,
        "ours_step_s": seconds["ours"],
        "peer_step_s": seconds["peer"],
        "ours_samples_per_s": batch / seconds["ours"],
        "peer_samples_per_s": batch / seconds["peer"],
        "ratio": seconds["peer"] / seconds["ours"],
        "ours_train_flops": flops["ours"],
        "peer_train_flops": flops["peer"],
    }
    report["punet_training"] = result


def diffusers_loop(scheduler, network, noise, steps: int, generator):
    scheduler.set_timesteps(steps)
    x = noise
    batch = noise.shape[0]
    with torch.inference_mode():
        for t in scheduler.timesteps:
            output = network(x, t.to(x.device).expand(batch))
            x = scheduler.step(output, t, x, generator=generator).prev_sample
    return x


def section_sampling(args, size, device, peers, report):
    DDPMScheduler, DDIMScheduler = peers[2], peers[3]
    from motiondiff.metrics.single_motion import coverage, resolve_windows

    data = dance_data(size["window"])
    info = data.info
    schedule = LinearSchedule(size["schedule_steps"]).to(device)
    start = time.perf_counter()
    network, final_loss = train_dance_model(data, size["train_steps"], size["batch"], schedule, device)
    train_seconds = time.perf_counter() - start
    bound = 1.2 * info.feature_abs_max  # configs/module: clip_x0 1.2
    shape = (size["num_windows"], size["window"], info.features)
    n_ddpm, n_ddim = size["schedule_steps"], size["ddim_steps"]
    common = dict(
        num_train_timesteps=n_ddpm,
        beta_start=1e-4,
        beta_end=0.02,
        beta_schedule="linear",
        prediction_type="sample",
        clip_sample=True,
        clip_sample_range=bound,
    )
    ddpm_sched = DDPMScheduler(variance_type="fixed_small", **common)
    ddim_sched = DDIMScheduler(set_alpha_to_one=True, timestep_spacing="linspace", **common)
    ours_ddpm, ours_ddim = DDPMSampler(progress=False), DDIMSampler(n_ddim, progress=False)
    denoiser = Denoiser(network, schedule, "x0", clip_x0=bound)
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(1)).to(device)
    noise_peer = noise
    samples = {}

    def run(name, fn):
        def call():
            samples[name] = fn(torch.Generator(device=device).manual_seed(2))

        return call

    fns = {
        "ours_ddpm": run("ours_ddpm", lambda g: ours_ddpm.sample(denoiser, schedule, noise, generator=g)),
        "diffusers_ddpm": run("diffusers_ddpm", lambda g: diffusers_loop(ddpm_sched, network, noise_peer, n_ddpm, g)),
        "ours_ddim": run("ours_ddim", lambda g: ours_ddim.sample(denoiser, schedule, noise, generator=g)),
        "diffusers_ddim": run("diffusers_ddim", lambda g: diffusers_loop(ddim_sched, network, noise_peer, n_ddim, g)),
    }
    t_batch = torch.full((shape[0],), n_ddpm // 2, device=device, dtype=torch.long)

    def network_only(steps: int):
        """The network calls of a `steps`-step loop alone, timed in that loop's rounds."""

        def call():
            with torch.inference_mode():
                for _ in range(steps):
                    network(noise, t_batch)

        return call

    # Each kind of loop is timed with its network calls alone, interleaved round by round, and the overhead is paired
    # within each round (the network's time per step drifts between short bursts and long loops on some machines).
    # DDIM loops: one warm-up round; DDPM loops (1000 steps warm themselves up): none.
    seconds, network_s, overhead = {}, {}, {}
    for kind, steps, warmup, repeats in (
        ("ddim", n_ddim, 1, size["sampling_repeats"] + 1),
        ("ddpm", n_ddpm, 0, size["sampling_repeats"]),
    ):
        group = {**{k: v for k, v in fns.items() if k.endswith(kind)}, "network": network_only(steps)}
        wall, _ = interleaved_times(group, device, warmup, repeats)
        alone = statistics.median(wall["network"])
        for name in (k for k in group if k != "network"):
            seconds[name] = statistics.median(wall[name])
            network_s[name] = alone
            overhead[name] = statistics.median(1 - net / loop for loop, net in zip(wall[name], wall["network"]))
    forward = network_s["ours_ddpm"] / n_ddpm
    with torch.inference_mode():
        flops_step = count_flops(lambda: network(noise, t_batch))
    training = data.train_set.features.numpy()  # (T_train, F) normalised
    window = resolve_windows([np.zeros(shape[1:])], info)["coverage_window"]
    cover = {name: 100 * coverage(samples[name].cpu().numpy(), training, window) for name in samples}
    result = {
        "num_windows": shape[0],
        "ddpm_steps": n_ddpm,
        "ddim_steps": n_ddim,
        "network_forward_s": forward,
        "network_flops_per_step": flops_step,
        "dance_model_train_steps": size["train_steps"],
        "dance_model_train_s": train_seconds,
        "dance_model_final_loss": final_loss,
        "coverage_window": window,
    }
    for name, total in seconds.items():
        result[name] = {
            "total_s": total,
            "network_s": network_s[name],
            "overhead": max(0.0, overhead[name]),
            "coverage_pct": cover[name],
        }
    result["ddim_speedup"] = seconds["ours_ddpm"] / seconds["ours_ddim"]
    result["coverage_gap_points"] = abs(cover["ours_ddpm"] - cover["ours_ddim"])
    report["sampling"] = result


def config_options(variant: str) -> dict:
    """The cost options configs/network/<variant>.yaml chooses (dropout placement, GELU, fused qkv, masks)."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(NETWORK_CONFIGS / f"{variant}.yaml")
    return {key: cfg[key] for key in COST_OPTIONS}


def config_fused_adamw() -> bool:
    """Whether configs/optimizer/adamw.yaml asks for the fused AdamW."""
    from omegaconf import OmegaConf

    return bool(OmegaConf.load(CONFIGS / "optimizer" / "adamw.yaml").get("fused", False))


def build_dit(variant: str, cfg: dict, features: int, text_dim: int, options: dict):
    """A DiT variant at size `cfg` with the cost `options` ({} = the class defaults, today's network)."""
    from motiondiff.networks import conditioning

    cls = {
        "incontext": conditioning.InContextTransformer,
        "adaln": conditioning.AdaLNTransformer,
        "cross_attention": conditioning.CrossAttentionTransformer,
    }[variant]
    return cls(
        features=features,
        text_dim=text_dim,
        latent_dim=cfg["latent_dim"],
        num_layers=cfg["num_layers"],
        num_heads=cfg["num_heads"],
        mlp_ratio=4.0,
        dropout=0.1,
        max_frames=max(196, cfg["frames"]),
        **options,
    )


def text_condition(batch: int, tokens: int, text_dim: int, device) -> dict:
    generator = torch.Generator().manual_seed(3)
    lengths = torch.randint(3, tokens + 1, (batch,), generator=generator)
    return {
        "text_pooled": torch.randn(batch, text_dim, generator=generator).to(device),
        "text_tokens": torch.randn(batch, tokens, text_dim, generator=generator).to(device),
        "text_mask": (torch.arange(tokens)[None] < lengths[:, None]).to(device),
    }


def section_dit(args, size, device, report, peak_flops):
    out = {}
    for size_name, cfg in size["dit"].items():
        for variant in VARIANTS:
            out[f"{size_name}/{variant}"] = {
                "size": size_name,
                **bench_dit_variant(variant, cfg, size, device, peak_flops),
            }
            if variant in cfg.get("compare_today", ()):
                out[f"{size_name}/{variant}"]["today"] = compare_today(variant, cfg, size, device, args.quick)
    report["dit_variants"] = out


DIT_FEATURES, DIT_TEXT_DIM, DIT_TOKENS, DIT_GUIDANCE = 263, 384, 16, 2.5


def dit_training(network, schedule, batch: int, frames: int, device, fused: bool, lengths=None) -> tuple:
    """A training step of `network` (loss, backward, AdamW (`fused` or the per-tensor loop), EMA) on a fixed batch:
    (step callable, loss of the batch as a callable, optimizer). Half the batch is motions 3/4 as long (or the motions
    are `lengths` frames long, one per sample) and 10% of the captions are dropped."""
    loss_fn = DiffusionLoss("epsilon")
    optimizer = torch.optim.AdamW(network.parameters(), lr=5e-4, weight_decay=0.01, fused=fused)
    ema = make_ema(network).to(device)
    x0 = torch.randn(batch, frames, DIT_FEATURES, generator=torch.Generator().manual_seed(6)).to(device)
    if lengths is None:  # some shorter motions, as in a real batch
        lengths = [frames] * (batch // 2) + [frames * 3 // 4] * (batch - batch // 2)
    assert len(lengths) == batch and max(lengths) <= frames, f"{batch} lengths of at most {frames} frames"
    mask = torch.arange(frames, device=device)[None] < torch.tensor(lengths, device=device)[:, None]  # (B, N)
    drop = torch.rand(batch, generator=torch.Generator().manual_seed(4)) < 0.1
    cond = {**text_condition(batch, DIT_TOKENS, DIT_TEXT_DIM, device), "drop": drop.to(device)}

    def loss():
        return loss_fn(network, schedule, x0, mask, cond=cond)

    def step():
        network.train()
        value = loss()
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        optimizer.step()
        ema.update()

    return step, loss, optimizer


def dit_denoiser(network, schedule, batch: int, frames: int, device) -> Denoiser:
    """The guided denoiser of the sampling measurements: `batch` captions, no padding, guidance weight 2.5."""
    cond = text_condition(batch, DIT_TOKENS, DIT_TEXT_DIM, device)
    mask = torch.ones(batch, frames, dtype=torch.bool, device=device)
    return Denoiser(network, schedule, "epsilon", cond=cond, mask=mask, guidance_weight=DIT_GUIDANCE)


def measure_side(variant: str, side: str, quick: bool, device, sample_only: bool = False) -> dict:
    """One side of compare_today in this process: the training step and the guided step of today's network (`side`
    "today": the class defaults, per-tensor AdamW) or the config defaults ("config"), each timed after a warm-up:
    {"train": [wall s], "train_cpu": [...], "guided": [...], "guided_cpu": [...]}; `sample_only`: the guided step
    alone, in a process that has not trained (as `generate` samples), without the "train" keys."""
    size = sizes(quick, cuda=device.type == "cuda")
    cfg = size["dit"]["reference"]
    schedule = LinearSchedule(size["schedule_steps"]).to(device)
    tb, gb, frames = cfg["train_batch"], cfg["gen_batch"], cfg["frames"]
    noise = torch.randn(gb, frames, DIT_FEATURES, generator=torch.Generator().manual_seed(5)).to(device)
    t_mid = torch.full((gb,), size["schedule_steps"] // 2, device=device, dtype=torch.long)
    torch.manual_seed(0)
    options = {} if side == "today" else config_options(variant)
    network = build_dit(variant, cfg, DIT_FEATURES, DIT_TEXT_DIM, options).to(device)
    denoiser = dit_denoiser(network, schedule, gb, frames, device)

    def guided():
        network.eval()
        with torch.inference_mode():
            denoiser(noise, t_mid)

    repeats, times = size["dit_compare_repeats"], {}
    if not sample_only:
        train = dit_training(network, schedule, tb, frames, device, side == "config" and config_fused_adamw())[0]
        wall, cpu = interleaved_times({"train": train}, device, size["dit_warmup"] + 1, repeats)
        times = {"train": wall["train"], "train_cpu": cpu["train"]}
    wall_g, cpu_g = interleaved_times({"guided": guided}, device, 1, repeats)
    return {**times, "guided": wall_g["guided"], "guided_cpu": cpu_g["guided"]}


def side_in_process(variant: str, side: str, quick: bool, device, sample_only: bool = False) -> dict:
    """measure_side in a fresh Python process with this one's torch threads (`bench.py --compare-side`)."""
    command = [sys.executable, str(Path(__file__).resolve()), "--compare-side", variant, side, "--device", str(device)]
    command += ["--threads", str(torch.get_num_threads())] + (["--quick"] if quick else [])
    command += ["--sample-only"] if sample_only else []
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare_today(variant: str, cfg: dict, size: dict, device, quick: bool = False) -> dict:
    """Today's network (the class defaults) against the config defaults: a training step and a guided step, each
    network in its own process (as a user trains one; the config's keeps glibc's freed memory, as the commands do),
    the two alternating for `dit_compare_rounds` rounds; the ratios pair the sides of a round, and their medians over
    the rounds are reported. Then as many rounds of the guided step alone, in processes that only sample (as
    `generate` does): the targets read the first."""
    rounds = [
        {side: side_in_process(variant, side, quick, device) for side in ("today", "config")}
        for _ in range(size["dit_compare_rounds"])
    ]
    alone = [
        {side: side_in_process(variant, side, quick, device, sample_only=True) for side in ("today", "config")}
        for _ in range(size["dit_compare_rounds"])
    ]

    def median(side: str, key: str, of: list = rounds) -> float:
        return statistics.median(statistics.median(r[side][key]) for r in of)

    def ratios(key: str, of: list = rounds) -> list:  # per round, today's median time / the config's
        return [statistics.median(r["today"][key]) / statistics.median(r["config"][key]) for r in of]

    def ratio(key: str, of: list = rounds) -> float:  # their median over the rounds
        return statistics.median(ratios(key, of))

    tb, gb = cfg["train_batch"], cfg["gen_batch"]
    return {
        "options": config_options(variant),
        "fused_adamw": config_fused_adamw(),
        "config_heap_kept": all(r["config"]["heap_kept"] for r in rounds),
        "today_heap_kept": any(r["today"]["heap_kept"] for r in rounds),
        "train_batch": tb,
        "gen_batch": gb,
        "repeats": size["dit_compare_repeats"],
        "rounds": len(rounds),
        "today_train_samples_per_s": tb / median("today", "train"),
        "config_train_samples_per_s": tb / median("config", "train"),
        "train_speedup": ratio("train"),
        "train_speedup_cpu_time": ratio("train_cpu"),
        "today_guided_step_s": median("today", "guided"),
        "config_guided_step_s": median("config", "guided"),
        "guided_time_ratio": 1 / ratio("guided"),
        "guided_time_ratio_cpu_time": 1 / ratio("guided_cpu"),
        "today_guided_alone_s": median("today", "guided", alone),
        "config_guided_alone_s": median("config", "guided", alone),
        "guided_alone_time_ratio": 1 / ratio("guided", alone),
        "train_speedup_rounds": ratios("train"),  # the spread behind the medians above
        "guided_time_ratio_rounds": [1 / r for r in ratios("guided")],
        "guided_alone_time_ratio_rounds": [1 / r for r in ratios("guided", alone)],
    }


def bench_dit_variant(variant: str, cfg: dict, size: dict, device, peak_flops: float) -> dict:
    """One DiT variant at one size as its config builds it: a training step and a guided sampling step, timed,
    counted and their memory."""
    torch.manual_seed(0)
    network = build_dit(variant, cfg, DIT_FEATURES, DIT_TEXT_DIM, config_options(variant)).to(device)
    schedule = LinearSchedule(size["schedule_steps"]).to(device)
    tb, gb, frames = cfg["train_batch"], cfg["gen_batch"], cfg["frames"]
    train_step, train_loss, optimizer = dit_training(network, schedule, tb, frames, device, config_fused_adamw())
    with PeakMemory(device) as train_memory:
        train_s = median_times({"t": train_step}, device, size["dit_warmup"], size["dit_repeats"])["t"]
    train_flops = count_flops(lambda: train_loss().backward())
    optimizer.zero_grad(set_to_none=True)

    network.eval()
    denoiser = dit_denoiser(network, schedule, gb, frames, device)
    sampler = DDIMSampler(size["ddim_steps"], progress=False)
    noise = torch.randn(gb, frames, DIT_FEATURES, generator=torch.Generator().manual_seed(5)).to(device)
    t_mid = torch.full((gb,), size["schedule_steps"] // 2, device=device, dtype=torch.long)
    with torch.inference_mode():
        step_flops = count_flops(lambda: denoiser(noise, t_mid))  # also the warm-up
    with PeakMemory(device) as gen_memory, torch.inference_mode():
        step_s = median_times({"s": lambda: denoiser(noise, t_mid)}, device, 0, size["dit_step_repeats"])["s"]
        if cfg["gen_full"]:
            latency = median_times({"g": lambda: sampler.sample(denoiser, schedule, noise)}, device, 0, 1)["g"]
        else:
            latency = None
    return {
        "variant": variant,
        "params": num_params(network),
        "latent_dim": cfg["latent_dim"],
        "num_layers": cfg["num_layers"],
        "frames": frames,
        "train_batch": tb,
        "train_step_s": train_s,
        "train_samples_per_s": tb / train_s,
        "train_flops": train_flops,
        "train_peak_fraction": train_flops / train_s / peak_flops,
        "train_peak_mem_mb": train_memory.peak_bytes / 2**20,
        "gen_batch": gb,
        "guidance_weight": DIT_GUIDANCE,
        "guided_step_s": step_s,
        "guided_step_flops": step_flops,
        "guided_step_peak_fraction": step_flops / step_s / peak_flops,
        "ddim_latency_s": latency if latency is not None else size["ddim_steps"] * step_s,
        "ddim_latency_measured": latency is not None,
        "gen_peak_mem_mb": gen_memory.peak_bytes / 2**20,
    }


# ----------------------------------------------------------------------------------------------- report


def targets(report: dict) -> list:
    rows = []
    tr = report["punet_training"]
    rows.append(("punet training >= 1.3x peer samples/s", f"{tr['ratio']:.2f}x", tr["ratio"] >= TARGET_TRAIN_RATIO))
    s = report["sampling"]
    for name in ("ours_ddpm", "ours_ddim"):
        kind = "DDPM" if "ddpm" in name else "DDIM"
        label = f"sampler overhead < 5% ({kind}-{s['ddpm_steps' if kind == 'DDPM' else 'ddim_steps']})"
        rows.append((label, f"{100 * s[name]['overhead']:.1f}%", s[name]["overhead"] < TARGET_OVERHEAD))
    rows.append(
        (
            f"DDIM-{s['ddim_steps']} >= 15x faster than DDPM-{s['ddpm_steps']}",
            f"{s['ddim_speedup']:.1f}x",
            s["ddim_speedup"] >= TARGET_DDIM_SPEEDUP,
        )
    )
    rows.append(
        (
            "dance coverage DDIM within 5 points of DDPM",
            f"{s['ours_ddpm']['coverage_pct']:.1f}% vs {s['ours_ddim']['coverage_pct']:.1f}% "
            f"({s['coverage_gap_points']:.1f} pts)",
            s["coverage_gap_points"] <= TARGET_COVERAGE_POINTS,
        )
    )
    for row in report["dit_variants"].values():
        if row["size"] != "reference":
            continue
        for what, fraction in (
            ("training step", row["train_peak_fraction"]),
            ("guided sampling step", row["guided_step_peak_fraction"]),
        ):
            rows.append(
                (
                    f"{row['variant']} {what} >= 40% of matmul peak",
                    f"{100 * fraction:.0f}%",
                    fraction >= TARGET_PEAK_FRACTION,
                )
            )
    rows.extend(today_targets(report))
    return rows


def today_targets(report: dict) -> list:
    """Issue 19's rows: the config defaults' training samples/s and guided step time against today's network."""
    rows = []
    for row in report["dit_variants"].values():
        today = row.get("today")
        if today is None:
            continue
        speedup, ratio = today["train_speedup"], today["guided_time_ratio"]
        label = f"{row['variant']} training >= {TARGET_DIT_TRAIN_SPEEDUP}x today's samples/s"
        rows.append((label, f"{speedup:.2f}x", speedup >= TARGET_DIT_TRAIN_SPEEDUP))
        label = f"{row['variant']} guided step <= {TARGET_DIT_GUIDED_TIME}x today's time"
        rows.append((label, f"{ratio:.2f}x", ratio <= TARGET_DIT_GUIDED_TIME))
    return rows


def spread(values: list) -> str:
    """' [lowest-highest x]' of a comparison's per-round ratios; empty for one round."""
    return f" [{min(values):.2f}-{max(values):.2f}x]" if len(values) > 1 else ""


def today_table(report: dict) -> list:
    """The Markdown parts comparing today's DiT network with the config defaults (empty when not measured)."""
    rows = [(r["variant"], r["today"]) for r in report["dit_variants"].values() if "today" in r]
    if not rows:
        return []
    options = ", ".join(f"{key}={value}" for key, value in rows[0][1]["options"].items())
    cells = [
        [
            variant,
            f"{t['today_train_samples_per_s']:.2f}",
            f"{t['config_train_samples_per_s']:.2f}",
            f"**{t['train_speedup']:.2f}x** ({t['train_speedup_cpu_time']:.2f}x)" + spread(t["train_speedup_rounds"]),
            f"{t['today_guided_step_s']:.3f}",
            f"{t['config_guided_step_s']:.3f}",
            f"**{t['guided_time_ratio']:.2f}x** ({t['guided_time_ratio_cpu_time']:.2f}x)"
            + spread(t["guided_time_ratio_rounds"]),
            f"{t['today_guided_alone_s']:.3f} / {t['config_guided_alone_s']:.3f}: {t['guided_alone_time_ratio']:.2f}x"
            + spread(t["guided_alone_time_ratio_rounds"]),
        ]
        for variant, t in rows
    ]
    header = ["variant", "today samples/s", "config samples/s", "speed-up", "today guided (s)", "config guided (s)"]
    first = rows[0][1]
    return [
        f"**DiT: today's network against the config defaults** (reference size, float32; each network in its own "
        f"process, the two alternating for {first['rounds']} rounds of {first['repeats']} steps each, the ratios "
        f"paired within a round; training batch {first['train_batch']}, guided batch {first['gen_batch']}). Today = "
        "the class defaults (dropout on every residual branch with torch's "
        f"Bernoulli masks, tanh GELU, separate q/kv, masks always built, adaLN products in two passes, the MLP over "
        f"all tokens at once) trained with torch's per-tensor AdamW; config = {options}, AdamW "
        f"fused={first['fused_adamw']} (configs/optimizer/adamw.yaml), in a process that keeps glibc's freed memory "
        f"as motiondiff's commands do (core.allocator): {'yes' if first['config_heap_kept'] else 'no'} (today's: "
        f"{'yes' if first['today_heap_kept'] else 'no'}). In brackets: the same ratios of process CPU time; in square "
        "brackets: the lowest and highest of the rounds' ratios. Guided alone: the guided step in processes that only "
        "sample, as `generate` does (the targets read the time ratio).",
        markdown_table([*header, "time ratio", "guided alone (s): today / config, ratio"], cells),
    ]


def bf16_note(report: dict) -> str:
    """'; bfloat16 matmul peak ... GFLOP/s' when the run measured it (CUDA, --quick), else ''."""
    peak = report["throughput"]["matmul_bf16_peak_gflops"]
    return "" if peak is None else f"; bfloat16 matmul peak {peak:.1f} GFLOP/s (n={report['sizes']['matmul_bf16']})"


def markdown(report: dict) -> str:
    m, tr, s = report["machine"], report["punet_training"], report["sampling"]
    peak, tp = report["throughput"]["matmul_peak_gflops"], report["throughput"]
    device = m.get("gpu", m["device"])
    peer = f"denoising-diffusion-pytorch Unet1D dim {tr['peer_config']['dim']} x {tr['peer_config']['dim_mults']}"
    training = [
        [
            "ours: PUNet 64 x [1, 2], 1 block",
            f"{tr['ours_params']:,}",
            f"{1e3 * tr['ours_step_s']:.1f}",
            f"{tr['ours_samples_per_s']:.0f}",
            f"{tr['ours_train_flops'] / 1e9:.2f}",
        ],
        [
            f"{peer} + GaussianDiffusion1D",
            f"{tr['peer_params']:,}",
            f"{1e3 * tr['peer_step_s']:.1f}",
            f"{tr['peer_samples_per_s']:.0f}",
            f"{tr['peer_train_flops'] / 1e9:.2f}",
        ],
        ["**ratio ours / peer**", f"{tr['ours_params'] / tr['peer_params']:.2f}", "", f"**{tr['ratio']:.2f}x**", ""],
    ]
    sampling = []
    for name in ("ours_ddpm", "diffusers_ddpm", "ours_ddim", "diffusers_ddim"):
        r = s[name]
        steps = f"DDPM-{s['ddpm_steps']}" if "ddpm" in name else f"DDIM-{s['ddim_steps']}"
        label = ("ours " if name.startswith("ours") else "diffusers ") + steps
        cells = [
            f"{r['total_s']:.2f}",
            f"{r['network_s']:.2f}",
            f"{100 * r['overhead']:.1f}%",
            f"{r['coverage_pct']:.1f}%",
        ]
        sampling.append([label, *cells])
    variants = []
    for r in report["dit_variants"].values():
        latency = f"{r['ddim_latency_s']:.1f}" + ("" if r["ddim_latency_measured"] else " (50 x step)")
        variants.append(
            [
                f"{r['size']} {r['latent_dim']}x{r['num_layers']} / {r['variant']}",
                f"{r['params'] / 1e6:.1f}M",
                r["train_batch"],
                f"{r['train_samples_per_s']:.1f}",
                f"{100 * r['train_peak_fraction']:.0f}%",
                f"{r['train_peak_mem_mb']:.0f}",
                f"{r['guided_step_s']:.3f}, {r['gen_batch']}",
                f"{100 * r['guided_step_peak_fraction']:.0f}%",
                f"{latency}, {r['gen_batch']}",
                f"{r['gen_peak_mem_mb']:.0f}",
            ]
        )
    variant_header = [
        "size / variant",
        "params",
        "train batch",
        "train samples/s",
        "train % of peak",
        "train peak mem (MB)",
        "guided step, batch (s)",
        "guided % of peak",
        "DDIM latency, batch (s)",
        "gen peak mem (MB)",
    ]
    targets_table = [[name, value, "met" if ok else "missed"] for name, value, ok in report["targets"]]
    parts = [
        f"Machine: {m['cpu']}, {m['cpu_count']} cores, torch {m['torch']}, {m['torch_threads']} threads, "
        f"device {device}; load average at start {m['load_average'][0]:.2f}; {m['date']}; "
        f"mode {'quick' if report['quick'] else 'full'}.",
        "**1. punet training step** (forward + backward + AdamW + EMA), batch "
        f"{tr['batch']} x {tr['window']} frames x {tr['features']} features",
        markdown_table(["implementation", "parameters", "step (ms)", "samples/s", "model GFLOP/step"], training),
        f"**2. Sampling** {s['num_windows']} dance windows (network forward {1e3 * s['network_forward_s']:.2f} "
        f"ms/step, dance model trained {s['dance_model_train_steps']} steps in {s['dance_model_train_s']:.0f} s, "
        f"final loss {s['dance_model_final_loss']:.3f})",
        markdown_table(["sampler loop", "total (s)", "network (s)", "overhead", "dance coverage"], sampling),
        f"DDIM-{s['ddim_steps']} speed-up over DDPM-{s['ddpm_steps']} (ours): {s['ddim_speedup']:.1f}x; coverage gap "
        f"{s['coverage_gap_points']:.1f} points (window {s['coverage_window']} frames).",
        "**3 + 4. DiT variants** as configs/network/*.yaml build them, 263 features, text dim 384, 16 text tokens, "
        "guidance weight 2.5; float32 matmul "
        f"peak {peak:.1f} GFLOP/s (n={report['throughput']['matmul_size']})" + bf16_note(report),
        markdown_table(variant_header, variants),
        *today_table(report),
        f"punet: training step {100 * tp['punet_train_peak_fraction']:.0f}% of peak, sampling step "
        f"(batch {s['num_windows']}) {100 * tp['punet_sampling_peak_fraction']:.0f}% of peak.",
        "**Targets**",
        markdown_table(["target", "measured", ""], targets_table),
    ]
    return "\n\n".join(parts) + "\n"


def write_json(out: Path, report: dict) -> None:
    """<out>/bench.json: the whole report, or the sections measured so far."""
    (out / "bench.json").write_text(json.dumps(report, indent=2, default=str))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes and few repeats (smoke test)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda")
    parser.add_argument("--out", default="benchmarks/results", help="folder for bench.json and bench.md")
    parser.add_argument(
        "--data-motions",
        type=int,
        default=None,
        help="the data section's procedural set (default 29000, HumanML3D's size, about 10 min; 0 = skip; --quick: 0)",
    )
    parser.add_argument(
        "--compare-side", nargs=2, metavar=("VARIANT", "SIDE"), help="(internal) one side of today vs config, as JSON"
    )
    parser.add_argument(
        "--sample-only", action="store_true", help="(internal) with --compare-side: the guided step only"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.compare_side:  # compare_today's worker: one network in this process
        variant, side = args.compare_side
        heap_kept = side == "config" and keep_freed_memory()  # today's code left glibc's malloc as it was
        times = measure_side(variant, side, args.quick, device, args.sample_only)
        print(json.dumps({**times, "heap_kept": heap_kept}))
        return {}
    heap_kept = keep_freed_memory()  # as motiondiff's commands run (core.allocator)
    print(f"torch threads: {torch.get_num_threads()}; glibc's freed memory kept: {heap_kept}", flush=True)
    peers = import_peers()
    size = sizes(args.quick, cuda=device.type == "cuda")
    report = {"quick": args.quick, "machine": {**machine_info(device), "heap_kept": heap_kept}, "sizes": size}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    repeats = 5 if args.quick else 10
    peak = matmul_peak(device, size["matmul"], repeats)
    print(f"float32 matmul peak: {peak / 1e9:.1f} GFLOP/s", flush=True)
    peak_bf16 = None
    if device.type == "cuda" or args.quick:
        peak_bf16 = matmul_peak(device, size["matmul_bf16"], repeats, dtype=torch.bfloat16)
        print(f"bfloat16 matmul peak: {peak_bf16 / 1e9:.1f} GFLOP/s (n={size['matmul_bf16']})", flush=True)
    report["throughput"] = {"matmul_bf16_peak_gflops": peak_bf16 / 1e9 if peak_bf16 else None}
    section_punet_training(args, size, device, peers, report)
    write_json(out, report)
    print(f"[1] punet training done ({time.perf_counter() - started:.0f} s)", flush=True)
    section_sampling(args, size, device, peers, report)
    write_json(out, report)
    print(f"[2] sampling done ({time.perf_counter() - started:.0f} s)", flush=True)
    section_dit(args, size, device, report, peak)
    write_json(out, report)
    print(f"[3] DiT variants done ({time.perf_counter() - started:.0f} s)", flush=True)
    data_motions = args.data_motions if args.data_motions is not None else (0 if args.quick else 29000)
    if data_motions:  # 4. the data pipeline at scale (benchmarks/data_bench.py): start-up, memory, loader speed
        data_args = dict(motions=data_motions, captions_per_motion=3, data_dir=None, threads=None, quick=False)
        section_data(argparse.Namespace(**data_args), report)
        write_json(out, report)
        print(f"[4] data pipeline done ({time.perf_counter() - started:.0f} s)", flush=True)
    peak_end = matmul_peak(device, size["matmul"], repeats)
    tr, s = report["punet_training"], report["sampling"]
    report["throughput"] = {
        **report["throughput"],
        "matmul_size": size["matmul"],
        "matmul_peak_gflops": peak / 1e9,
        "matmul_peak_end_gflops": peak_end / 1e9,
        "punet_train_peak_fraction": tr["ours_train_flops"] / tr["ours_step_s"] / peak,
        "punet_sampling_peak_fraction": s["network_flops_per_step"] / s["network_forward_s"] / peak,
        "dit": {
            k: {"train": r["train_peak_fraction"], "guided_step": r["guided_step_peak_fraction"]}
            for k, r in report["dit_variants"].items()
        },
    }
    report["targets"] = targets(report)
    report["seconds"] = time.perf_counter() - started
    text = markdown(report) + (f"\n{data_markdown(report)}" if "data" in report else "")
    (out / "bench.md").write_text(text)
    write_json(out, report)
    print(text)
    print(f"wrote {out / 'bench.json'} and {out / 'bench.md'} ({report['seconds']:.0f} s)")
    return report


if __name__ == "__main__":
    main()
