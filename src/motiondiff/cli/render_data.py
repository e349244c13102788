"""`motiondiff-render-data` / `-m motiondiff.render_data`: render_data.yaml, then render.data_preview.run."""

from motiondiff.cli.app import hydra_entry_point

main = hydra_entry_point("render_data", "motiondiff.render.data_preview.run")

if __name__ == "__main__":
    main()
