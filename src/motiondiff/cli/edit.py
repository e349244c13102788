"""`motiondiff-edit` / `-m motiondiff.edit`: edit.yaml, then editing.run.run."""

from motiondiff.cli.app import hydra_entry_point

main = hydra_entry_point("edit", "motiondiff.editing.run.run")

if __name__ == "__main__":
    main()
