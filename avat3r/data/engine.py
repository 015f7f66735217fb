"""The SynthHeads data engine: whole training batches built on the device as batches (issue #15).

The per-sample path (``SynthHeadsSampler``) builds a head per sample, poses it with ~600 small kernels and
renders view by view: launch-bound on a GPU. The engine makes the same samples in bulk:

* **a pool of identities** (``pool_size`` rigs) lives on the device (``PoseBank``) and is reused with many
  expressions and views, as the paper reuses Ava-256's ~244 people. Each slot of the pool turns over after about
  ``identity_uses`` samples (staggered, so one identity is replaced at a time); new rigs are built by CPU worker
  processes ahead of need (the only CPU work that helps: ~1 s per rig on one core).
* **posing** of every view of every sample of a chunk (``chunk_steps`` training steps) in one batched pass
  (``batchpose``: ~600 launches whatever the batch size).
* **rendering**: all input views of the chunk in one gsplat call and all supervision views in another (gsplat's
  batch dimensions; the CPU renderer loops).
* the augmentations (``augment``) and the visual-hull prior (``visual_hull_maps_batched``) batched over the chunk.

Determinism: the sample at training position g with dataset index i is a function of (seed, i, g) only; its
identity comes from the pool slot and epoch of g, everything else from i exactly as ``SynthHeadsSampler.draw``.
So ``engine.make([(i, g)])`` equals ``sampler.realize(sampler.plan(i, identity=engine.identity_at(g)))``
(tensor for tensor on a CPU; on a GPU up to float ordering inside gsplat's batched kernels). Chunks are aligned
to absolute step numbers, so a run resumed at any step gets the very batches of an uninterrupted run.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch

from ..cameras import Cameras
from ..errors import InputError
from ..priors.registry import render_maps
from ..priors.visual_hull import visual_hull_maps_batched
from .augment import relight
from .batchpose import PoseBank, rig_pose_data, row_gaussians
from .sampler import SamplerConfig, SynthHeadsSampler, expression_region_mask, finish_inputs

__all__ = ["EngineConfig", "DataEngine"]

log = logging.getLogger("avat3r.data.engine")


@dataclass
class EngineConfig:
    pool_size: int = 32          # identities resident on the device
    identity_uses: int = 256     # samples per identity over its life in the pool (then its slot turns over)
    chunk_steps: int = 8         # training steps built per call (aligned to absolute step numbers)
    workers: int = -1            # CPU processes building rigs and draws; -1 = auto (cores - 2, <= 16); 0 = in-process
    lookahead: int = 2           # chunks whose new identities are built ahead

    def validate(self) -> None:
        for f in ("pool_size", "identity_uses", "chunk_steps", "lookahead"):
            if getattr(self, f) < 1:
                raise InputError(f"EngineConfig.{f} must be >= 1, got {getattr(self, f)}")


# ---- worker processes ----------------------------------------------------------------------------------------
_W_SAMPLER: SynthHeadsSampler | None = None


def _worker_init(cfg: SamplerConfig) -> None:
    global _W_SAMPLER
    torch.set_num_threads(1)
    # These processes only draw dome cameras (valid by construction) and build rigs: skip Cameras' validation
    # here, which is over half of a draw's CPU time (values are untouched; the main process still validates).
    Cameras.validate = lambda self, where="cameras": None
    cfg = SamplerConfig(**{k: getattr(cfg, k) for k in cfg.__dataclass_fields__})
    cfg.device = "cpu"
    _W_SAMPLER = SynthHeadsSampler(cfg)


def _build_rig(identity: int, wide: bool = False) -> dict:
    from .synthheads import HeadRig, sample_identity

    return rig_pose_data(HeadRig(sample_identity(int(identity), wide=wide), "cpu"))


def _draws(items: list[tuple[int, int]]) -> list[dict]:
    return [_W_SAMPLER.draw(i, ident) for i, ident in items]


def _to_device(x: torch.Tensor, dev: torch.device) -> torch.Tensor:
    """Host tensor -> device without waiting for the device's queue (pinned staging on CUDA)."""
    if dev.type != "cuda":
        return x.to(dev)
    return x.pin_memory().to(dev, non_blocking=True)


