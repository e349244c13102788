"""`motiondiff-sweep-demo` / `-m motiondiff.sweep_demo`: sweep_demo.yaml, then demos.sweep_demo.run."""

from motiondiff.cli.app import hydra_entry_point

main = hydra_entry_point("sweep_demo", "motiondiff.demos.sweep_demo.run")

if __name__ == "__main__":
    main()
