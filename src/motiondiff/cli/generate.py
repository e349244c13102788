"""`motiondiff-generate` / `-m motiondiff.generate`: generate.yaml, then generation.run.run."""

from motiondiff.cli.app import hydra_entry_point

main = hydra_entry_point("generate", "motiondiff.generation.run.run")

if __name__ == "__main__":
    main()
