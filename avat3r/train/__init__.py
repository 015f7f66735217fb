"""Training of Avat3r (paper Sec. 3.3 losses, Sec. 4.1 recipe): config, objective, loop, checkpoints, DDP.

Entry points: ``train_main(argv)`` (``avat3r train``, ``python -m avat3r.train``, ``torchrun ... -m avat3r.train``)
and ``export_main(argv)``. Heavy modules load on first use.
"""

from .config import RUNS, TrainConfig

__all__ = ["TrainConfig", "RUNS", "Trainer", "train_main", "export_main"]


def __getattr__(name):
    if name in ("Trainer", "train_main"):
        from . import trainer

        return getattr(trainer, name)
    if name == "export_main":
        from .export import export_main

        return export_main
    raise AttributeError(name)
