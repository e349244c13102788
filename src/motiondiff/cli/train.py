"""`motiondiff-train` (or `python -m motiondiff.train`): configs/train.yaml, then motiondiff.training.run.run."""

from motiondiff.cli.app import hydra_entry_point
from motiondiff.training.run import run

main = hydra_entry_point("train", run)

if __name__ == "__main__":
    main()
