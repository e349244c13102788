"""The Hydra configs, shipped inside the package as `motiondiff.configs` (see pyproject.toml's package-dir)."""
