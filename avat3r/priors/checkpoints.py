"""Finding and reading foundation-model weights safely (DUSt3R, Sapiens).

Three formats are read, none of which runs code from the file:

- ``.safetensors``: read with ``safetensors`` (a truncated or corrupt file raises CheckpointError);
- ``.pth`` / ``.pt`` written by ``torch.save`` (a zip holding ``data.pkl`` + raw storages): read with
  :func:`load_pth_tensors`, a restricted unpickler that rebuilds tensors and plain containers only. Metadata
  objects found in the official releases (``argparse.Namespace`` of DUSt3R's training args, numpy arrays and
  mmengine's ``HistoryBuffer`` in Sapiens' checkpoints) become inert placeholders; every other global is refused
  with an error that names it. ``torch.load`` is never called on these files;
- TorchScript (Sapiens ``-torchscript``): see ``sapiens.py`` (``torch.jit.load`` runs TorchScript code, so only
  official files, checked by size/hash and output shape, should be used).

Weights are looked up in this order: an explicit path, an environment variable, ``weights/<model>/`` under
the working directory or the repository, the Hugging Face cache / Hub (unless ``HF_HUB_OFFLINE=1``). When none
has them, :func:`resolve_weight_file` raises a CheckpointError that says which file to get and where to put it.
"""

from __future__ import annotations

import collections
import hashlib
import io
import os
import pickle
import zipfile
from pathlib import Path
from typing import Iterable

import torch

from ..errors import CheckpointError

__all__ = ["load_pth_tensors", "load_safetensors", "load_state_dict_file", "resolve_weight_file", "sha256_file"]

REPO_ROOT = Path(__file__).resolve().parents[2]

_DTYPES = {
    "FloatStorage": torch.float32,
    "DoubleStorage": torch.float64,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}


class _Inert:
    """Stand-in for metadata objects in a checkpoint: records what it was given, does nothing."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs

    def __setstate__(self, state):
        self.state = state

    def __call__(self, *args, **kwargs):  # some metadata globals are factories (numpy's _reconstruct)
        return _Inert(*args, **kwargs)


class _Namespace(_Inert):
    """Stand-in for argparse.Namespace (DUSt3R's ``ckpt['args']``): keeps its fields as attributes."""

    def __setstate__(self, state):
        if isinstance(state, dict):
            self.__dict__.update(state)


# metadata globals known to appear in the official .pth files; they become inert placeholders
_INERT_GLOBALS = {
    ("argparse", "Namespace"): _Namespace,
    ("numpy.core.multiarray", "_reconstruct"): _Inert(),
    ("numpy._core.multiarray", "_reconstruct"): _Inert(),
    ("numpy.core.multiarray", "scalar"): _Inert(),
    ("numpy._core.multiarray", "scalar"): _Inert(),
    ("numpy", "ndarray"): _Inert,
    ("numpy", "dtype"): _Inert,
    ("mmengine.logging.history_buffer", "HistoryBuffer"): _Inert,
}


def _rebuild_tensor(storage, offset, size, stride, *rest):
    return storage.as_strided(tuple(size), tuple(stride), offset)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *rest):
    return data


class _StorageType:
    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype


class _RestrictedUnpickler(pickle.Unpickler):
    """Rebuilds tensors, dicts/lists/tuples and a few inert metadata objects; refuses any other global."""

    def __init__(self, f, zf: zipfile.ZipFile, prefix: str, path: Path):
        super().__init__(f)
        self.zf, self.prefix, self.path = zf, prefix, path
        self.loaded: dict[str, torch.Tensor] = {}

    def find_class(self, module: str, name: str):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) in (("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_tensor")):
            return _rebuild_tensor
        if (module, name) == ("torch._utils", "_rebuild_parameter"):
            return _rebuild_parameter
        if module == "torch" and name in _DTYPES:
            return _StorageType(_DTYPES[name])
        if (module, name) in _INERT_GLOBALS:
            return _INERT_GLOBALS[(module, name)]
        raise CheckpointError(
            f"{self.path}: the pickle needs the global '{module}.{name}', which could run code; refusing to read it. "
            "Use the official checkpoint (or its .safetensors version) or convert it to safetensors in a trusted environment."
        )

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise CheckpointError(f"{self.path}: unexpected persistent id {pid!r} in the pickle; not a torch.save file")
        stype, key = pid[1], str(pid[2])
        if not isinstance(stype, _StorageType):
            raise CheckpointError(f"{self.path}: storage of unsupported type {stype!r}")
        if key not in self.loaded:
            try:
                raw = self.zf.read(f"{self.prefix}/data/{key}")
            except KeyError as e:
                raise CheckpointError(f"{self.path}: storage record {key} is missing (truncated file?); download it again") from e
            flat = torch.frombuffer(bytearray(raw), dtype=torch.uint8) if raw else torch.empty(0, dtype=torch.uint8)
            self.loaded[key] = flat.view(stype.dtype)
        return self.loaded[key]


