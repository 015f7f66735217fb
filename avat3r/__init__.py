"""Avat3r: animatable 3D Gaussian head avatars from a few images (Kirschstein et al.).

Import is light: heavy modules (model, renderer backends, front end) load on first use.
"""

__version__ = "0.1.0"
