"""Text-to-motion at the reference size on one GPU: training throughput and guided sampling latency.

    python benchmarks/gpu_train.py --device cuda --out outputs/gpu_train   # on a GPU (a few minutes, most compiling)
    .venv/bin/python benchmarks/gpu_train.py --quick                       # tiny sizes on the CPU (smoke test)

The module is the real one, built from the composed configs (experiment=text2motion with network=adaln at the
reference size 512 wide, 8 layers, 16 heads; trainer=gpu; compile.enabled=true), fed synthetic batches of
196-frame, 263-feature motions with 384-wide captions of 16 tokens. Parts (--parts, all by default):
  train      forward + backward + gradient clipping + AdamW + EMA update under the trainer's precision (bf16-mixed:
             bfloat16 autocast), eager at batch 8 and at the experiment's batch; samples/s and model FLOPs per second
             as a fraction of the bfloat16 matmul peak measured in this run.
  sample     32 guided motions (weight 2.5, 196 frames) with configs/sampler/ddim.yaml (50 steps) and dpmsolver.yaml
             (10 steps), in bfloat16 autocast and in float32: seconds per batch.
  lightning  the same module trained by the configured Lightning Trainer (trainer=gpu) for a few steps: samples/s.
  compile    the training run's torch.compile of the network and its EMA (compile.*), then train at the experiment's
             batch and at the largest batch, compiled afresh for each (static shapes): samples/s, and the warm-up's
             seconds (3 steps, compiling included).
  profile    torch.profiler over 5 compiled training steps at the experiment's batch (asked for by name only, not in
             the default parts): GPU kernel time by kind (matmul, attention, optimizer, other) against the wall time,
             and the top kernels, in gpu_train.json and <out>/profile.txt.
Extra arguments are config overrides (compile.mode=max-autotune). Writes <out>/gpu_train.json after every part.
"""

import argparse
import json
import statistics
import time
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch.utils.data import DataLoader

from bench import PeakMemory, count_flops, machine_info, matmul_peak, num_params, sync, text_condition  # benchmarks/
from motiondiff.cli.app import CONFIG_DIR, compose_command_config
from motiondiff.data.info import TextMotionData
from motiondiff.runs.train import _compile_networks
from motiondiff.training.build import build_module

PARTS = ("train", "sample", "lightning", "compile", "profile")
FEATURES, TEXT_DIM, TOKENS, GUIDANCE = 263, 384, 16, 2.5
REFERENCE = ["network.latent_dim=512", "network.num_layers=8", "network.num_heads=16"]
TINY = ["network.latent_dim=32", "network.num_layers=1", "network.num_heads=4", "compile.backend=eager"]


def sizes(quick: bool) -> dict:
    """Frames, batches, repeats and sampler steps: the reference run, or a few seconds on a CPU."""
    if quick:
        return dict(frames=16, batches=[2, 4], warmup=1, rounds=1, steps=2, gen_batch=2, sampler_steps=3, matmul=128)
    return dict(
        frames=196, batches=[8, None, 256], warmup=3, rounds=3, steps=10, gen_batch=32, sampler_steps=None, matmul=8192
    )


def compose_train(out: Path, overrides: list):
    """configs/train.yaml composed as a run would (experiment=text2motion, adaln, trainer=gpu, compile on)."""
    return compose_command_config("train", [f"paths.output_dir={out}", *overrides])


def data_info(frames: int) -> TextMotionData:
    """A HumanML3D-layout text-motion description (263 features, 384-wide captions of 16 tokens)."""
    return TextMotionData(
        features=FEATURES,
        num_joints=22,
        dims=3,
        fps=20.0,
        joint_names=[f"j{i}" for i in range(22)],
        parents=[-1, *range(21)],
        feature_abs_max=5.0,
        source="synthetic",
        representation="humanml3d",
        layout="humanml3d",
        max_frames=frames,
        min_frames=min(40, frames),
        text_dim=TEXT_DIM,
        text_encoder="synthetic",
        text_tokens=TOKENS,
        dataset_id="synthetic",
        num_train=1000,
        num_val=100,
        length_distribution=[frames],
    )


