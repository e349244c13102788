"""motiondiff: a Hydra + Lightning framework for human-motion diffusion models."""

__version__ = "0.1.0"
