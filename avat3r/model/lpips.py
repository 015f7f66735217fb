"""LPIPS (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric"), v0.1.

Used by the training objective (eq. 17) and by the evaluation metrics. This is our own implementation of the
published architecture; it needs two sets of pretrained weights that cannot be downloaded on this machine:

- the ImageNet backbone, in torchvision's layout (``vgg16-397923af.pth`` / ``alexnet-owt-7be5be79.pth``, or the
  same tensors as ``.safetensors``; keys ``features.<i>.weight|bias``), and
- the LPIPS linear calibration layers (``vgg.pth`` / ``alex.pth`` from the ``lpips`` package's
  ``weights/v0.1`` folder; keys ``lin<k>.model.1.weight`` of shape [1, C_k, 1, 1]).

``load_lpips(source)`` accepts a folder holding both, a single ``.safetensors`` written by ``LPIPS.save``
(keys ``features.*`` and ``lin.<k>.weight``), or ``hub:<owner>/<repo>`` (downloaded only when you ask; honours
``HF_HUB_OFFLINE``). ``.pth`` files are read with ``torch.load(weights_only=True)``: a restricted unpickler that
rebuilds tensors and plain containers only and executes no code. ``try_load_lpips`` returns None (and logs
why) when no weights are found; the objective and the metrics then run without LPIPS and say so.
"""

from __future__ import annotations

import glob
import logging
import os
from pathlib import Path

import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file

from ..errors import CheckpointError

__all__ = ["LPIPS", "load_lpips", "try_load_lpips", "find_lpips_weights", "ENV_VAR"]

log = logging.getLogger(__name__)

ENV_VAR = "AVAT3R_LPIPS_WEIGHTS"

# (layer spec, slice ends, channels per tapped layer). Specs mirror torchvision's `features` indices so that
# its state-dict keys load unchanged. ("C", cin, cout, kernel, stride, pad) / ("R",) / ("M", kernel, stride)
_VGG16 = [("C", 3, 64, 3, 1, 1), ("R",), ("C", 64, 64, 3, 1, 1), ("R",), ("M", 2, 2),
          ("C", 64, 128, 3, 1, 1), ("R",), ("C", 128, 128, 3, 1, 1), ("R",), ("M", 2, 2),
          ("C", 128, 256, 3, 1, 1), ("R",), ("C", 256, 256, 3, 1, 1), ("R",), ("C", 256, 256, 3, 1, 1), ("R",), ("M", 2, 2),
          ("C", 256, 512, 3, 1, 1), ("R",), ("C", 512, 512, 3, 1, 1), ("R",), ("C", 512, 512, 3, 1, 1), ("R",), ("M", 2, 2),
          ("C", 512, 512, 3, 1, 1), ("R",), ("C", 512, 512, 3, 1, 1), ("R",), ("C", 512, 512, 3, 1, 1), ("R",)]
_ALEX = [("C", 3, 64, 11, 4, 2), ("R",), ("M", 3, 2), ("C", 64, 192, 5, 1, 2), ("R",), ("M", 3, 2),
         ("C", 192, 384, 3, 1, 1), ("R",), ("C", 384, 256, 3, 1, 1), ("R",), ("C", 256, 256, 3, 1, 1), ("R",)]
NETS = {
    "vgg": (_VGG16, [4, 9, 16, 23, 30], [64, 128, 256, 512, 512], ("vgg16*.pth", "vgg16*.safetensors")),
    "alex": (_ALEX, [2, 5, 8, 10, 12], [64, 192, 384, 256, 256], ("alexnet*.pth", "alexnet*.safetensors")),
}


def _build(spec) -> nn.Sequential:
    layers: list[nn.Module] = []
    for s in spec:
        if s[0] == "C":
            layers.append(nn.Conv2d(s[1], s[2], s[3], s[4], s[5]))
        elif s[0] == "R":
            layers.append(nn.ReLU(inplace=False))
        else:
            layers.append(nn.MaxPool2d(s[1], s[2]))
    return nn.Sequential(*layers)


