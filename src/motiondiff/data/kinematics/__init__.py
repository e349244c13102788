"""Skeletons, forward kinematics and quaternion / rotation helpers (numpy and torch)."""
