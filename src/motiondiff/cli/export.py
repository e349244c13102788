"""`motiondiff-export` / `-m motiondiff.export`: export.yaml, then export.run.run."""

from motiondiff.cli.app import hydra_entry_point
from motiondiff.export.run import run

main = hydra_entry_point("export", run)

if __name__ == "__main__":
    main()
