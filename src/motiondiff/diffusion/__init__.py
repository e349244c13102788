"""Diffusion: the noise schedule as data, losses, the denoiser (parameterisation and guidance), samplers."""
