"""dst3d: synthetic images with exact 3D annotations."""
