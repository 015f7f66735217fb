"""Training/evaluation samples from SynthHeads, following the paper's data sampling (supp. C).

One sample = one identity; V input views (default 4) chosen by k-farthest viewpoint sampling from 10
candidates among the dome cameras that are not back-only, each at its own random expression and head pose
(inconsistent inputs; ``consistent_inputs=True`` for the ablation); T = 8 supervision views of one target
expression from all cameras; the position prior (default: the weight-free visual hull) computed from the input
masks and cameras only. Deterministic by (config.seed, index); generation runs on ``config.device``.

Sample dict (tensors on the configured device)::

    input_images [V, 3, H, W]   input_masks [V, 1, H, W]   input_cameras Cameras(V)
    prior_positions [V, 3, H, W] (metres)   prior_confidence [V, 1, H, W] (> 0.5 = keep)
    target_images [T, 3, Ht, Wt]   target_masks [T, 1, Ht, Wt]   target_cameras Cameras(T)
    target_expression [C]   input_expressions [V, C]   identity_seed int   index int
    input_camera_ids [V]  target_camera_ids [T] (dome indices)

``collate`` batches a list of samples (cameras become lists).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..cameras import Cameras, k_farthest_viewpoints
from ..errors import InputError
from ..priors.registry import PRIORS as _ALL_PRIORS
from ..priors.registry import render_maps
from ..priors.visual_hull import VisualHullConfig
from . import augment as aug
from .dome import DomeConfig, back_only, fold_head_pose, head_crops, head_pose_matrix, make_dome
from .expressions import sample_expression
from .identity import split_seeds
from .synthheads import get_rig

PRIORS = tuple(n for n, spec in _ALL_PRIORS.items() if spec.from_render)  # others come from a prior cache


@dataclass
class SamplerConfig:
    num_inputs: int = 4                 # V (1..8)
    num_targets: int = 8                # T
    n_candidates: int = 10              # k-farthest candidate set size
    input_size: int = 512
    target_size: int = 667
    consistent_inputs: bool = False     # ablation: all inputs at one expression and head pose
    prior: str = "visual_hull"          # "visual_hull" | "oracle" (ablation only) | "none"
    split: str = "train"
    identities: tuple | None = None     # explicit identity seeds (overrides split)
    head_pose_deg: tuple = (15.0, 10.0, 5.0)  # max |yaw|, |pitch|, |roll| of the head inside the dome
    crop_jitter: float = 0.03
    # train: consecutive indices share an identity (only for in-order reading: the trainer shuffles indices, so
    # there it has no effect)
    identity_reuse: int = 1
    seed: int = 0
    device: str = "cpu"
    backend: str = "auto"               # renderer backend
    dome: DomeConfig = field(default_factory=DomeConfig)
    hull: VisualHullConfig = field(default_factory=VisualHullConfig)
    augment: aug.AugmentConfig = field(default_factory=aug.AugmentConfig)  # robustness; all off (training split only)
    widen: bool = False                 # widened SynthHeads (hair volume/texture, shoulders, clothing); training split only
    # also render the targets at the neutral expression and return target_expression_region [T, 1, Ht, Wt]: the
    # pixels the target expression changes (expression_region_mask), which the loss can weight
    # (TrainConfig.lambda_expression): ~2 % of a supervision image, so plain L1 barely sees the animation
    expression_region: bool = False

    def validate(self) -> None:
        self.augment = aug.as_augment_config(self.augment)
        if not 1 <= self.num_inputs <= 8:
            raise InputError(f"SamplerConfig.num_inputs must be in 1..8, got {self.num_inputs}")
        if self.num_targets < 1:
            raise InputError(f"SamplerConfig.num_targets must be >= 1, got {self.num_targets}")
        if self.prior not in PRIORS:
            raise InputError(f"SamplerConfig.prior must be one of {PRIORS}, got {self.prior!r}")


class SynthHeadsSampler:
    """Makes paper-style samples from SynthHeads: ``sampler.sample(index) -> dict``."""

    def __init__(self, config: SamplerConfig | None = None, **overrides):
        cfg = config or SamplerConfig()
        for k, v in overrides.items():
            if not hasattr(cfg, k):
                raise InputError(f"SamplerConfig has no field {k!r}")
            setattr(cfg, k, v)
        cfg.validate()
        self.config = cfg
        self.device = torch.device(cfg.device)
        self.dome = make_dome(cfg.dome)
        self.allowed = ~back_only(self.dome.cameras)
        self.seeds = list(cfg.identities) if cfg.identities is not None else split_seeds(cfg.split)

    def identity_for(self, index: int, rng: np.random.Generator) -> int:
        if self.config.split == "train" and self.config.identities is None:
            block = index // max(1, self.config.identity_reuse)
            pick = np.random.default_rng([self.config.seed, block, 0x1D]).integers(len(self.seeds))
            return int(self.seeds[int(pick)])
        return int(self.seeds[index % len(self.seeds)])  # evaluation: cycle through the identities

    def _pose(self, rng) -> torch.Tensor:
        y, p, r = self.config.head_pose_deg
        return head_pose_matrix(rng.uniform(-y, y), rng.uniform(-p, p), rng.uniform(-r, r))

    def sample(self, index: int) -> dict:
        """The training sample of ``index`` (see the module docstring), made on ``config.device``."""
        return self.realize(self.plan(index))

    @property
    def augmenting(self) -> bool:
        """Whether this sampler's samples are augmented (some switch on, and a training split or ``in_eval``)."""
        a = self.config.augment
        return a.any and (a.in_eval or (self.config.split == "train" and self.config.identities is None))

    @property
    def widening(self) -> bool:
        """Whether identities are the widened SynthHeads (``widen``; training split, or with ``augment.in_eval``)."""
        c = self.config
        return c.widen and (c.augment.in_eval or (c.split == "train" and c.identities is None))

    def identity(self, seed: int):
        """The Identity of a seed as this sampler draws it (widened or not)."""
        from .identity import sample_identity

        return sample_identity(int(seed), wide=self.widening)

    def plan(self, index: int, device: str | torch.device | None = None, identity: int | None = None) -> dict:
        """The CPU-friendly half of a sample: random draws, cameras and the posed heads (no rendering).

        Posing is many small tensor ops: on a GPU it is launch-bound (~43 ms for 5 heads on an H100) while one
        CPU core does it in ~60 ms, so training poses in DataLoader workers (``device="cpu"``) and renders the
        plans on the GPU (``realize``). ``sample(i) == realize(plan(i))`` whatever the device of the plan.
        identity: use this identity seed instead of the index's (the batched engine's identity pool)."""
        dev = torch.device(device) if device is not None else self.device
        p = self.draw(index, identity)
        rig = get_rig(self.identity(p["identity_seed"]), dev)
        z_in, z_t = p["z_in"], p["z_t"]
        V = self.config.num_inputs
        if self.config.consistent_inputs:
            heads = rig.pose(np.concatenate([z_in[:1], z_t[None]]))
            g_in, g_t = [heads[0]] * V, heads[1]
        else:
            heads = rig.pose(np.concatenate([z_in, z_t[None]]))
            g_in, g_t = heads[:V], heads[V]
        p.update(heads_in=list(g_in), head_target=g_t)
        if self.config.expression_region:  # the same head at the neutral expression (all zeros)
            p["head_neutral"] = rig.pose(np.zeros_like(z_t)[None])[0]
        return p

    def draw(self, index: int, identity: int | None = None) -> dict:
        """Every random draw of sample ``index`` (identity, expressions, head poses, cameras, augmentation
        parameters) without building or posing the head: a plan minus the heads."""
        cfg = self.config
        rng = np.random.default_rng([cfg.seed, int(index), 0xDA7A])
        gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        ident = self.identity_for(index, rng)
        if identity is not None:
            ident = int(identity)
        V, T = cfg.num_inputs, cfg.num_targets
        # expressions and head poses: one per input "timestep", one for the target timestep
        z_t = sample_expression(rng)
        if cfg.consistent_inputs:
            z_in = np.repeat(sample_expression(rng)[None], V, 0)
            pose = self._pose(rng)
            poses_in = [pose] * V
        else:
            z_in = np.stack([sample_expression(rng) for _ in range(V)])
            poses_in = [self._pose(rng) for _ in range(V)]
        pose_t = self._pose(rng)
        # cameras: k-farthest inputs among non-back views; targets from all cameras
        in_ids = k_farthest_viewpoints(self.dome.cameras.centers, V, n_candidates=max(cfg.n_candidates, V),
                                       allowed=self.allowed, generator=gen)
        tg_ids = torch.randperm(len(self.dome.names), generator=gen)[:T].tolist()
        full = self.dome.cameras
        cam_in = Cameras.cat([fold_head_pose(full[i], poses_in[k]) for k, i in enumerate(in_ids)])
        cam_in = head_crops(cam_in, cfg.input_size, jitter=cfg.crop_jitter, generator=gen)
        cam_t = head_crops(fold_head_pose(full[tg_ids], pose_t), cfg.target_size, jitter=cfg.crop_jitter, generator=gen)
        out = {"input_cameras": cam_in, "target_cameras": cam_t, "z_t": z_t, "z_in": z_in, "identity_seed": ident,
               "index": int(index), "in_ids": in_ids, "tg_ids": tg_ids}
        if self.augmenting:
            prm = aug.draw_params(cfg.augment, cfg.seed, index, V)
            out["input_cameras"] = aug.perturb_crops(cam_in, prm, cfg.augment)
            out["augment"] = prm
        return out

    def realize(self, plan: dict, device: str | torch.device | None = None) -> dict:
        """Render a ``plan`` (input views, supervision views) and compute its position prior on ``device``."""
        from ..render import render

        cfg = self.config
        dev = torch.device(device) if device is not None else self.device
        V = cfg.num_inputs
        cam_in, cam_t = plan["input_cameras"], plan["target_cameras"]
        cam_in_d, cam_t_d = cam_in.to(dev), cam_t.to(dev)
        prm = plan.get("augment")
        lit = prm is not None and cfg.augment.lighting  # one light per sample: inputs, targets (and neutral) alike

        def head(g):
            g = g.to(dev)
            return _recolor(g, aug.relight(g.colors[None], g.quats[None], [prm], [0], cfg.augment)[0]) if lit else g

        g_in = [head(g) for g in plan["heads_in"]]
        g_t = head(plan["head_target"])
        with torch.no_grad():
            outs = [render(g_in[k], cam_in_d[k], backend=cfg.backend) for k in range(V)]
            img_in = torch.cat([o.color for o in outs])
            a_in = torch.cat([o.alpha for o in outs])
            out_t = render(g_t, cam_t_d, backend=cfg.backend)
            region = None
            if "head_neutral" in plan:
                neutral = render(head(plan["head_neutral"]), cam_t_d, backend=cfg.backend).color
                region = expression_region_mask(out_t.color.permute(0, 3, 1, 2), neutral.permute(0, 3, 1, 2))
            img_in, a_in, cam_in_d = finish_inputs(img_in, a_in, cam_in_d, [prm] if prm is not None else None, cfg, dev)
            m_in = a_in[..., 0].clamp(0, 1)
            depth = torch.cat([o.depth for o in outs])[..., 0] if cfg.prior == "oracle" else None
            pos, conf = render_maps(cfg.prior, m_in, cam_in_d, depth, cfg.hull)
        out = {
            "input_images": img_in.permute(0, 3, 1, 2).contiguous(),
            "input_masks": a_in.permute(0, 3, 1, 2).contiguous(),
            "input_cameras": cam_in_d,
            "prior_positions": pos.permute(0, 3, 1, 2).contiguous(),
            "prior_confidence": conf[:, None].contiguous(),
            "target_images": out_t.color.permute(0, 3, 1, 2).contiguous(),
            "target_masks": out_t.alpha.permute(0, 3, 1, 2).contiguous(),
            "target_cameras": cam_t_d,
            "target_expression": torch.as_tensor(plan["z_t"], device=dev),
            "input_expressions": torch.as_tensor(plan["z_in"], device=dev),
            "identity_seed": plan["identity_seed"],
            "index": plan["index"],
            "input_camera_ids": torch.as_tensor(plan["in_ids"]),
            "target_camera_ids": torch.as_tensor(plan["tg_ids"]),
        }
        if region is not None:
            out["target_expression_region"] = region
        return out


