"""Avat3r weights on disk and on the Hugging Face Hub: ``config.json`` + ``model.safetensors`` (+ README.md card).

We use ``hf_hub_download`` of the two files rather than ``PyTorchModelHubMixin``: it keeps the config format
ours (``ModelConfig.to_dict`` + two metadata keys), lets us check tensors against the config with a clear
message before anything is loaded, and makes the offline rules explicit:

1. a local directory is used directly (no network, no cache);
2. otherwise the argument is a Hub repo id; with ``HF_HUB_OFFLINE=1`` or ``local_files_only=True`` only the
   local Hub cache is consulted; online, a failed connection falls back to the cache too;
3. with neither a directory nor a cached copy, a ``CheckpointError`` says where to put the files.

Nothing is unpickled: tensors come from safetensors only.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch

from ..errors import CheckpointError
from .config import ModelConfig

__all__ = ["save_pretrained", "from_pretrained", "push_to_hub", "load_config", "CONFIG_NAME", "WEIGHTS_NAME"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
MODEL_TYPE = "avat3r"
FORMAT_VERSION = 1
_META_KEYS = ("model_type", "format_version")


# ---- saving ---------------------------------------------------------------------------------------------
def save_pretrained(model, save_directory, *, dtype: torch.dtype | None = None, model_card: bool = True) -> Path:
    """Write config.json + model.safetensors (+ README.md) into ``save_directory`` atomically.

    ``dtype=torch.float16`` halves the file for shipping (loading casts back to float32 by default;
    outputs then differ from the fp32 model by fp16 rounding of the weights, ~1e-3 relative)."""
    from safetensors.torch import save_file

    out = Path(save_directory)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for k, v in model.state_dict().items():
        v = v.detach().to("cpu")
        if dtype is not None and v.is_floating_point():
            v = v.to(dtype)
        tensors[k] = v.contiguous()
    cfg = {"model_type": MODEL_TYPE, "format_version": FORMAT_VERSION, **model.config.to_dict()}
    stored = str(dtype or next(model.parameters()).dtype).replace("torch.", "")
    meta = {"format": "pt", "model_type": MODEL_TYPE, "dtype": stored}
    _atomic(out / WEIGHTS_NAME, lambda p: save_file(tensors, str(p), metadata=meta))
    _atomic(out / CONFIG_NAME, lambda p: Path(p).write_text(json.dumps(cfg, indent=2) + "\n"))
    if model_card:
        _atomic(out / "README.md", lambda p: Path(p).write_text(_model_card(model, dtype)))
    return out


def push_to_hub(model, repo_id: str, *, private: bool | None = None, token: str | None = None,
                commit_message: str = "Upload Avat3r weights", revision: str | None = None,
                dtype: torch.dtype | None = None) -> str:
    """Create ``repo_id`` if needed and upload config.json, model.safetensors and README.md. Returns the commit url."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        save_pretrained(model, tmp, dtype=dtype)
        info = api.upload_folder(repo_id=repo_id, folder_path=tmp, commit_message=commit_message, revision=revision)
    return str(getattr(info, "commit_url", info))


# ---- loading --------------------------------------------------------------------------------------------
def load_config(path) -> ModelConfig:
    """Read a checkpoint's config.json into a ModelConfig (CheckpointError on anything malformed)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path} not found: an Avat3r checkpoint needs {CONFIG_NAME} beside {WEIGHTS_NAME}") from None
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path} is not valid JSON ({e}); re-download or re-save the checkpoint") from e
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} must hold a JSON object of model settings")
    if data.get("model_type", MODEL_TYPE) != MODEL_TYPE:
        raise CheckpointError(f"{path}: model_type is {data.get('model_type')!r}, expected {MODEL_TYPE!r} (not an Avat3r checkpoint)")
    if int(data.get("format_version", FORMAT_VERSION)) > FORMAT_VERSION:
        raise CheckpointError(f"{path}: format_version {data['format_version']} is newer than this avat3r supports "
                              f"({FORMAT_VERSION}); upgrade avat3r")
    try:
        return ModelConfig.from_dict({k: v for k, v in data.items() if k not in _META_KEYS})
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from None


def from_pretrained(model_class, repo_id_or_path, *, revision: str | None = None, local_files_only: bool | None = None,
                    device="cpu", dtype: torch.dtype = torch.float32):
    """Build a ``model_class`` (``Avat3rModel``) from a local checkpoint directory or a Hub repo id (see the module
    docstring). Use ``Avat3rModel.from_pretrained(...)``; the class comes in so that hub does not import the network."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    cfg_path, w_path = _resolve(repo_id_or_path, revision, local_files_only)
    cfg = load_config(cfg_path)
    try:
        tensors = load_file(str(w_path), device="cpu")
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{w_path} is not a readable safetensors file ({e}); re-download or re-save the checkpoint") from e
    model = model_class(cfg)
    check_state_dict(model, tensors, where=str(w_path))
    model.load_state_dict({k: v.to(torch.float32) if v.is_floating_point() else v for k, v in tensors.items()}, strict=True)
    return model.to(device=device, dtype=dtype).eval()


