"""`motiondiff-export` / `-m motiondiff.export`: export.yaml, then export.run.run."""

from motiondiff.cli.app import hydra_entry_point

main = hydra_entry_point("export", "motiondiff.export.run.run")

if __name__ == "__main__":
    main()
