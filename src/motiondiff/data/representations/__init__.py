"""Motion feature representations (263 HumanML3D features, 205 smplrifke) both ways, and their registry."""