class _Inline:
    """A stand-in for the process pool: runs jobs at once in this process (workers=0, tests, CPU)."""

    def __init__(self, sampler: SynthHeadsSampler):
        self.sampler = sampler

    def submit(self, fn, *args) -> Future:
        f: Future = Future()
        if fn is _draws:
            f.set_result([self.sampler.draw(i, ident) for i, ident in args[0]])
        else:
            from .synthheads import get_rig

            f.set_result(rig_pose_data(get_rig(self.sampler.identity(args[0]), "cpu")))
        return f

    def shutdown(self, wait=True, cancel_futures=False) -> None:
        pass


class DataEngine:
    """Batched SynthHeads samples on ``sampler.config.device`` (see the module docstring).

    ``make(items)`` -> sample dicts (the sampler's format) for items [(dataset index, training position)];
    ``iterate(items_of_step, start, stop)`` -> one list of samples per training step, chunk by chunk."""

    def __init__(self, sampler: SynthHeadsSampler, config: EngineConfig | None = None):
        self.sampler = sampler
        self.scfg = sampler.config
        self.config = cfg = config or EngineConfig()
        cfg.validate()
        from .sampler import PRIORS

        if self.scfg.prior not in PRIORS:
            raise InputError(f"engine: the {self.scfg.prior!r} prior is not computed from renders; use {PRIORS}")
        self.device = torch.device(self.scfg.device)
        self.bank = PoseBank(2 * cfg.pool_size, self.device)
        self._where: dict[tuple, int] = {}       # (slot, epoch) -> bank slot
        self._pending: dict[tuple, Future] = {}
        self._pool = None
        self.timings: dict[str, float] = {}
        self.profile = False                     # per-stage timings (synchronises the device between stages)
        self._gsplat_batch_failed = False

    # ---- identities ----------------------------------------------------------------------------------------
    def identity_key(self, position: int) -> tuple[int, int, int]:
        """(pool slot, epoch, identity seed) of the sample at training position ``position``."""
        P, uses = self.config.pool_size, self.config.identity_uses
        L = P * uses
        slot = int(np.random.default_rng([self.scfg.seed, int(position), 0x5107]).integers(P))
        epoch = (int(position) + slot * L // P) // L
        seeds = self.sampler.seeds
        pick = np.random.default_rng([self.scfg.seed, slot, epoch, 0x1D]).integers(len(seeds))
        return slot, epoch, int(seeds[int(pick)])

    def identity_at(self, position: int) -> int:
        return self.identity_key(position)[2]

    def _executor(self):
        if self._pool is None:
            n = self.config.workers
            if n < 0:
                try:
                    cores = len(os.sched_getaffinity(0))
                except AttributeError:
                    cores = os.cpu_count() or 2
                local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))  # ranks sharing this host
                n = 0 if self.device.type == "cpu" else max(1, min(16, cores // local - 2))
            if n == 0:
                self._pool = _Inline(self.sampler)
            else:
                import multiprocessing as mp

                self._pool = ProcessPoolExecutor(n, mp_context=mp.get_context("spawn"), initializer=_worker_init,
                                                 initargs=(self.scfg,))
        return self._pool

    def _submit_draws(self, jobs: list[tuple[int, int]]):
        """The draws of [(index, identity)] spread over the workers -> an object with .result() (the list)."""
        ex = self._executor()
        n = max(1, min(len(jobs), getattr(ex, "_max_workers", 1)))
        parts = [ex.submit(_draws, jobs[k::n]) for k in range(n)]

        class _Joined:
            def result(self_inner):
                res = [p.result() for p in parts]
                out = [None] * len(jobs)
                for k, r in enumerate(res):
                    out[k::n] = r
                return out

        return _Joined()

    def _request(self, keys) -> None:
        """Start building the rigs of ``keys`` that are neither resident nor on their way."""
        for k in keys:
            if k not in self._where and k not in self._pending:
                self._pending[k] = self._executor().submit(_build_rig, k[2], self.sampler.widening)

    def _load(self, keys: list[tuple]) -> dict[tuple, int]:
        """Make ``keys`` resident (evicting keys of older epochs first) -> key: bank slot."""
        self._request(keys)
        need = set(keys)
        for k in dict.fromkeys(keys):
            if k in self._where:
                continue
            data = self._pending.pop(k).result()
            free = [s for s in range(self.bank.cap) if s not in self._where.values()]
            if not free:
                old = sorted((kk for kk in self._where if kk not in need), key=lambda kk: (kk[1], kk[0]))
                if not old:
                    raise InputError(f"engine: a chunk needs more than {self.bank.cap} identities; raise pool_size")
                free = [self._where.pop(old[0])]
            self.bank.put(free[0], data)
            self._where[k] = free[0]
        return {k: self._where[k] for k in keys}

    # ---- batches -------------------------------------------------------------------------------------------
    def make(self, items: list[tuple[int, int]], draws: list[dict] | None = None) -> list[dict]:
        """Samples for items [(dataset index, training position)] (the format of ``SynthHeadsSampler.realize``)."""
        import time

        cfg, dev = self.scfg, self.device
        keys = [self.identity_key(g) for _, g in items]
        t = {"t": time.perf_counter()}

        def lap(name):
            if self.profile:
                if dev.type == "cuda":
                    torch.cuda.synchronize(dev)
                now = time.perf_counter()
                self.timings[name] = self.timings.get(name, 0.0) + now - t["t"]
                t["t"] = now

        if draws is None:
            draws = self._submit_draws([(i, k[2]) for (i, _), k in zip(items, keys)]).result()
        where = self._load(keys)
        lap("draws_and_identities")
        V, B = cfg.num_inputs, len(items)
        R = V + 1 + int(cfg.expression_region)  # rows per sample: the inputs, the target (, the target at neutral)
        slots, zs = [], []
        for d, k in zip(draws, keys):
            z_in = np.repeat(d["z_in"][:1], V, 0) if cfg.consistent_inputs else d["z_in"]
            zs.append(np.concatenate([z_in, d["z_t"][None]] + [np.zeros_like(d["z_t"])[None]] * (R - V - 1)))
            slots += [where[k]] * R
        z = _to_device(torch.as_tensor(np.concatenate(zs)), dev)
        with torch.no_grad():
            g, valid = self.bank.pose(slots, z)                      # rows: sample b -> b*R .. (+V = target)
            lap("pose")
            prms = [d.get("augment") for d in draws]
            aug = self.sampler.augmenting
            if aug and cfg.augment.lighting:
                rows = [b for b in range(B) for _ in range(R)]
                g["colors"] = relight(g["colors"], g["quats"], prms, rows, cfg.augment)
            lap("augment_lighting")
            r_in = (torch.arange(B, device=dev)[:, None] * R + torch.arange(V, device=dev)[None]).reshape(-1)
            r_t = torch.arange(B, device=dev) * R + V
            cam_in = Cameras.cat([d["input_cameras"] for d in draws])
            cam_t = Cameras.cat([d["target_cameras"] for d in draws])
            col_in, a_in, dep_in = self._render({k: v[r_in] for k, v in g.items()}, valid[r_in], cam_in, 1)
            lap("render_inputs")
            col_t, a_t, _ = self._render({k: v[r_t] for k, v in g.items()}, valid[r_t], cam_t, cfg.num_targets)
            region = None
            if cfg.expression_region:  # the targets again at the neutral expression, same cameras and light
                col_n = self._render({k: v[r_t + 1] for k, v in g.items()}, valid[r_t + 1], cam_t, cfg.num_targets)[0]
                region = expression_region_mask(col_t.permute(0, 3, 1, 2), col_n.permute(0, 3, 1, 2))
            lap("render_targets")
            cam_in_d = cam_in.to(dev)
            img_in, a_in, cam_in_d = finish_inputs(col_in, a_in, cam_in_d, prms if aug else None, cfg, dev)
            lap("augment_inputs")
            m_all = a_in[..., 0].clamp(0, 1)
            if cfg.prior == "visual_hull":  # all samples' hulls at once
                H, W = m_all.shape[-2:]
                pos_all, conf_all = visual_hull_maps_batched(m_all.reshape(B, V, H, W), cam_in_d, cfg.hull)
            out = []
            for b, d in enumerate(draws):
                sl = slice(b * V, (b + 1) * V)
                cams_b = cam_in_d[list(range(b * V, (b + 1) * V))]
                if cfg.prior == "visual_hull":
                    pos, conf = pos_all[b], conf_all[b]
                else:
                    depth = dep_in[sl, ..., 0] if cfg.prior == "oracle" else None
                    pos, conf = render_maps(cfg.prior, m_all[sl], cams_b, depth, cfg.hull)
                ts = slice(b * cfg.num_targets, (b + 1) * cfg.num_targets)
                out.append({
                    "input_images": img_in[sl].permute(0, 3, 1, 2).contiguous(),
                    "input_masks": a_in[sl].permute(0, 3, 1, 2).contiguous(),
                    "input_cameras": cams_b,
                    "prior_positions": pos.permute(0, 3, 1, 2).contiguous(),
                    "prior_confidence": conf[:, None].contiguous(),
                    "target_images": col_t[ts].permute(0, 3, 1, 2).contiguous(),
                    "target_masks": a_t[ts].permute(0, 3, 1, 2).contiguous(),
                    "target_cameras": d["target_cameras"].to(dev),
                    "target_expression": torch.as_tensor(d["z_t"], device=dev),
                    "input_expressions": torch.as_tensor(d["z_in"], device=dev),
                    "identity_seed": d["identity_seed"],
                    "index": d["index"],
                    "input_camera_ids": torch.as_tensor(d["in_ids"]),
                    "target_camera_ids": torch.as_tensor(d["tg_ids"]),
                })
                if region is not None:
                    out[-1]["target_expression_region"] = region[ts].contiguous()
            lap("prior")
        return out

    def _render(self, g: dict, valid: torch.Tensor, cams: Cameras, per_row: int):
        """Rows r of padded Gaussians, each into its ``per_row`` consecutive cameras -> colour [R*C, H, W, 3],
        alpha and depth [R*C, H, W, 1]: one gsplat call on CUDA, a loop of the torch renderer elsewhere."""
        from ..render.api import _pick_backend

        R = valid.shape[0]
        H, W = cams.image_size
        if _pick_backend(self.scfg.backend, self.device) == "gsplat" and not self._gsplat_batch_failed:
            try:
                from gsplat import rasterization

                f32 = lambda x: x.to(torch.float32)  # noqa: E731
                vm = cams.world_to_cam.to(self.device, torch.float32).reshape(R, per_row, 4, 4)
                Ks = cams.K.to(self.device, torch.float32).reshape(R, per_row, 3, 3)
                out, alpha, _ = rasterization(
                    f32(g["means"]), f32(g["quats"]), f32(g["scales"]), f32(g["opacities"]), f32(g["colors"]), vm, Ks,
                    int(W), int(H), near_plane=0.01, far_plane=1e3, eps2d=0.3, render_mode="RGB+ED",
                    rasterize_mode="classic")
                out, alpha = out.reshape(R * per_row, H, W, 4), alpha.reshape(R * per_row, H, W, 1)
                # as render(): background composited here (black), depth = gsplat's expected depth
                color = out[..., :3] + (1 - alpha) * torch.zeros(R * per_row, 1, 1, 3, device=self.device)
                return color, alpha, out[..., 3:4]
            except (RuntimeError, AssertionError, TypeError) as e:  # keep training: one render() per row instead
                log.warning("engine: gsplat's batched call failed (%s: %s); rendering row by row", type(e).__name__, e)
                self._gsplat_batch_failed = True
        from ..render import render

        cam_d = cams.to(self.device)
        outs = [render(row_gaussians(g, valid, r), cam_d[list(range(r * per_row, (r + 1) * per_row))],
                       backend=self.scfg.backend) for r in range(R)]
        return torch.cat([o.color for o in outs]), torch.cat([o.alpha for o in outs]), torch.cat([o.depth for o in outs])

    def iterate(self, items_of_step: Callable[[int], list[tuple[int, int]]], start: int, stop: int,
                background: bool = False) -> Iterator[list[dict]]:
        """One list of samples per step in [start, stop). Chunks cover steps [c*K, (c+1)*K) (K = chunk_steps)
        whatever ``start`` is; rigs of the next ``lookahead`` chunks and the next chunk's draws are prepared by
        the workers while the device works on the current one.

        background (CUDA): build chunks in a thread on a side CUDA stream, one chunk ahead, so that the data
        kernels fill the gaps of the training step instead of running between steps (same samples either way)."""
        if not (background and self.device.type == "cuda"):
            yield from self._chunks(items_of_step, start, stop)
            return
        import queue
        import threading

        q: queue.Queue = queue.Queue(maxsize=1)
        halt = threading.Event()
        side = torch.cuda.Stream(self.device)

        def produce():
            try:
                torch.cuda.set_device(dev_index)  # a new thread starts on device 0
                with torch.cuda.stream(side):
                    for step_samples in self._chunks(items_of_step, start, stop, per_chunk=True):
                        side.synchronize()
                        while not halt.is_set():
                            try:
                                q.put(("ok", step_samples), timeout=0.2)
                                break
                            except queue.Full:
                                continue
                        if halt.is_set():
                            return
                q.put(("end", None))
            except BaseException as e:  # handed to the consumer
                q.put(("error", e))

        dev_index = self.device.index if self.device.index is not None else torch.cuda.current_device()
        th = threading.Thread(target=produce, name="avat3r-data-engine", daemon=True)
        th.start()
        main = torch.cuda.current_stream(self.device)
        try:
            while True:
                kind, val = q.get()
                if kind == "end":
                    return
                if kind == "error":
                    raise val
                for samples in val:
                    for smp in samples:  # the training stream reads what the side stream allocated
                        for v in smp.values():
                            if isinstance(v, torch.Tensor) and v.is_cuda:
                                v.record_stream(main)
                            elif isinstance(v, Cameras):
                                for t in (v.K, v.world_to_cam, v.width, v.height):
                                    if t.is_cuda:
                                        t.record_stream(main)
                    yield samples
        finally:
            halt.set()
            th.join(timeout=30)

    def _chunks(self, items_of_step, start: int, stop: int, per_chunk: bool = False):
        """Steps' sample lists chunk by chunk (per_chunk: one list of step lists per chunk)."""
        K = self.config.chunk_steps
        c = start // K

        def chunk_items(c):
            steps = range(c * K, (c + 1) * K)
            return steps, [items_of_step(s) for s in steps]

        def submit_draws(items):
            flat = [it for step in items for it in step]
            return self._submit_draws([(i, self.identity_key(g)[2]) for i, g in flat])

        steps, items = chunk_items(c)
        fut = submit_draws(items)
        while c * K < stop:
            nxt = chunk_items(c + 1) if (c + 1) * K < stop else None
            for a in range(1, self.config.lookahead + 1):
                if (c + a) * K < stop:
                    self._request([self.identity_key(g) for step in chunk_items(c + a)[1] for _, g in step])
            nfut = submit_draws(nxt[1]) if nxt is not None else None
            flat = [it for step in items for it in step]
            samples = self.make(flat, fut.result())
            k, ready = 0, []
            for s, step in zip(steps, items):
                n = len(step)
                if start <= s < stop:
                    ready.append(samples[k:k + n])
                k += n
            if per_chunk:
                yield ready
            else:
                yield from ready
            c += 1
            if nxt is None:
                break
            steps, items, fut = nxt[0], nxt[1], nfut

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
