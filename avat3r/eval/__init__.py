"""Evaluation of Avat3r (paper Sec. 4.2-4.5): metrics, baselines, paper-style tables. The command line
``avat3r eval`` is ``avat3r.eval.__main__.eval_main`` (the only part that reads training runs)."""

__all__ = ["evaluate", "EvalConfig"]


def __getattr__(name):
    if name in __all__:
        from . import evaluation as _ev

        return getattr(_ev, name)
    raise AttributeError(name)
