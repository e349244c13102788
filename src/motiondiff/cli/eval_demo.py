"""`motiondiff-eval-demo` / `-m motiondiff.eval_demo`: eval_demo.yaml, then demos.eval_demo.run."""

from motiondiff.cli.app import hydra_entry_point

main = hydra_entry_point("eval_demo", "motiondiff.demos.eval_demo.run")

if __name__ == "__main__":
    main()
