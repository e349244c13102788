"""Data: typed descriptions, normalisers and DataModules, over formats, representations, kinematics and generators."""
