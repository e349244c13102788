"""`motiondiff-nfe-curve` / `-m motiondiff.nfe_curve`: nfe_curve.yaml, then evaluation.nfe_curve.run."""

from motiondiff.cli.app import hydra_entry_point

main = hydra_entry_point("nfe_curve", "motiondiff.evaluation.nfe_curve.run")

if __name__ == "__main__":
    main()
