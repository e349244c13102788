"""`motiondiff-render-data` / `-m motiondiff.render_data`: render_data.yaml, then render.data_preview.run."""

from motiondiff.cli.app import hydra_entry_point
from motiondiff.render.data_preview import run

main = hydra_entry_point("render_data", run)

if __name__ == "__main__":
    main()