#: a pixel belongs to the expression region when the target and its neutral re-render differ by more than this
#: (max over RGB); then dilated by 2 px (bench/expression_effect.py's protocol)
REGION_THRESHOLD = 0.05


def expression_region_mask(target: torch.Tensor, neutral: torch.Tensor, threshold: float = REGION_THRESHOLD) -> torch.Tensor:
    """target, neutral [T, 3, H, W]: the same views at the target and at the neutral expression -> [T, 1, H, W]
    float in {0, 1}: the pixels the expression changes, dilated by 2 px."""
    m = (target - neutral).abs().amax(1, keepdim=True) > threshold
    return torch.nn.functional.max_pool2d(m.float(), 5, 1, 2)


def _recolor(g, colors):
    from ..gaussians import Gaussians

    return Gaussians(g.means, g.quats, g.scales, g.opacities, colors)


def finish_inputs(img: torch.Tensor, alpha: torch.Tensor, cams: Cameras, prms: list[dict] | None, cfg: SamplerConfig,
                  device) -> tuple[torch.Tensor, torch.Tensor, Cameras]:
    """The input-side augmentations after rendering, for S samples of V views at once: rendered colours
    [S*V, H, W, 3] and alpha [S*V, H, W, 1], the true cameras (S*V) -> (input images, the masks a front end would
    give, the cameras it would estimate), channels last like the renderer's output. prms None: unchanged."""
    if prms is None:
        return img, alpha, cams
    a = cfg.augment
    gens = [torch.Generator(device=device).manual_seed(p["torch_seed"]) for p in prms]
    x, m = img.permute(0, 3, 1, 2), alpha.permute(0, 3, 1, 2)
    x, m = aug.perturb_masks(x, m, prms, a, gens)
    x = aug.photometric(x, prms, a, gens)
    V = len(cams) // len(prms)
    if a.camera:
        cams = Cameras.cat([aug.perturb_cameras(cams[s * V:(s + 1) * V], p, a) for s, p in enumerate(prms)])
    return x.permute(0, 2, 3, 1), m.permute(0, 2, 3, 1), cams


