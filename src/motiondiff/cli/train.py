"""`motiondiff-train` / `-m motiondiff.train`: train.yaml, then runs.train.run."""

from motiondiff.cli.app import hydra_entry_point

main = hydra_entry_point("train", "motiondiff.runs.train.run")

if __name__ == "__main__":
    main()
