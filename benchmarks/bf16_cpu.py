"""bf16 on this processor: matmul rate, a guided sampling forward and a training step, float32 against bf16.

    .venv/bin/python benchmarks/bf16_cpu.py [--quick] [--out benchmarks/results]

Each pair is timed interleaved in one process (median of the repeats), so the ratios hold under load.
Training in bf16 is Lightning's `bf16-mixed` (torch.autocast over forward and loss, float32 weights and
optimizer); sampling in bf16 is what generate/evaluate do with precision=bf16 (the Denoiser's autocast).
Writes <out>/bf16_cpu.json and prints a Markdown table. The processor and its bf16 flags are recorded.
"""

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from motiondiff.core.tables import markdown_table
from motiondiff.diffusion.denoiser import Denoiser
from motiondiff.diffusion.schedule import CosineSchedule
from motiondiff.networks.conditioning import AdaLNTransformer
from motiondiff.training.devices import BF16_CPU_FLAGS, cpu_flags, processor_name

SIZES = {  # name: (latent_dim, layers, heads, train batch, guided batch, frames)
    "cpu (experiment=text2motion)": (128, 4, 4, 64, 16, 196),
    "reference": (512, 8, 16, 8, 16, 196),
}
QUICK = {"quick": (32, 1, 4, 4, 4, 32)}


def interleaved(fns: dict, repeats: int) -> dict:
    """Median seconds of each callable, run in turn after one warm-up call each."""
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def condition(batch: int) -> dict:
    generator = torch.Generator().manual_seed(0)
    return {
        "text_pooled": torch.randn(batch, 384, generator=generator),
        "text_tokens": torch.randn(batch, 12, 384, generator=generator),
        "text_mask": torch.ones(batch, 12, dtype=torch.bool),
    }


def matmul_rates(size: int, repeats: int) -> dict:
    a, b = torch.randn(size, size), torch.randn(size, size)
    pairs = {"fp32": (a, b), "bf16": (a.bfloat16(), b.bfloat16())}
    seconds = interleaved({k: (lambda x=x, y=y: x @ y) for k, (x, y) in pairs.items()}, repeats)
    return {k: 2 * size**3 / s / 1e9 for k, s in seconds.items()}  # GFLOP/s


def network_pair(width, layers, heads, train_batch, guided_batch, frames, repeats) -> dict:
    torch.manual_seed(0)
    network = AdaLNTransformer(features=263, text_dim=384, latent_dim=width, num_layers=layers, num_heads=heads)
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-4)
    x = torch.randn(train_batch, frames, 263)
    t = torch.randint(0, 1000, (train_batch,))
    cond = {**condition(train_batch), "drop": torch.rand(train_batch) < 0.1}

    def train_step(bf16: bool):
        network.train()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = (network(x, t, cond).float() - x).pow(2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    schedule = CosineSchedule(1000)
    noise = torch.randn(guided_batch, frames, 263)
    t_mid = torch.full((guided_batch,), 500)
    guided = {
        name: Denoiser(network, schedule, "x0", cond=condition(guided_batch), guidance_weight=2.5, autocast=dtype)
        for name, dtype in (("fp32", None), ("bf16", torch.bfloat16))
    }

    def forward(name: str):
        network.eval()
        with torch.inference_mode():
            guided[name](noise, t_mid)

    train = interleaved({"fp32": lambda: train_step(False), "bf16": lambda: train_step(True)}, repeats)
    sample = interleaved({"fp32": lambda: forward("fp32"), "bf16": lambda: forward("bf16")}, repeats)
    return {
        "train_samples_per_s": {k: train_batch / s for k, s in train.items()},
        "train_speedup": train["fp32"] / train["bf16"],
        "guided_forward_s": sample,
        "guided_speedup": sample["fp32"] / sample["bf16"],
        "train_batch": train_batch,
        "guided_batch": guided_batch,
    }


def markdown(report: dict) -> str:
    rows = [
        ["matmul GFLOP/s (n=%d)" % report["matmul_size"]]
        + [f"{report['matmul'][k]:.0f}" for k in ("fp32", "bf16")]
        + [f"{report['matmul']['bf16'] / report['matmul']['fp32']:.2f}x"]
    ]
    for name, r in report["sizes"].items():
        s = r["train_samples_per_s"]
        rows.append(
            [f"{name}: training samples/s (batch {r['train_batch']})", f"{s['fp32']:.1f}", f"{s['bf16']:.1f}"]
            + [f"{r['train_speedup']:.2f}x"]
        )
        g = r["guided_forward_s"]
        rows.append(
            [f"{name}: guided forward s ({r['guided_batch']} motions)", f"{g['fp32']:.3f}", f"{g['bf16']:.3f}"]
            + [f"{r['guided_speedup']:.2f}x"]
        )
    head = f"Processor: {report['processor']} ({report['threads']} threads); bf16 flags: {report['bf16_flags']}\n\n"
    return head + markdown_table(["", "float32", "bf16", "bf16 speed-up"], rows)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    sizes, repeats = (QUICK, 2) if args.quick else (SIZES, args.repeats)
    matmul_size = 256 if args.quick else 2048
    report = {
        "processor": processor_name(),
        "bf16_flags": sorted(cpu_flags() & BF16_CPU_FLAGS) or "none",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "matmul_size": matmul_size,
        "matmul": matmul_rates(matmul_size, repeats),
        "sizes": {name: network_pair(*size, repeats) for name, size in sizes.items()},
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bf16_cpu.json").write_text(json.dumps(report, indent=2))
    print(markdown(report))
    return report


if __name__ == "__main__":
    main()
