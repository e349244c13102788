"""Tensor shape annotations used at public boundaries (defined once, here).

Conventions: motion tensors are (batch, frames, feats); diffusion timesteps are
integer indices into the noise schedule; frame masks are True on valid frames.
"""

from torchtyping import TensorType

Motion = TensorType["batch", "frames", "feats"]
LongMotion = TensorType["batch", "long_frames", "feats"]  # a longer sequence made of windows of Motion
Timesteps = TensorType["batch"]
ScalarTimestep = TensorType[()]  # one step for the whole batch (networks broadcast it)
FrameMask = TensorType["batch", "frames"]
Loss = TensorType[()]

# Text conditioning: a pooled sentence vector and the token sequence with its padding mask.
TextPooled = TensorType["batch", "text_dim"]
TextTokens = TensorType["batch", "tokens", "text_dim"]
TokenMask = TensorType["batch", "tokens"]  # True on real tokens
# Joint positions: (batch, frames, joints, 3), metres, y up.
Joints = TensorType["batch", "frames", "joints", 3]

# Evaluators: motion lengths, embeddings, and the standard evaluator's inputs.
Lengths = TensorType["batch"]  # frames (or tokens) per item
Embeddings = TensorType["batch", "latent"]
MovementTokens = TensorType["batch", "tokens", "width"]  # one token per 4 frames
WordVectors = TensorType["batch", "slots", "word"]  # GloVe vectors of a caption's tokens, padded
PosOneHots = TensorType["batch", "slots", "pos"]
