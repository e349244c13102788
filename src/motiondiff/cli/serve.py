"""`motiondiff-app` / `-m motiondiff.app`: app.yaml, then app.run.run (the local web page)."""

from motiondiff.app.run import run
from motiondiff.cli.app import hydra_entry_point

main = hydra_entry_point("app", run)

if __name__ == "__main__":
    main()
