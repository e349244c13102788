"""File formats read and written as users have them: BVH, 2D keypoints .npy, the HumanML3D and course lab layouts."""
