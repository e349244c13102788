"""`motiondiff-evaluate` / `-m motiondiff.evaluate`: evaluate.yaml, then evaluation.run.run."""

from motiondiff.cli.app import hydra_entry_point

main = hydra_entry_point("evaluate", "motiondiff.evaluation.run.run")

if __name__ == "__main__":
    main()
