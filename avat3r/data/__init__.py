"""Data: SynthHeads (procedural animatable heads, the training data and benchmark), the camera dome and the
paper-style sampler, capture folders, and loaders for Ava-256 and NeRSemble. See docs/SYNTHHEADS.md.

Submodules load on demand: ``avat3r.data.synthheads``, ``.sampler``, ``.dome``, ``.capture_folder``,
``.ava256``, ``.nersemble``.
"""
