"""`motiondiff-render-data` (or `python -m motiondiff.render_data`): configs/render_data.yaml, then motiondiff.render.data_preview.run."""

from motiondiff.cli.app import hydra_entry_point
from motiondiff.render.data_preview import run

main = hydra_entry_point("render_data", run)

if __name__ == "__main__":
    main()
