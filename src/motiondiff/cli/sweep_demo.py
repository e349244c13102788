"""`motiondiff-sweep-demo` / `-m motiondiff.sweep_demo`: sweep_demo.yaml, then demos.sweep_demo.run."""

from motiondiff.cli.app import hydra_entry_point
from motiondiff.demos.sweep_demo import run

main = hydra_entry_point("sweep_demo", run)

if __name__ == "__main__":
    main()
