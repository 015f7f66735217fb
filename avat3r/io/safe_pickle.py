"""Read research pickles (EG3D / GGHead ``.pkl`` checkpoints) without executing anything they contain.

A normal ``pickle.load`` imports whatever the file names and calls it; EG3D's persistence wrapper even stores
Python *source code* that unpickling executes. This unpickler rebuilds only data:

  * tensors and parameters: ``torch._utils._rebuild_tensor_v2`` / ``_rebuild_parameter`` (the storage bytes are read
    with ``torch.load(weights_only=True)``, torch's own restricted loader);
  * plain containers and scalars: dict, OrderedDict, list, tuple, set, numpy scalars/dtypes, torch dtypes;
  * objects of known model packages (EG3D/StyleGAN ``torch_utils``, ``training``, ``dnnlib``; ``gghead``;
    ``gaussian_splatting``; ``torch.nn`` modules and functions such as ``torch.exp`` stored as attributes;
    ``elias``/``dreifus`` configs) become inert ``Stub`` records that keep the class name and the pickled state;
    nothing of theirs is imported or called;
  * EG3D's ``persistence._reconstruct_persistent_obj(meta)`` becomes a ``Stub`` of ``meta['class_name']`` with
    ``meta['state']``; the embedded ``module_src`` is kept as text and never run; ``dnnlib.EasyDict`` becomes dict.

Any other global (``os.system``, ``subprocess.Popen``, ``builtins.eval``, ...) makes ``load`` raise
``CheckpointError`` before anything is called.
"""

from __future__ import annotations

import io
import pickle
from collections import OrderedDict
from pathlib import Path

import torch

from ..errors import CheckpointError

__all__ = ["Stub", "load", "loads", "module_state_dict", "MODEL_PACKAGES"]

#: Top-level packages whose classes become inert stubs (class name + state kept, never imported).
MODEL_PACKAGES = ("torch_utils", "training", "dnnlib", "gghead", "eg3d", "gaussian_splatting", "elias", "dreifus",
                  "torch", "metrics", "legacy", "__main__")


class Stub:
    """An object of a class we refuse to import: its qualified name, constructor args and pickled state."""

    __slots__ = ("qualname", "args", "state", "source_not_run")

    def __init__(self, qualname: str, args=(), state=None, source_not_run: bool = False):
        self.qualname, self.args, self.state, self.source_not_run = qualname, args, state, source_not_run

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2 and (state[0] is None or isinstance(state[0], dict)):
            d, slots = state  # (dict, slots) form
            state = {**(d or {}), **(slots or {})}
        if isinstance(self.state, dict) and isinstance(state, dict):
            self.state.update(state)
        else:
            self.state = state

    def __setitem__(self, k, v):  # dict subclasses are filled with SETITEM(S)
        if self.state is None:
            self.state = {}
        self.state[k] = v

    def append(self, v):  # list subclasses are filled with APPEND(S)
        self.args = tuple(self.args) + (v,)

    def extend(self, vs):
        for v in vs:
            self.append(v)

    @property
    def class_name(self) -> str:
        return self.qualname.rsplit(".", 1)[-1]

    def __repr__(self) -> str:
        return f"Stub({self.qualname})"


def _stub_class(qualname: str):
    """A fresh class standing for ``qualname``: calling it or ``__new__`` on it only records the arguments."""

    def new(cls, *args, **kw):
        obj = Stub.__new__(Stub)
        Stub.__init__(obj, qualname, args)
        return obj

    return type("StubClass", (), {"__new__": new, "qualname": qualname})


def _persistent_obj(meta) -> Stub:
    """EG3D ``persistence._reconstruct_persistent_obj``: keep class name and state; never exec ``module_src``."""
    if not isinstance(meta, dict) or "class_name" not in meta:
        raise CheckpointError("malformed EG3D persistent object in the pickle (no class_name): not a StyleGAN/EG3D checkpoint?")
    state = meta.get("state")
    return Stub(str(meta.get("class_name")), (), dict(state) if isinstance(state, dict) else state, source_not_run=True)