def batch_of(size: int, frames: int, device) -> dict:
    """A training batch: motions (B, N, F), a frame mask (B, N) with some shorter motions, and captions."""
    generator = torch.Generator().manual_seed(size)
    mask = torch.ones(size, frames, dtype=torch.bool)
    mask[size // 2 :, frames * 3 // 4 :] = False
    motion = torch.randn(size, frames, FEATURES, generator=generator)
    return {
        "motion": motion.to(device),
        "mask": mask.to(device),
        "cond": text_condition(size, TOKENS, TEXT_DIM, device),
    }


def autocast(device, precision: str):
    """The autocast of a Lightning precision: bfloat16 for bf16-mixed, off for 32-true."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision.startswith("bf16"))


def train_stepper(module, cfg, batch: dict, device):
    """One optimizer step as Lightning takes it: loss under autocast, backward, clipping, AdamW, EMA update."""
    optimizer = module.optimizer_factory(params=module.network.parameters())
    clip = cfg.trainer.get("gradient_clip_val") or 0.0

    def step():
        with autocast(device, cfg.trainer.precision):
            cond = module.drop_conditions(batch["cond"])
            loss = module.loss(module.network, module.schedule, batch["motion"], batch["mask"], cond=cond)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(module.network.parameters(), clip)
        optimizer.step()
        module.ema.update()

    return step


def time_steps(step, size: dict, device) -> tuple:
    """(seconds of the warm-up steps, median seconds per step over rounds of size['steps'] steps)."""
    start = time.perf_counter()
    for _ in range(size["warmup"]):
        step()
    sync(device)
    warmup_s = time.perf_counter() - start
    rounds = []
    for _ in range(size["rounds"]):
        start = time.perf_counter()
        for _ in range(size["steps"]):
            step()
        sync(device)
        rounds.append((time.perf_counter() - start) / size["steps"])
    return warmup_s, statistics.median(rounds)


def model_flops(module, batch: dict) -> int:
    """FLOPs of one forward + backward of the loss (counted eagerly; the same in any precision)."""
    x0, mask, cond = batch["motion"], batch["mask"], batch["cond"]
    flops = count_flops(lambda: module.loss(module.network, module.schedule, x0, mask, cond=cond).backward())
    module.network.zero_grad(set_to_none=True)
    return flops


def measure_training(module, cfg, batch_size: int, size: dict, device, peak: float, flops=None) -> dict:
    """Samples/s, step time, model FLOPs per step and their fraction of the bfloat16 peak, peak memory."""
    batch = batch_of(batch_size, size["frames"], device)
    flops = flops or model_flops(module, batch)
    with PeakMemory(device) as memory:
        warmup_s, step_s = time_steps(train_stepper(module, cfg, batch, device), size, device)
    return {
        "batch": batch_size,
        "step_s": step_s,
        "samples_per_s": batch_size / step_s,
        "warmup_s": warmup_s,
        "model_flops_per_step": flops,
        "bf16_peak_fraction": flops / step_s / peak,
        "peak_mem_mb": memory.peak_bytes / 2**20,
    }


def measure_sampling(module, size: dict, device) -> dict:
    """Seconds for gen_batch guided motions with the DDIM and DPM-Solver++ configs, bfloat16 autocast and float32."""
    gb, frames = size["gen_batch"], size["frames"]
    cond = text_condition(gb, TOKENS, TEXT_DIM, device)
    mask = torch.ones(gb, frames, dtype=torch.bool, device=device)
    results = {}
    for name in ("ddim", "dpmsolver"):
        sampler_cfg = OmegaConf.load(CONFIG_DIR / "sampler" / f"{name}.yaml")
        steps = size["sampler_steps"] or sampler_cfg.num_steps
        sampler = instantiate(sampler_cfg, num_steps=steps, progress=False)
        for precision in ("bf16-mixed", "32-true"):

            def run(sampler=sampler, precision=precision):
                with autocast(device, precision):
                    generator = torch.Generator(device=device).manual_seed(0)
                    module.sample(gb, sampler, generator, frames=frames, cond=cond, mask=mask, guidance_weight=GUIDANCE)

            run()  # warm-up
            seconds = [timed(run, device) for _ in range(max(1, size["rounds"] - 1))]
            results[f"{name}{steps}/{precision}"] = {"steps": steps, "batch": gb, "seconds": statistics.median(seconds)}
            print(f"  sample {name}-{steps} {precision}: {results[f'{name}{steps}/{precision}']['seconds']:.3f} s")
    return results


def timed(fn, device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


class StepTimer(L.Callback):
    """Seconds from each training batch's start to the next (the whole step with its EMA update), synchronised."""

    def __init__(self, device):
        self.device, self.starts = device, []

    def on_train_batch_start(self, *args):
        sync(self.device)
        self.starts.append(time.perf_counter())

    def on_train_end(self, *args):
        self.on_train_batch_start()

    @property
    def seconds(self) -> list:
        return [b - a for a, b in zip(self.starts, self.starts[1:])]


def measure_lightning(cfg, size: dict, device, batch_size: int) -> dict:
    """The configured Trainer (precision, clipping) fitting a fresh module on synthetic batches: samples/s."""
    module = build_module(cfg, data_info(size["frames"]))
    steps = size["warmup"] + size["rounds"] * size["steps"]
    loader = DataLoader([batch_of(batch_size, size["frames"], "cpu")] * steps, batch_size=None)
    timer = StepTimer(device)
    accelerator = {"accelerator": "cpu"} if device.type == "cpu" else {}
    trainer = instantiate(
        cfg.trainer,
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        limit_val_batches=0,
        callbacks=[timer],
        **accelerator,
    )
    trainer.fit(module, train_dataloaders=loader)
    step_s = statistics.median(timer.seconds[size["warmup"] :])
    return {
        "batch": batch_size,
        "precision": str(trainer.precision),
        "step_s": step_s,
        "samples_per_s": batch_size / step_s,
    }


KERNEL_KINDS = {  # substrings of CUDA kernel names, first match wins
    "attention": ("flash", "fmha", "attention", "sdpa"),
    "matmul": ("gemm", "nvjet", "cutlass", "sm90_", "wgmma"),
    "optimizer_ema": ("multi_tensor", "adam", "foreach", "lerp"),
}


def kernel_kind(name: str) -> str:
    """The kind of a CUDA kernel by its name: attention, matmul, optimizer_ema or other."""
    lowered = name.lower()
    return next((kind for kind, keys in KERNEL_KINDS.items() if any(k in lowered for k in keys)), "other")


def profile_training(module, cfg, batch_size: int, frames: int, device, out: Path, steps: int = 5) -> dict:
    """GPU kernel seconds per step by kind, against the step's wall time, over `steps` profiled steps."""
    from torch.profiler import ProfilerActivity, profile

    step = train_stepper(module, cfg, batch_of(batch_size, frames, device), device)
    for _ in range(3):
        step()
    sync(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        start = time.perf_counter()
        for _ in range(steps):
            step()
        sync(device)
        wall = (time.perf_counter() - start) / steps
    kinds = dict.fromkeys([*KERNEL_KINDS, "other"], 0.0)
    for event in prof.key_averages():
        if event.device_type == torch.autograd.DeviceType.CUDA:
            kinds[kernel_kind(event.key)] += event.self_device_time_total / 1e6 / steps
    table = prof.key_averages().table(sort_by="self_device_time_total", row_limit=30)
    (out / "profile.txt").write_text(table)
    busy = sum(kinds.values())
    row = {"batch": batch_size, "wall_step_s": wall, "kernel_s": kinds, "gpu_busy_fraction": busy / wall}
    print(
        f"profile batch {batch_size}: step {1e3 * wall:.2f} ms, GPU busy {100 * busy / wall:.0f}%, kernels "
        + ", ".join(f"{k} {1e3 * v:.2f} ms" for k, v in kinds.items()),
        flush=True,
    )
    return row


def show(label: str, row: dict) -> None:
    """One line of a training measurement."""
    fraction = 100 * row["bf16_peak_fraction"]
    print(
        f"{label} batch {row['batch']}: {row['samples_per_s']:.1f} samples/s, {fraction:.1f}% of bf16 peak, "
        f"warm-up {row['warmup_s']:.1f} s, peak memory {row['peak_mem_mb']:.0f} MB",
        flush=True,
    )


def save(out: Path, report: dict) -> None:
    """<out>/gpu_train.json: what was measured so far."""
    (out / "gpu_train.json").write_text(json.dumps(report, indent=2, default=str))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes and few repeats (smoke test)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cuda | cpu")
    parser.add_argument("--parts", default=",".join(PARTS[:-1]), help=f"comma-separated, of {', '.join(PARTS)}")
    parser.add_argument("--batches", help="training batch sizes, comma-separated (default 8,<experiment's>,256)")
    parser.add_argument("--out", default="benchmarks/results", help="folder for gpu_train.json")
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. compile.mode=max-autotune")
    args = parser.parse_args(argv)
    parts = [p for p in args.parts.split(",") if p]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        parser.error(f"--parts: {unknown[0]} is not a part; choose from {', '.join(PARTS)}")
    device, size, out = torch.device(args.device), sizes(args.quick), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    base = ["experiment=text2motion", "network=adaln", "trainer=gpu", "compile.enabled=true"]
    cfg = compose_train(out / "run", [*base, *(TINY if args.quick else REFERENCE), *args.overrides])
    if args.batches:
        size["batches"] = [int(b) for b in args.batches.split(",")]
    size["batches"] = [b or cfg.dataset.batch_size for b in size["batches"]]
    torch.manual_seed(0)
    module = build_module(cfg, data_info(size["frames"])).to(device)
    report = {"machine": machine_info(device), "quick": args.quick, "sizes": size, "parts": parts}
    report["config"] = {
        "network": OmegaConf.to_container(cfg.network),
        "precision": cfg.trainer.precision,
        "compile": OmegaConf.to_container(cfg.compile),
        "params": num_params(module.network),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
    }
    peak = matmul_peak(device, size["matmul"], repeats=10, dtype=torch.bfloat16)
    report["bf16_matmul_peak_gflops"] = peak / 1e9
    print(f"bfloat16 matmul peak: {peak / 1e12:.1f} TFLOP/s (n={size['matmul']})", flush=True)
    save(out, report)
    if "train" in parts:
        report["train_eager"] = []
        for batch_size in size["batches"]:
            report["train_eager"].append(measure_training(module, cfg, batch_size, size, device, peak))
            show("train eager", report["train_eager"][-1])
            save(out, report)
    if "sample" in parts:
        report["sampling"] = measure_sampling(module, size, device)
        save(out, report)
    if "lightning" in parts:
        row = report["lightning"] = measure_lightning(cfg, size, device, size["batches"][1])
        print(f"lightning fit batch {row['batch']}: {row['samples_per_s']:.1f} samples/s", flush=True)
        save(out, report)
    if "compile" in parts:
        report["train_compiled"] = []
        compiled_batches = size["batches"][1:]  # the experiment's batch and larger
        flops = {b: model_flops(module, batch_of(b, size["frames"], device)) for b in compiled_batches}  # eagerly
        for batch_size in compiled_batches:
            torch._dynamo.reset()  # a fresh static-shape compile for each batch size
            _compile_networks(module, cfg.compile)
            row = measure_training(module, cfg, batch_size, size, device, peak, flops[batch_size])
            report["train_compiled"].append(row)
            show("train compiled", row)
            save(out, report)
    if "profile" in parts:
        torch._dynamo.reset()
        _compile_networks(module, cfg.compile)
        report["profile"] = profile_training(module, cfg, size["batches"][1], size["frames"], device, out)
        save(out, report)
    print(f"wrote {out / 'gpu_train.json'}")
    return report


if __name__ == "__main__":
    main()
