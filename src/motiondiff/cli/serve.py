"""`motiondiff-app` / `-m motiondiff.app`: app.yaml, then app.run.run (the local web page)."""

from motiondiff.cli.app import hydra_entry_point

main = hydra_entry_point("app", "motiondiff.app.run.run")

if __name__ == "__main__":
    main()