def _load_storage(b: bytes):
    """``torch.storage._load_from_bytes`` with torch's restricted (weights-only) loader."""
    try:
        return torch.load(io.BytesIO(b), weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure here means the bytes are not a plain storage
        raise CheckpointError(f"a tensor storage in the pickle is not plain data ({type(e).__name__}: {e})") from e


def _getattr(obj, name):
    """``builtins.getattr`` as pickled bound methods use it: only on stubs, giving another stub (nothing is called)."""
    if not isinstance(obj, (Stub, type)) or not isinstance(name, str):
        raise CheckpointError(f"the pickle asks for attribute {name!r} of a {type(obj).__name__}: refused (it could reach code)")
    return Stub(f"{getattr(obj, 'qualname', '?')}.{name}")


def _reconstructor(cls, base, state=None):
    """``copyreg._reconstructor`` (protocol 0/1 objects): only for stub classes."""
    if not hasattr(cls, "qualname"):
        raise CheckpointError(f"the pickle reconstructs a {getattr(cls, '__name__', cls)!r} object: refused")
    return cls()


def _numpy_globals() -> dict:
    import numpy as np

    out = {("numpy", "dtype"): np.dtype, ("numpy", "ndarray"): np.ndarray}
    for m in ("numpy.core.multiarray", "numpy._core.multiarray"):
        out[(m, "scalar")] = _np_scalar
        out[(m, "_reconstruct")] = _np_reconstruct
    return out


def _np_scalar(dtype, data=None):
    import numpy as np

    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise CheckpointError("numpy scalar with an object dtype in the pickle: refused")
    return np.frombuffer(data, dtype=dtype, count=1)[0] if data is not None else dtype.type()


def _np_reconstruct(cls, shape, typecode):
    import numpy as np

    if cls is not np.ndarray:
        raise CheckpointError("numpy array subclass in the pickle: refused")
    return np.ndarray.__new__(np.ndarray, shape, typecode)


def _allowed() -> dict:
    import torch._utils as tu

    ok = {
        ("torch._utils", "_rebuild_tensor_v2"): tu._rebuild_tensor_v2,
        ("torch._utils", "_rebuild_tensor"): tu._rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): tu._rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): tu._rebuild_parameter_with_state,
        ("torch.storage", "_load_from_bytes"): _load_storage,
        ("torch", "Size"): torch.Size,
        ("torch", "device"): torch.device,
        ("collections", "OrderedDict"): OrderedDict,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("builtins", "slice"): slice,
        ("builtins", "complex"): complex,
        ("builtins", "getattr"): _getattr,
        ("__builtin__", "set"): set,
        ("copyreg", "_reconstructor"): _reconstructor,
        ("torch_utils.persistence", "_reconstruct_persistent_obj"): _persistent_obj,
        ("eg3d.torch_utils.persistence", "_reconstruct_persistent_obj"): _persistent_obj,
        ("dnnlib.util", "EasyDict"): dict,
        ("dnnlib", "EasyDict"): dict,
        ("eg3d.dnnlib.util", "EasyDict"): dict,
    }
    for name in ("float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool"):
        ok[("torch", name)] = getattr(torch, name)
    ok.update(_numpy_globals())
    return ok


class _SafeUnpickler(pickle.Unpickler):
    def __init__(self, f, where: str):
        super().__init__(f)
        self._where = where
        self._ok = _allowed()

    def find_class(self, module: str, name: str):
        key = (module, name)
        if key in self._ok:
            return self._ok[key]
        if any(module == p or module.startswith(p + ".") for p in MODEL_PACKAGES):
            return _stub_class(f"{module}.{name}")
        _refuse(self._where, module, name)

    def persistent_load(self, pid):
        raise CheckpointError(f"{self._where}: the pickle uses persistent ids (a torch.save file?); load it with "
                              "torch.load(weights_only=True) or convert it to safetensors")


def _refuse(where: str, module: str, name: str):
    raise CheckpointError(
        f"{where}: refused to load: the pickle refers to {module}.{name}, which is neither a tensor, a plain "
        "container nor a known model class. Loading it normally could run code. Nothing was executed. "
        "Use a checkpoint from a source you trust, or convert it to safetensors where it was made."
    )


def loads(data: bytes, where: str = "pickle"):
    """Unpickle bytes with the restricted rules above. Raises CheckpointError on anything that is not data."""
    try:
        return _SafeUnpickler(io.BytesIO(data), where).load()
    except CheckpointError:
        raise
    except (pickle.UnpicklingError, EOFError, AttributeError, TypeError, ValueError, IndexError, KeyError, RuntimeError) as e:
        raise CheckpointError(f"{where}: not a readable pickle ({type(e).__name__}: {e})") from e


def load(path) -> object:
    """Read a ``.pkl`` file restrictedly (see the module docstring)."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint {p} does not exist")
    with open(p, "rb") as f:
        head = f.read(4)
    if head[:2] == b"PK":
        raise CheckpointError(f"{p} is a zip (torch.save) file, not a pickle: load it with torch.load(weights_only=True)")
    if not head or head[0] != 0x80:
        raise CheckpointError(f"{p} is not a pickle (protocol 2+ header missing): is it the right file?")
    return loads(p.read_bytes(), where=str(p))


def module_state_dict(obj, prefix: str = "") -> dict[str, torch.Tensor]:
    """Flatten a stubbed ``torch.nn.Module`` tree into a state dict (parameters + persistent buffers), names as
    ``Module.state_dict()`` would give them."""
    st = obj.state if isinstance(obj, Stub) else None
    if not isinstance(st, dict) or "_modules" not in st:
        raise CheckpointError(f"{prefix or 'object'} is not a pickled torch module ({obj!r})")
    out: dict[str, torch.Tensor] = {}
    for k, v in (st.get("_parameters") or {}).items():
        if v is not None:
            out[prefix + k] = v.detach() if isinstance(v, torch.Tensor) else v
    skip = set(st.get("_non_persistent_buffers_set") or ())
    for k, v in (st.get("_buffers") or {}).items():
        if v is not None and k not in skip:
            out[prefix + k] = v
    for k, m in (st.get("_modules") or {}).items():
        if m is not None:
            out.update(module_state_dict(m, prefix + k + "."))
    bad = [k for k, v in out.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"pickled module entries {bad[:5]} are not tensors (an unsupported tensor format?)")
    return out
