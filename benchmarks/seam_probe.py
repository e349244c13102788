"""Where fixed frames meet generated ones: the acceleration of a dance run's window continuations, frame by frame.

    .venv/bin/python benchmarks/seam_probe.py run_dir=<dance run> [kept=8] [windows=16] [sampler.eta=1.0 ...]
    .venv/bin/python benchmarks/seam_probe.py run_dir=<dance run> chain=joint|sequential [windows=10] [chain_overlap=16]

Chaining fixes each window's first frames to the dance so far and samples the rest. This takes `windows` training
windows evenly spaced over the span, fixes their first `kept` frames, samples the rest with the run's sampler (or the
evaluate-style overrides given) and prints the mean acceleration of the normalised features per frame over the
data's, around the frame where fixed and generated frames meet; for 2D keypoints also the share of the jump there
that is one shift of all joints (the generated frames standing elsewhere in the picture than the fixed ones).
With `chain=joint|sequential` it makes 4 long dances of `windows` windows as generate does (`sample_chain`) and
prints the acceleration of their joint positions over the data's, by frame within the windows' stride (where
sequential chains crossfade, joint windows hand over).
"""

import sys
import warnings

import numpy as np
import torch
from hydra.utils import instantiate

from motiondiff.cli.app import compose_command_config
from motiondiff.runs.loading import load_trained_run
from motiondiff.training.chained_sampling import sample_chain

OPTIONS = ("kept", "windows", "chain")


def acceleration(motion: torch.Tensor) -> torch.Tensor:
    """(K, N, F) -> (K, N - 2): the norm of the second difference at frames 1 .. N - 2."""
    return (motion[:, 2:] - 2 * motion[:, 1:-1] + motion[:, :-2]).norm(dim=-1)


def main(arguments: list) -> None:
    options = dict(argument.split("=", 1) for argument in arguments if argument.split("=", 1)[0] in OPTIONS)
    cfg = compose_command_config("evaluate", [a for a in arguments if a.split("=", 1)[0] not in OPTIONS])
    run = load_trained_run(cfg)
    data = instantiate(run.config.dataset)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. the crab's "no joint map fits"
        data.setup("fit")
    if "chain" in options:
        return chain_profile(run, data, cfg, options["chain"], int(options.get("windows", 10)))
    kept, count = int(options.get("kept", 8)), int(options.get("windows", 16))
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


def chain_profile(run, data, cfg, mode: str, count: int) -> None:
    """Print the acceleration of 4 long dances of `count` windows (`sample_chain` in `mode`) over the data's: the
    mean, and by frame within the stride after the first window."""
    module, window, overlap = run.module, run.module.data.window, int(cfg.chain_overlap)
    generator = torch.Generator(device=module.device).manual_seed(int(cfg.seed))
    dances = sample_chain(
        module, run.sampler, generator, count, overlap, int(cfg.chain_blend), "{number}", batch=4, mode=mode
    )
    positions = module.to_keypoints(dances)  # (4, L, J, D)
    training = module.to_keypoints(data.train_set.features.float()[None])  # (1, T, J, D)
    ratio = (
        acceleration(torch.from_numpy(positions).flatten(2))
        / acceleration(torch.from_numpy(training).flatten(2)).mean()
    ).numpy()
    stride, frames = window - overlap, np.arange(1, positions.shape[1] - 1)  # ratio[:, i] is frame i + 1
    later = frames >= window
    profile = [ratio[:, later & ((frames - window) % stride == k)].mean() for k in range(stride)]
    print(f"{mode} chains of {count} windows, acceleration / the data's: mean {ratio.mean():.2f}")
    print(f"  by frame within the {stride}-frame stride from frame {window} on (0: the frame after a window's last;")
    print(f"  {-window % stride}: a window's first): " + " ".join(f"{value:.2f}" for value in profile))


if __name__ == "__main__":
    main(sys.argv[1:])
