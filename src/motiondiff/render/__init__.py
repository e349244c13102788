"""Rendering: 2D and 3D stick-figure videos of motions, of samples, and of the training data."""
