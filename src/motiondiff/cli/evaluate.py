"""`motiondiff-evaluate` / `-m motiondiff.evaluate`: evaluate.yaml, then evaluation.run.run."""

from motiondiff.cli.app import hydra_entry_point
from motiondiff.evaluation.run import run

main = hydra_entry_point("evaluate", run)

if __name__ == "__main__":
    main()
