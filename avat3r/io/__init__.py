"""File formats: images and video, 3DGS .ply, capture folders."""
