"""`motiondiff-generate` / `-m motiondiff.generate`: generate.yaml, then generation.run.run."""

from motiondiff.cli.app import hydra_entry_point
from motiondiff.generation.run import run

main = hydra_entry_point("generate", run)

if __name__ == "__main__":
    main()