def load_pth_tensors(path) -> object:
    """Read a ``torch.save`` zip file with the restricted unpickler -> the pickled object (tensors, dicts, inert metadata)."""
    path = Path(path)
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
        raise CheckpointError(
            f"{path}: not a zip-format torch.save file (legacy or truncated pickle); refusing to unpickle it. "
            "Download the official file again or use its .safetensors version"
        ) from e
    with zf:
        pkls = [n for n in zf.namelist() if n.endswith("/data.pkl")]
        if len(pkls) != 1:
            raise CheckpointError(f"{path}: expected one data.pkl in the archive, found {len(pkls)}")
        prefix = pkls[0][: -len("/data.pkl")]
        order = zf.read(f"{prefix}/byteorder").decode().strip() if f"{prefix}/byteorder" in zf.namelist() else "little"
        if order != "little":
            raise CheckpointError(f"{path}: big-endian checkpoints are not supported")
        data = zf.read(pkls[0])
        try:
            return _RestrictedUnpickler(io.BytesIO(data), zf, prefix, path).load()
        except CheckpointError:
            raise
        except Exception as e:  # corrupt pickle stream
            raise CheckpointError(f"{path}: could not read the pickle ({type(e).__name__}: {e}); the file may be corrupt") from e


def load_safetensors(path) -> dict[str, torch.Tensor]:
    """All tensors of a .safetensors file; a truncated/corrupt file raises CheckpointError."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(
            f"{path}: not a readable safetensors file ({e}); it may be truncated, download it again"
        ) from e


def load_state_dict_file(path, *, container_keys: Iterable[str] = ("model", "state_dict")) -> tuple[dict, object]:
    """(state dict, metadata) from .safetensors or .pth; for a .pth the state dict is taken from the first
    of ``container_keys`` present (DUSt3R: 'model', mmengine/Sapiens: 'state_dict')."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such weight file")
    if path.suffix == ".safetensors":
        return load_safetensors(path), None
    obj = load_pth_tensors(path)
    meta = obj
    if isinstance(obj, dict):
        for k in container_keys:
            if k in obj and isinstance(obj[k], dict):
                obj = obj[k]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: no state dict of tensors found (looked for keys {list(container_keys)})")
    return dict(obj), meta


def state_dict_mismatch(own: dict, given: dict) -> str | None:
    """Describe how ``given`` differs from a model's state dict ``own`` (missing, unexpected, wrong shapes), or None."""
    missing = sorted(set(own) - set(given))
    unexpected = sorted(set(given) - set(own))
    wrong = sorted(k for k in set(own) & set(given) if tuple(own[k].shape) != tuple(given[k].shape))
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {missing[:3]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})")
    if wrong:
        parts.append("wrong shapes: " + ", ".join(f"{k} {tuple(given[k].shape)} != {tuple(own[k].shape)}" for k in wrong[:3]))
    return "; ".join(parts) or None


def sha256_file(path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                return h.hexdigest()
            h.update(b)


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")


def resolve_weight_file(
    explicit=None,
    *,
    env_var: str,
    local_names: Iterable[str],
    repo_id: str | None,
    filename: str | None,
    what: str,
    allow_download: bool = True,
) -> Path:
    """Find a weight file. Order: ``explicit`` path (file or folder), ``$env_var``, ``weights/<...>`` (cwd, repo),
    the Hugging Face cache, a Hub download (when ``allow_download`` and not offline).

    ``local_names``: paths relative to a weights root (e.g. ``dust3r/model.safetensors``).
    """
    local_names = list(local_names)
    candidates: list[Path] = []
    for src in (explicit, os.environ.get(env_var)):
        if src:
            p = Path(src).expanduser()
            if p.is_dir():
                candidates += [p / Path(n).name for n in local_names]
            elif p.is_file():
                return p
            else:
                raise CheckpointError(f"{what}: {p} does not exist (given {'explicitly' if src is explicit else 'by $' + env_var})")
    for root in (Path.cwd() / "weights", REPO_ROOT / "weights"):
        candidates += [root / n for n in local_names]
    for c in candidates:
        if c.is_file():
            return c
    if repo_id and filename:
        try:
            from huggingface_hub import hf_hub_download

            offline = _hub_offline() or not allow_download
            return Path(hf_hub_download(repo_id, filename, local_files_only=offline))
        except Exception:  # not cached / offline / no network: fall through to the message below
            pass
    hub = f" or let it download from the Hub repo '{repo_id}' (file '{filename}', needs the internet)" if repo_id else ""
    raise CheckpointError(
        f"{what}: weights not found. Get '{filename or local_names[0]}' and put it at "
        f"'weights/{local_names[0]}' (under the repository or the working directory), or set ${env_var}=/path/to/file"
        f"{hub}."
    )
