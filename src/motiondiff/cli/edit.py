"""`motiondiff-edit` / `-m motiondiff.edit`: edit.yaml, then editing.run.run."""

from motiondiff.cli.app import hydra_entry_point
from motiondiff.editing.run import run

main = hydra_entry_point("edit", run)

if __name__ == "__main__":
    main()