def check_state_dict(model, tensors: dict[str, torch.Tensor], where: str) -> None:
    """CheckpointError listing the first offending keys when tensors and the config's model disagree."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = [k for k in expected if k not in tensors]
    unexpected = [k for k in tensors if k not in expected]
    mismatched = [f"{k} {list(tensors[k].shape)} vs {list(s)}" for k, s in expected.items() if k in tensors and tuple(tensors[k].shape) != s]
    if missing or unexpected or mismatched:
        parts = []
        for label, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch (file vs config)", mismatched)):
            if items:
                parts.append(f"{len(items)} {label}: {', '.join(items[:5])}{' ...' if len(items) > 5 else ''}")
        raise CheckpointError(
            f"{where} does not match its {CONFIG_NAME} (preset {model.config.name!r}): " + "; ".join(parts)
            + ". The weights were saved from a different model configuration; use the config.json saved with them."
        )


def _resolve(src, revision, local_files_only) -> tuple[Path, Path]:
    path = Path(os.fspath(src)).expanduser()
    if path.is_dir():
        missing = [n for n in (CONFIG_NAME, WEIGHTS_NAME) if not (path / n).is_file()]
        if missing:
            raise CheckpointError(f"checkpoint directory {path} lacks {', '.join(missing)}; it needs {CONFIG_NAME} and {WEIGHTS_NAME}")
        return path / CONFIG_NAME, path / WEIGHTS_NAME
    s = str(src)
    if path.exists() or s.startswith((".", "/", "~")) or s.count("/") > 1 or "\\" in s:
        raise CheckpointError(f"checkpoint directory {s!r} does not exist; pass a directory holding {CONFIG_NAME} and "
                              f"{WEIGHTS_NAME}, or a Hub repo id 'owner/name'")
    return _download(s, revision, local_files_only)


def _download(repo_id: str, revision, local_files_only) -> tuple[Path, Path]:
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    env_offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}
    offline = bool(local_files_only) if local_files_only is not None else (env_offline or bool(constants.HF_HUB_OFFLINE))

    def where_to_put() -> str:
        return (
            f"Put {CONFIG_NAME} and {WEIGHTS_NAME} in a local directory and pass its path (the project default is "
            f"weights/), or download them once with network access: `hf download {repo_id} --local-dir weights/` "
            f"(or into the Hub cache at {constants.HF_HUB_CACHE} by running once without HF_HUB_OFFLINE)."
        )

    def get(filename: str, only_local: bool) -> str:
        return hf_hub_download(repo_id, filename, revision=revision, local_files_only=only_local, library_name="avat3r")

    paths = []
    for filename in (CONFIG_NAME, WEIGHTS_NAME):
        try:
            try:
                paths.append(Path(get(filename, offline)))
            except (LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError,
                    HFValidationError, GatedRepoError):
                raise
            except Exception:  # network trouble of any kind (httpx/requests errors): try the cache
                if offline:
                    raise
                paths.append(Path(get(filename, True)))
        except HFValidationError as e:
            raise CheckpointError(f"{repo_id!r} is neither an existing local directory nor a valid Hub repo id ({e})") from None
        except LocalEntryNotFoundError:
            why = "offline mode (HF_HUB_OFFLINE=1 or local_files_only=True)" if offline else "the Hub is unreachable"
            raise CheckpointError(
                f"Avat3r weights {repo_id!r}{'@' + revision if revision else ''}: {filename} is not a local directory and not in the "
                f"Hub cache, and {why}. {where_to_put()}"
            ) from None
        except GatedRepoError:
            raise CheckpointError(f"Hub repo {repo_id!r} is gated: accept its terms on huggingface.co and log in (`hf auth login`)") from None
        except RepositoryNotFoundError:
            raise CheckpointError(f"Hub repo {repo_id!r} not found (or private without a token). {where_to_put()}") from None
        except RevisionNotFoundError:
            raise CheckpointError(f"Hub repo {repo_id!r} has no revision {revision!r}") from None
        except EntryNotFoundError:
            raise CheckpointError(f"Hub repo {repo_id!r} has no {filename}; it is not an Avat3r checkpoint") from None
        except Exception as e:
            raise CheckpointError(f"could not fetch {filename} of {repo_id!r}: {e}. {where_to_put()}") from e
    return paths[0], paths[1]


# ---- helpers --------------------------------------------------------------------------------------------
def _atomic(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _model_card(model, dtype) -> str:
    c = model.config
    n = model.num_parameters()
    return f"""---
library_name: avat3r
tags: [avat3r, 3d-gaussian-splatting, head-avatar, few-shot-3d-reconstruction]
---
# Avat3r weights ({c.name} preset)

Animatable 3D Gaussian head avatars from a few images (Kirschstein et al., Avat3r), as implemented in the
`avat3r` package. Load with `avat3r.model.Avat3rModel.from_pretrained("<this repo or a local copy>")`.

| | |
|---|---|
| parameters | {n / 1e6:.2f} M |
| stored dtype | {str(dtype or next(model.parameters()).dtype).replace("torch.", "")} |
| input size | {c.image_size}² (any multiple of {c.patch_size}), any number of views |
| layer order | {c.layer_order} |
| position prior | {c.prior} |
| features | {c.features or "none"} |
| expression code | {c.expression_dim} dims, presets: {", ".join(sorted(c.presets))} |

The full configuration is in `config.json`; tensors are in `model.safetensors` (no pickle).
"""
