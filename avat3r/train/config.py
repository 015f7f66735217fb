"""Training configuration (paper Sec. 4.1, supp. C-D): a ``TrainConfig`` dataclass saved inside every checkpoint,
and the named run configurations of the ablations (paper Tables 2-3).

A run = a model preset (``avat3r.model.ModelConfig``) + model overrides + data options + optimiser settings.
Named runs (``RUNS``; ``TrainConfig.from_run(name, **overrides)``):

=====================  =========================================================================
``full``               the Avat3r recipe: position + colour skips, prior positions, random input timesteps
``no_pos_skip``        Table 3 "No pos. skip" (eq. 11 off)
``no_col_skip``        Table 3 "No col. skip" (eq. 12 off)
``no_skip``            Table 3 "No skip" (both off)
``no_prior``           Table 2 "w/o DUSt3R": no position maps in the tokens and no position skip; Gaussians
                       spawn on the foreground mask
``consistent_inputs``  Table 2 "w/o rand. timesteps": the 4 input views share one timestep/expression
``interleaved``        layer order N x [self, cross, MLP]  (cross-layer count = self-layer count)
``cached``             layer order: all self-attention blocks, then all cross-attention blocks (same counts)
=====================  =========================================================================
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from ..errors import CheckpointError, InputError

__all__ = ["TrainConfig", "RUNS", "parse_overrides"]


@dataclass
class TrainConfig:
    """Everything that defines a training run. Defaults = the paper, except the model preset (``small``)."""

    # ---- what is trained --------------------------------------------------------------------------
    run: str = "full"  # name of the run configuration (see RUNS); informational once overrides are applied
    model_preset: str = "small"  # "paper" | "small" | "tiny"
    model_overrides: dict[str, Any] = field(default_factory=dict)  # ModelConfig fields (e.g. {"pos_skip": False})
    use_prior: bool = True  # False: position maps zeroed, Gaussians spawn on the foreground mask ("no_prior")
    prior: str = "visual_hull"  # position prior of the data (avat3r.priors.registry): visual_hull | dust3r | oracle
    prior_cache: str | None = None  # folder of precomputed maps (avat3r.train.priors); needed for "dust3r"

    # ---- data (SynthHeads by default; paper supp. C) ------------------------------------------------
    data: str = "synthheads"  # "synthheads" | "ava256"
    data_root: str | None = None  # dataset folder (Ava-256); SynthHeads is procedural and needs none
    data_options: dict[str, Any] = field(default_factory=dict)  # passed to the dataset constructor
    consistent_inputs: bool = False  # True: all input views share the timestep (ablation "w/o rand. timesteps")
    num_inputs: int = 4  # V input views (paper: 4)
    num_supervision: int = 8  # supervision views of the target expression (paper: 8)
    input_size: int | None = None  # input resolution; None = the model preset's image_size (paper 512)
    supervision_size: int | None = None  # render/target resolution; None = round(input_size * 667 / 512)
    data_engine: str = "auto"  # batched SynthHeads engine (avat3r.data.engine): "auto" = on for CUDA, "on", "off"
    data_engine_background: bool = True  # CUDA: the engine builds the next chunk in a thread on a side stream
    num_workers: int = -1  # DataLoader workers per rank; -1 = auto: 2 on CPU; on CUDA the rank's CPU cores - 2 (<= 16), posing heads

    # ---- optimisation (paper Sec. 4.1) ------------------------------------------------------------
    batch_size: int = 1  # samples per GPU (paper: 1 per GPU on 8 GPUs)
    lr: float = 5e-5
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    warmup_steps: int = 0  # linear LR warm-up (the paper states none)
    grad_clip: float = 1.0  # max global grad norm; <= 0 disables
    max_steps: int = 3_500_000
    max_minutes: float | None = None  # wall-clock budget; the run saves a checkpoint and stops when it is spent
    precision: str = "auto"  # "auto" (bf16 autocast on CUDA, fp32 on CPU) | "bf16" | "fp32"
    gradient_checkpointing: bool = False
    compile: bool = False  # torch.compile the transformer blocks / upsampler / decode (GPU; Avat3rModel.compile_parts)
    seed: int = 0
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)  # paper: black (matted) backgrounds

    # ---- objective (eqs. 15-18) -------------------------------------------------------------------
    lambda_l1: float = 0.8
    lambda_ssim: float = 0.2
    lambda_lpips: float = 0.01
    lpips_start: int = 3_000_000  # paper: LPIPS joins after 3M of 3.5M steps
    lpips_net: str = "vgg"
    lpips_weights: str | None = None  # folder / file / "hub:<repo>"; None = $AVAT3R_LPIPS_WEIGHTS or caches
    # not in the paper: > 0 weights the L1 term by 1 + lambda_expression inside the pixels the target expression
    # changes (SynthHeads renders the targets at neutral too: data_options.expression_region, set for you); they are
    # ~2 % of an image, and the shipped model barely animates (docs/eval/learning_curve.md)
    lambda_expression: float = 0.0
    # how lambda_expression weighs the region: "area" multiplies its pixels' L1 by 1 + lambda (the region's share of
    # the loss grows with its area: session 9's lambda 5 on ~2 % of the pixels moved nothing, and blinks and gaze,
    # ~0.15 %, got no response); "mean" adds lambda x the mean L1 inside each view's region, whatever its size
    expression_weighting: str = "area"
    # not in the paper: the probability that a training step keeps only k of its V input views (k uniform in
    # 1..V-1, the same k for the whole batch, a function of seed and step), the visual hull carved again from them,
    # so that one- and two-view inputs are seen in training (the paper trains and evaluates with 4)
    view_dropout: float = 0.0

    # ---- bookkeeping ------------------------------------------------------------------------------
    out_dir: str = "runs/full"
    log_every: int = 20  # scalars to tensorboard / log line
    image_every: int = 500  # image grids to tensorboard
    ckpt_every: int = 1000  # steps between checkpoints (one is always written at the end)
    keep_checkpoints: int = 2  # older step_* folders are deleted
    checkpoint_format: str = "exact"  # "exact" (bit-exact resume) | "compact" | "weights" (see checkpoint.py)
    shard_mib: int = 15  # max size of one checkpoint file (the device returns files <= 16 MiB)
    init_from: str | None = None  # start from exported weights (folder / Hub id): fresh Adam, step from its training.json
    rewarm_steps: int = 100  # linear LR re-warm-up after starting without Adam state (init_from, 'weights' checkpoints)

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)  # JSON gives lists
        self.background = tuple(self.background)
        self.validate()

    def validate(self) -> None:
        def bad(f: str, why: str) -> InputError:
            return InputError(f"TrainConfig.{f}: {why}")

        if self.model_preset not in ("paper", "small", "tiny"):
            raise bad("model_preset", f"must be 'paper', 'small' or 'tiny', got {self.model_preset!r}")
        if self.precision not in ("auto", "bf16", "fp32"):
            raise bad("precision", f"must be 'auto', 'bf16' or 'fp32', got {self.precision!r}")
        if not 0.0 <= self.view_dropout <= 1.0:
            raise bad("view_dropout", f"must be a probability in [0, 1], got {self.view_dropout}")
        if self.lambda_expression < 0:
            raise bad("lambda_expression", f"must be >= 0, got {self.lambda_expression}")
        if self.expression_weighting not in ("area", "mean"):
            raise bad("expression_weighting", f"must be 'area' or 'mean', got {self.expression_weighting!r}")
        if self.checkpoint_format not in ("exact", "compact", "weights"):
            raise bad("checkpoint_format", f"must be 'exact', 'compact' or 'weights', got {self.checkpoint_format!r}")
        for f in ("batch_size", "num_inputs", "num_supervision", "max_steps"):
            if getattr(self, f) < 1:
                raise bad(f, f"must be >= 1, got {getattr(self, f)}")
        if self.lr <= 0:
            raise bad("lr", f"must be > 0, got {self.lr}")
        if self.data_engine not in ("auto", "on", "off"):
            raise bad("data_engine", f"must be 'auto', 'on' or 'off', got {self.data_engine!r}")
        if self.data not in ("synthheads", "ava256"):
            raise bad("data", f"must be 'synthheads' or 'ava256', got {self.data!r}")
        from ..priors.registry import get_spec

        spec = get_spec(self.data_prior())
        if not spec.from_render and not self.prior_cache:
            raise bad("prior_cache", f"the {spec.name!r} prior is read from a prior cache during training; set "
                      "prior_cache to its folder and fill it once (avat3r.train.priors.fill_prior_cache)")
        if "prior" in self.model_overrides and self.model_overrides["prior"] != self.data_prior():
            raise bad("model_overrides", f"prior={self.model_overrides['prior']!r} contradicts the data's prior "
                      f"{self.data_prior()!r}: the recorded prior is derived from the data; set TrainConfig.prior instead")

    def data_prior(self) -> str:
        """The position prior of the training data; the model config records it (``ModelConfig.prior``)."""
        from ..priors.registry import data_prior

        return data_prior(self.to_dict())

    # ---- derived ------------------------------------------------------------------------------------
    def model_config(self, **extra: Any):
        """The ModelConfig of this run: preset + overrides (+ ``extra``, e.g. the dataset's expression space)."""
        from ..model import ModelConfig

        kw = dict(extra)
        kw.update(self.model_overrides)
        kw["prior"] = self.data_prior()  # derived from the data, never from the preset
        if not self.use_prior:
            kw.setdefault("pos_skip", False)
        base = ModelConfig.preset(self.model_preset)
        for k, v in list(kw.items()):  # {"num_cross_layers": "num_self_layers"}: copy another field's value
            if isinstance(v, str) and k != v and v in _INT_FIELDS and isinstance(getattr(base, v, None), int):
                kw[k] = kw.get(v, getattr(base, v))
        return ModelConfig.preset(self.model_preset, **kw)

    # ---- (de)serialisation --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise CheckpointError(f"train config has unknown keys {unknown} (known: {sorted(known)})")
        return cls(**data)

    @classmethod
    def from_run(cls, name: str, **overrides: Any) -> "TrainConfig":
        """A named run configuration (``RUNS``) with fields overridden; ``out_dir`` defaults to runs/<name>."""
        if name not in RUNS:
            raise InputError(f"unknown run {name!r}; choose one of {sorted(RUNS)}")
        kw: dict[str, Any] = {"run": name, "out_dir": f"runs/{name}"}
        base = RUNS[name]
        kw.update({k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()})
        mo = dict(kw.pop("model_overrides", {}))
        mo.update(overrides.pop("model_overrides", {}) or {})
        kw.update(overrides)
        kw["model_overrides"] = mo
        return cls(**kw)

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


#: Named run configurations (the ablations of the paper's Tables 2-3 and the layer-order study).
RUNS: dict[str, dict[str, Any]] = {
    "full": {},
    "no_pos_skip": {"model_overrides": {"pos_skip": False}},
    "no_col_skip": {"model_overrides": {"rgb_skip": False}},
    "no_skip": {"model_overrides": {"pos_skip": False, "rgb_skip": False}},
    "no_prior": {"use_prior": False},
    "consistent_inputs": {"consistent_inputs": True},
    # the layer-order pair: equal self/cross counts in both ('interleaved' pairs every self with a cross layer)
    "interleaved": {"model_overrides": {"layer_order": "interleaved", "num_cross_layers": "num_self_layers"}},
    "cached": {"model_overrides": {"layer_order": "cached", "num_cross_layers": "num_self_layers"}},
}
_INT_FIELDS = ("num_self_layers", "num_cross_layers")


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["a=1", "b.c=true", "d=[1,2]"]`` -> {"a": 1, "b": {"c": True}, "d": [1, 2]} (values parsed as JSON,
    falling back to strings). Used by ``--set`` on the command line."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise InputError(f"--set expects key=value, got {item!r}")
        key, raw = item.split("=", 1)
        try:
            val = json.loads(raw)
        except json.JSONDecodeError:
            val = raw
        d = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            d = d.setdefault(p, {})
        d[parts[-1]] = val
    return out
