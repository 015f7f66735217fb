"""Importable stand-ins for the classes inside EG3D-persistence pickles (EG3D, GOAE, GGHead checkpoints), for the
tests of the restricted unpickler. Persistent classes pickle as EG3D's persistence does:
``_reconstruct_persistent_obj(meta)`` with module source inside whose execution would create ``touched``."""

from __future__ import annotations

import sys
import types
from contextlib import contextmanager
from pathlib import Path

from torch import nn


@contextmanager
def fake_persistence_modules(names, touched: Path):
    """Yields (modules by name, cls(module, name, persistent) -> a new nn.Module subclass registered there);
    sys.modules is restored afterwards."""
    saved = {k: sys.modules.get(k) for k in names}
    mods = {k: types.ModuleType(k) for k in names}
    sys.modules.update(mods)

    def _reconstruct_persistent_obj(meta):  # EG3D would exec(meta["module_src"]) here
        raise AssertionError("the real reconstructor must never run")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    mods["torch_utils.persistence"]._reconstruct_persistent_obj = _reconstruct_persistent_obj

    def cls(module: str, name: str, persistent: bool):
        def reduce(self):
            src = f"open({str(touched)!r}, 'w').write('ran')\n"  # executing the stored source must never happen
            meta = dict(type="class", version=4, module_src=src, class_name=name, state=dict(self.__dict__))
            return (_reconstruct_persistent_obj, (meta,))

        c = type(name, (nn.Module,), {"__reduce__": reduce} if persistent else {})
        c.__module__, c.__qualname__ = module, name
        setattr(mods[module], name, c)
        return c

    try:
        yield mods, cls
    finally:
        for k, v in saved.items():
            sys.modules.pop(k, None) if v is None else sys.modules.__setitem__(k, v)