class LPIPS(nn.Module):
    """LPIPS distance of images a, b [B, 3, H, W] in [0, 1] -> [B] (0 = identical). Weights frozen."""

    def __init__(self, net: str = "vgg") -> None:
        super().__init__()
        if net not in NETS:
            raise CheckpointError(f"LPIPS net must be one of {sorted(NETS)}, got {net!r}")
        spec, self.ends, chans, _ = NETS[net]
        self.net = net
        self.features = _build(spec)
        self.lin = nn.ModuleList([nn.Conv2d(c, 1, 1, bias=False) for c in chans])
        # ScalingLayer of the reference code: inputs in [-1, 1] are shifted/scaled to ImageNet statistics.
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)

    def _taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        out, start = [], 0
        for end in self.ends:
            for i in range(start, end):
                x = self.features[i](x)
            out.append(x)
            start = end
        return out

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=a.device.type, enabled=False):
            x = torch.cat([a, b], 0).float() * 2 - 1
            x = (x - self.shift) / self.scale
            total = 0.0
            for lin, f in zip(self.lin, self._taps(x)):
                f = f / (f.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)  # unit length along channels
                fa, fb = f.chunk(2, 0)
                total = total + lin((fa - fb) ** 2).mean((2, 3))
            return total.reshape(-1)

    # ---- weights -------------------------------------------------------------------------------------
    def save(self, path) -> None:
        """Write features.* and lin.<k>.weight to one .safetensors file (atomic)."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(tmp), metadata={"net": self.net})
        os.replace(tmp, path)

    def load_tensors(self, backbone: dict[str, torch.Tensor], lins: dict[str, torch.Tensor], where: str) -> "LPIPS":
        """Load torchvision-layout backbone tensors and official (or our) linear-layer tensors."""
        own = self.state_dict()
        state = {}
        for k in own:
            if k.startswith("features."):
                if k not in backbone:
                    raise CheckpointError(f"{where}: backbone weight {k!r} missing; expected torchvision's {self.net} layout")
                state[k] = backbone[k]
            else:  # lin.<k>.weight  <-  lin<k>.model.1.weight (official) or lin.<k>.weight (ours)
                idx = k.split(".")[1]
                for cand in (k, f"lin{idx}.model.1.weight", f"lin{idx}.weight"):
                    if cand in lins:
                        state[k] = lins[cand]
                        break
                else:
                    raise CheckpointError(f"{where}: LPIPS linear weight for layer {idx} missing (looked for lin{idx}.model.1.weight)")
        for k, v in state.items():
            if tuple(v.shape) != tuple(own[k].shape):
                raise CheckpointError(f"{where}: {k} has shape {tuple(v.shape)}, expected {tuple(own[k].shape)} for LPIPS-{self.net}")
        self.load_state_dict({k: v.float() for k, v in state.items()})
        return self


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a .safetensors or .pth file (.pth through torch's tensors-only unpickler)."""
    if path.suffix == ".safetensors":
        return load_file(str(path))
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # a pickle that wants to run code or rebuild foreign classes ends up here
        raise CheckpointError(f"{path}: not a tensors-only checkpoint ({type(e).__name__}: {str(e)[:200]}); convert it to .safetensors") from e
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict of tensors, got {type(obj).__name__}")
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def _first(folder: Path, patterns) -> Path | None:
    for pat in patterns:
        hits = sorted(glob.glob(str(folder / pat)))
        if hits:
            return Path(hits[0])
    return None


def find_lpips_weights(net: str = "vgg", source: str | os.PathLike | None = None) -> tuple[Path, Path] | Path | None:
    """Locate weights: a combined .safetensors file, or (backbone file, linear-layer file). None if absent.

    Looks in ``source`` (file/folder), then $AVAT3R_LPIPS_WEIGHTS, then torch's hub cache (backbone) together
    with an installed ``lpips`` package (linear layers)."""
    if net not in NETS:
        raise CheckpointError(f"LPIPS net must be one of {sorted(NETS)}, got {net!r}")
    bb_patterns = NETS[net][3]
    lin_patterns = (f"{net}.pth", f"{net}.safetensors", f"weights/v0.1/{net}.pth", f"v0.1/{net}.pth")
    candidates = [source] if source else []
    if os.environ.get(ENV_VAR):
        candidates.append(os.environ[ENV_VAR])
    for cand in candidates:
        p = Path(cand).expanduser()
        if p.is_file():
            return p
        if p.is_dir():
            combined = _first(p, (f"lpips_{net}.safetensors", f"lpips-{net}.safetensors"))
            if combined:
                return combined
            bb, lin = _first(p, bb_patterns), _first(p, lin_patterns)
            if bb and lin:
                return bb, lin
    hub = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch")) / "hub" / "checkpoints"
    bb = _first(hub, bb_patterns) if hub.is_dir() else None
    lin = None
    try:
        import importlib.util

        spec = importlib.util.find_spec("lpips")
        if spec is not None and spec.origin:
            lin = _first(Path(spec.origin).parent / "weights" / "v0.1", (f"{net}.pth",))
    except (ImportError, ValueError):
        pass
    return (bb, lin) if bb and lin else None


def load_lpips(source: str | os.PathLike | None = None, net: str = "vgg") -> LPIPS:
    """An LPIPS module with pretrained weights; CheckpointError saying what is missing when not found."""
    if isinstance(source, str) and source.startswith("hub:"):
        from huggingface_hub import snapshot_download

        source = snapshot_download(source[4:], allow_patterns=["*.safetensors", "*.pth", "*.json"])
    found = find_lpips_weights(net, source)
    if found is None:
        raise CheckpointError(
            f"no LPIPS-{net} weights found (looked in {source or '-'}, ${ENV_VAR}, torch hub cache + lpips package). "
            f"Put torchvision's {NETS[net][3][0]} and the LPIPS v0.1 '{net}.pth' in one folder and pass it, "
            "or an lpips_<net>.safetensors written by LPIPS.save"
        )
    model = LPIPS(net)
    if isinstance(found, Path):
        t = _read_tensors(found)
        model.load_tensors(t, t, str(found))
    else:
        bb, lin = found
        model.load_tensors(_read_tensors(bb), _read_tensors(lin), f"{bb} + {lin}")
    return model.eval()


def try_load_lpips(net: str = "vgg", source: str | os.PathLike | None = None) -> LPIPS | None:
    """load_lpips, or None with a log line saying that LPIPS is off and why."""
    try:
        return load_lpips(source, net)
    except CheckpointError as e:
        log.warning("LPIPS is OFF: %s", e)
        return None
