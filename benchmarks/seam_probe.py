"""Where fixed frames meet generated ones: the acceleration of a dance run's window continuations, frame by frame.

    .venv/bin/python benchmarks/seam_probe.py run_dir=<dance run> [kept=8] [windows=16] [sampler.eta=1.0 ...]

Chaining fixes each window's first frames to the dance so far and samples the rest. This takes `windows` training
windows evenly spaced over the span, fixes their first `kept` frames, samples the rest with the run's sampler (or the
evaluate-style overrides given) and prints the mean acceleration of the normalised features per frame over the
data's, around the frame where fixed and generated frames meet; for 2D keypoints also the share of the jump there
that is one shift of all joints (the generated frames standing elsewhere in the picture than the fixed ones).
"""

import sys
import warnings

import torch
from hydra.utils import instantiate

from motiondiff.cli.app import compose_command_config
from motiondiff.runs.loading import load_trained_run


def acceleration(motion: torch.Tensor) -> torch.Tensor:
    """(K, N, F) -> (K, N - 2): the norm of the second difference at frames 1 .. N - 2."""
    return (motion[:, 2:] - 2 * motion[:, 1:-1] + motion[:, :-2]).norm(dim=-1)


def main(arguments: list) -> None:
    options = dict(argument.split("=", 1) for argument in arguments if argument.split("=", 1)[0] in ("kept", "windows"))
    kept, count = int(options.get("kept", 8)), int(options.get("windows", 16))
    cfg = compose_command_config("evaluate", [a for a in arguments if a.split("=", 1)[0] not in ("kept", "windows")])
    run = load_trained_run(cfg)
    data = instantiate(run.config.dataset)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. the crab's "no joint map fits"
        data.setup("fit")
    features, window = data.train_set.features.float(), run.module.data.window  # (T, F) normalised
    assert 2 < kept < window - 4, f"kept={kept} must leave frames on both sides of the meeting point"
    starts = torch.linspace(0, len(features) - window, count).long()
    known = torch.stack([features[s : s + window] for s in starts]).to(run.module.device)  # (K, N, F)
    mask = torch.zeros(count, window, dtype=torch.bool, device=known.device)
    mask[:, :kept] = True
    generator = torch.Generator(device=run.module.device).manual_seed(int(cfg.seed))
    with torch.inference_mode():
        out = run.module.sample(count, run.sampler, generator, known=known, known_mask=mask).float()  # (K, N, F)
    ratio = acceleration(out).mean(0) / acceleration(known).mean()  # (N - 2,) at frames 1 .. N - 2
    around = range(kept - 3, kept + 5)
    print(f"acceleration / the data's, frames {around.start}..{around.stop - 1} (frame {kept} is the first generated):")
    print("  " + " ".join(f"{ratio[frame - 1]:.1f}" for frame in around))
    print(f"  generated frames {kept + 5}..{window - 2}: {ratio[kept + 4 :].mean():.2f}")
    dims = run.module.data.dims
    if dims == 2:  # keypoints: how much of the jump is one shift of every joint
        jump = (out[:, kept] - 2 * out[:, kept - 1] + out[:, kept - 2]).view(count, -1, dims)  # (K, J, 2)
        shift = jump.mean(dim=1, keepdim=True).expand_as(jump)  # (K, J, 2)
        share = (shift.flatten(1).norm(dim=1) / jump.flatten(1).norm(dim=1)).mean()
        print(f"  at frame {kept}: {share:.0%} of the jump is one shift of all joints")


if __name__ == "__main__":
    main(sys.argv[1:])
