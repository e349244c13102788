"""What each cost option of the DiT training step buys: today's network, then the config's options added one by one.

    .venv/bin/python benchmarks/dit_step_parts.py [--variants adaln incontext cross_attention] [--rounds 7] [--quick]
        [--lengths 196,196,180,150,130,110,90,76]

Float32 training steps (forward, backward, AdamW, EMA) at the reference size (512 x 8 layers, 16 heads, 196 frames,
batch 8), built with benchmarks/bench.py's own builders and timed interleaved in one process; each ratio is the
median over rounds of today's step time over the setting's, paired within a round. Prints a Markdown table.
"""

import argparse
import statistics

import torch

import bench  # benchmarks/
from motiondiff.core.tables import markdown_table
from motiondiff.diffusion.schedule import LinearSchedule
from motiondiff.training.devices import processor_name

REFERENCE = {"latent_dim": 512, "num_layers": 8, "num_heads": 16, "frames": 196, "batch": 8}
QUICK = {"latent_dim": 32, "num_layers": 1, "num_heads": 4, "frames": 24, "batch": 2}
# 8 motions of 141 frames on average (28% of 196 padded): HumanML3D's mean duration, 7.0 s at 20 fps
HUMANML3D_LIKE = "196,196,180,150,130,110,90,76"


def settings(variant: str) -> dict:
    """name -> (network cost options, fused AdamW): today's network, then the config's changes one at a time."""
    config = bench.config_options(variant)
    earlier = {**config, "fused_adaln": False, "skip_padded": False}
    return {
        "today (class defaults, per-tensor AdamW)": ({}, False),
        "config network, torch's dropout masks": ({**earlier, "dropout_masks": "torch"}, False),
        "+ packed dropout masks": (earlier, False),
        "+ fused AdamW": (earlier, bench.config_fused_adamw()),
        "+ fused adaLN products": ({**config, "skip_padded": False}, bench.config_fused_adamw()),
        "+ linear layers over the attendable tokens (the configs now)": (config, bench.config_fused_adamw()),
    }


def measure(variant: str, size: dict, rounds: int, lengths=None) -> list:
    """[(setting, median step seconds, median paired speed-up over today)] for one variant; `lengths`: the batch's
    motion lengths (default bench.py's batch: half of it 3/4 as long)."""
    schedule = LinearSchedule(1000)
    steps = {}
    batch = len(lengths) if lengths else size["batch"]
    for name, (options, fused) in settings(variant).items():
        torch.manual_seed(0)
        network = bench.build_dit(variant, size, bench.DIT_FEATURES, bench.DIT_TEXT_DIM, options)
        steps[name] = bench.dit_training(network, schedule, batch, size["frames"], "cpu", fused, lengths)[0]
    times, _ = bench.interleaved_times(steps, torch.device("cpu"), 1, rounds)
    today = next(iter(times.values()))
    return [
        (name, statistics.median(t), statistics.median(a / b for a, b in zip(today, t))) for name, t in times.items()
    ]


def main(argv=None) -> list:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=list(bench.VARIANTS))
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    parser.add_argument(
        "--lengths",
        type=lambda text: [int(n) for n in text.split(",")],
        help=f"the batch's motion lengths, comma-separated (default: bench.py's batch; {HUMANML3D_LIKE} has "
        "HumanML3D's mean duration)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    size = QUICK if args.quick else REFERENCE
    rows = [(v, *row) for v in args.variants for row in measure(v, size, args.rounds, args.lengths)]
    batch = f"lengths {args.lengths}" if args.lengths else "bench.py's batch"
    print(f"Processor: {processor_name()} ({args.threads} threads), float32, {args.rounds} rounds, {batch}")
    print(
        markdown_table(
            ["variant", "setting", "step (s)", "speed-up"], [[v, n, f"{s:.3f}", f"{r:.2f}x"] for v, n, s, r in rows]
        )
    )
    return rows


if __name__ == "__main__":
    main()
