"""Avat3r: animatable 3D Gaussian head avatars from a few images (Kirschstein et al.).

Import is light: heavy modules (model, renderer backends, front end) load on first use.
``avat3r.load_pipeline`` is resolved lazily from ``avat3r.pipeline``.
"""

__version__ = "0.1.0"

__all__ = ["load_pipeline", "Pipeline", "Avatar", "__version__"]


def __getattr__(name: str):
    # PEP 562: keep ``import avat3r`` free of torch-heavy imports until the pipeline is actually asked for.
    if name in ("load_pipeline", "Pipeline", "Avatar"):
        from . import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'avat3r' has no attribute {name!r}")
