"""`motiondiff-train` / `-m motiondiff.train`: train.yaml, then runs.train.run."""

from motiondiff.cli.app import hydra_entry_point
from motiondiff.runs.train import run

main = hydra_entry_point("train", run)

if __name__ == "__main__":
    main()
