"""`motiondiff-compare` / `-m motiondiff.compare`: compare.yaml, then evaluation.compare.run."""

from motiondiff.cli.app import hydra_entry_point
from motiondiff.evaluation.compare import run

main = hydra_entry_point("compare", run)

if __name__ == "__main__":
    main()
