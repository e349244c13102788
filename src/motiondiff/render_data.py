"""`python -m motiondiff.render_data`: the same command as `motiondiff-render-data` (motiondiff.cli.render_data)."""

from motiondiff.cli.render_data import main

if __name__ == "__main__":
    main()
