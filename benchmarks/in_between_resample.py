"""edit=in_between with and without RePaint: does the middle travel under 'walks forward' and stay under 'claps'?

For each trained text run: a clap of 100 frames (DDIM 10 steps, seed 0), then edit=in_between with its config's
defaults (the first and last 20 frames kept), planned and sampled by the edit command's own functions, eight
in-betweens per prompt in one batch, for each (DDIM steps, resample) setting. Prints a markdown table of the mean
ground travel of the generated frames (docs/editing.md, "Why in_between resamples by default").

    .venv/bin/python benchmarks/in_between_resample.py <text run dir> [<text run dir> ...]
"""

import argparse
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from motiondiff.cli.app import CONFIG_DIR
from motiondiff.diffusion.samplers import DDIMSampler
from motiondiff.editing.modes import plan_edit
from motiondiff.editing.run import sample_edits
from motiondiff.metrics.caption_control import ground_travel
from motiondiff.runs.directories import load_run_config
from motiondiff.runs.loading import load_module

SETTINGS = ((10, 1), (10, 3), (10, 5), (30, 1))  # (DDIM steps, resample): 10, 30, 50 and 30 network calls
WALK, CLAP = "a person walks forward", "a person claps"


def in_between_travel(module, encoder, steps: int, resample: int, num: int = 8, frames: int = 100) -> tuple:
    """Mean ground travel (m) of `num` in-betweens of a generated clap: (under WALK, under CLAP)."""
    edit = OmegaConf.load(CONFIG_DIR / "edit" / "in_between.yaml")
    generator = torch.Generator().manual_seed(0)
    source = module.sample(1, DDIMSampler(10, progress=False), generator, frames, cond=encoder.encode([CLAP]).as_cond())
    plan = plan_edit(edit, source[0], module.data, None)  # (frames, F) kept at both ends
    sampler = DDIMSampler(steps, progress=False).with_resample(resample)
    middle = slice(edit.ends, frames - edit.ends)

    def travel(text: str) -> float:
        made = sample_edits(module, sampler, plan, num, generator, encoder.encode([text] * num).as_cond())  # (K, N, F)
        return float(np.mean([ground_travel(joints[middle]) for joints in module.to_keypoints(made)]))

    return travel(WALK), travel(CLAP)


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="trained text-to-motion run directories")
    parser.add_argument("--samples", type=int, default=8, help="in-betweens per prompt")
    parser.add_argument("--settings", default=",".join(f"{s}x{r}" for s, r in SETTINGS), help="STEPSxRESAMPLE,...")
    args = parser.parse_args(argv)
    settings = [tuple(int(n) for n in item.split("x")) for item in args.settings.split(",")]
    torch.manual_seed(0)
    names = [run.name for run in args.runs]
    labels = names if len(set(names)) == len(names) else [str(run) for run in args.runs]  # each run its column
    columns = {}
    for label, run in zip(labels, args.runs):
        module = load_module(load_run_config(run), run / "checkpoints" / "last.ckpt")
        encoder = instantiate(load_run_config(run).text_encoder)
        columns[label] = [in_between_travel(module, encoder, *setting, num=args.samples) for setting in settings]
    lines = [
        "| DDIM steps, resample (network calls) | " + " | ".join(columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for k, (steps, resample) in enumerate(settings):
        cells = [f"{walk:.2f} / {clap:.2f} m" for walk, clap in (column[k] for column in columns.values())]
        lines.append(f"| {steps}, {resample} ({steps * resample}) | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print(f"Mean ground travel of the generated frames, '{WALK}' / '{CLAP}':\n\n{table}")
    return table


if __name__ == "__main__":
    main()
