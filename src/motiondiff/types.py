"""Tensor shape annotations used at public boundaries (defined once, here).

Conventions: motion tensors are (batch, frames, feats); diffusion timesteps are
integer indices into the noise schedule; frame masks are True on valid frames.
"""

from torchtyping import TensorType

Motion = TensorType["batch", "frames", "feats"]
Timesteps = TensorType["batch"]
FrameMask = TensorType["batch", "frames"]
Loss = TensorType[()]
