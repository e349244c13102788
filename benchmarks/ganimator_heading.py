"""What the integrated root heading costs in GANimator's units: a perfect replay of a dance's own windows, as features,
decoded the way the evaluation decodes generated clips (the heading integrated from per-frame turns from the opening
frame), against the same frames' true rotations.

    .venv/bin/python benchmarks/ganimator_heading.py Gangnam-Style      # a shared clip's name (about 20 s)

Prints GANimator coverage (4 replays), local and global diversity (the first) of the true frames and of the decoded
ones, and the mean error of the root's rows.
"""

import argparse
import warnings
from pathlib import Path

import numpy as np

from motiondiff.data.dance3d import Dance3DDataModule
from motiondiff.metrics import ganimator

SHARED_BVH = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "bvh"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip", help="a shared BVH clip's name, e.g. Gangnam-Style")
    parser.add_argument("--window", type=int, default=48, help="the replayed windows' frames (the training window)")
    args = parser.parse_args()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = Dance3DDataModule(str(SHARED_BVH / f"{args.clip}.bvh"))
        data.setup("fit")
    features = data.train_set.features.numpy()  # (T, F) the training span
    length = len(features)
    training = ganimator.rotation_rows(data.local_rotations(features))  # (T, R) the frames as the file has them
    rng = np.random.default_rng(0)
    covered, root_error = {"true": [], "decoded": []}, []
    for replay in range(4):
        starts = rng.integers(0, length - args.window + 1, size=-(-2 * length // args.window))
        frames = np.concatenate([np.arange(start, start + args.window) for start in starts])[: 2 * length]
        rows = {"true": training[frames], "decoded": ganimator.rotation_rows(data.local_rotations(features[frames]))}
        for name, clip in rows.items():
            covered[name].append(ganimator.coverage(clip, training))
        root_error.append(np.linalg.norm(rows["true"][:, :6] - rows["decoded"][:, :6], axis=1).mean())
        if replay == 0:
            for name, clip in rows.items():
                report = ganimator.published_report([clip], training, data.fps)
                print(
                    f"{args.clip} replay, {name} frames: local diversity {report['ganimator_local_diversity']:.3f}, "
                    f"global diversity {report['ganimator_global_diversity']:.3f}"
                )
    print(
        f"{args.clip}: coverage of 4 replays, true frames {np.mean(covered['true']):.3f}, decoded "
        f"{np.mean(covered['decoded']):.3f}; the root's rows off by {np.mean(root_error):.3f} on average"
    )


if __name__ == "__main__":
    main()
