"""Motion out of the framework: joint positions -> BVH files, on our skeleton or retargeted onto a user's."""
