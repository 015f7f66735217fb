"""Evaluation of Avat3r (paper Sec. 4.2-4.5): metrics, baselines, paper-style tables, ``avat3r eval``."""

__all__ = ["eval_main", "evaluate", "EvalConfig"]


def __getattr__(name):
    if name in __all__:
        from . import evaluation as _ev

        return getattr(_ev, name)
    raise AttributeError(name)