def collate(samples: list[dict]) -> dict:
    """Batch samples: tensors are stacked [B, ...]; Cameras and ints become lists."""
    out = {}
    for k in samples[0]:
        vals = [s[k] for s in samples]
        out[k] = torch.stack(vals) if isinstance(vals[0], torch.Tensor) else vals
    return out


class SynthHeadsDataset(torch.utils.data.Dataset):
    """Map-style dataset of ``length`` samples; item i is ``sampler.sample(offset + i)`` (deterministic).

    plan_device="cpu": item i is only ``sampler.plan(offset + i)`` (posed heads, cameras), made on the CPU, e.g. in
    DataLoader workers; ``realize(item, device)`` renders it on the training device (the trainer does this when
    ``deferred`` is True). The sample is the same either way."""

    def __init__(self, config: SamplerConfig | None = None, length: int = 100_000, offset: int = 0,
                 plan_device: str | None = None, engine: dict | None = None, **overrides):
        self.sampler = SynthHeadsSampler(config, **overrides)
        self.engine_options = dict(engine or {})  # EngineConfig fields for the trainer's data engine
        self.length, self.offset = int(length), int(offset)
        self.plan_device = plan_device

    @property
    def deferred(self) -> bool:
        return self.plan_device is not None

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < self.length:
            raise IndexError(i)
        if self.plan_device is not None:
            return self.sampler.plan(self.offset + i, self.plan_device)
        return self.sampler.sample(self.offset + i)

    def realize(self, item: dict, device=None) -> dict:
        """A plan (deferred mode) -> the sample on ``device``; a finished sample is returned as it is."""
        return self.sampler.realize(item, device) if "heads_in" in item else item


class SynthHeadsStream(torch.utils.data.IterableDataset):
    """Endless stream; worker- and rank-aware: worker w of n (and rank r of R) yields indices
    start + (r * n + w) + k * (n * R), so no two workers produce the same sample."""

    def __init__(self, config: SamplerConfig | None = None, start: int = 0, rank: int = 0, world_size: int = 1, **overrides):
        self.sampler = SynthHeadsSampler(config, **overrides)
        self.start, self.rank, self.world = int(start), int(rank), int(world_size)

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        w, n = (info.id, info.num_workers) if info is not None else (0, 1)
        stride = n * self.world
        i = self.start + self.rank * n + w
        while True:
            yield self.sampler.sample(i)
            i += stride
