"""`motiondiff-compare` / `-m motiondiff.compare`: compare.yaml, then evaluation.compare.run."""

from motiondiff.cli.app import hydra_entry_point

main = hydra_entry_point("compare", "motiondiff.evaluation.compare.run")

if __name__ == "__main__":
    main()
