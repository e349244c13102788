"""`motiondiff-generate` (or `python -m motiondiff.generate`): configs/generate.yaml, then motiondiff.generation.run.run."""

from motiondiff.cli.app import hydra_entry_point
from motiondiff.generation.run import run

main = hydra_entry_point("generate", run)

if __name__ == "__main__":
    main()
