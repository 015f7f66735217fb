"""The Avat3r training loop (paper Sec. 4.1): Adam, bf16 autocast on GPU, gradient clipping, 4 input + 8
supervision views per sample, checkpoints with exact resume, tensorboard logs, DDP over 1..N GPUs.

    python -m avat3r.train --run full --preset small --out runs/small --max-minutes 8
    torchrun --nproc_per_node=8 -m avat3r.train --named-run full --preset paper --out runs/paper
    avat3r train ...            (the same arguments; ``train_main(argv)``)

Determinism: the model is initialised from ``seed`` on every rank; the samples of step s are a function of
(seed, s, rank) only (``distributed.sample_index``); the RNG states go into every checkpoint. Resuming therefore
continues with the same samples and the same losses as an uninterrupted run (bit-exactly on CPU with the
``exact`` checkpoint format; on GPU up to the non-determinism of atomics in the rasteriser's backward pass).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..data.batch import Batch, collate, render_batch
from ..errors import Avat3rError, InputError
from .checkpoint import checkpoint_size, latest_checkpoint, load_checkpoint, read_meta, save_checkpoint
from .config import RUNS, TrainConfig, parse_overrides
from .distributed import DistInfo, all_reduce_mean, barrier, broadcast_bool, cleanup, init_distributed, sample_index
from .losses import Objective, ObjectiveConfig
from .priors import check_run_prior

__all__ = ["Trainer", "train_main", "seed_everything", "build_dataset"]

log = logging.getLogger("avat3r.train")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ---- data -------------------------------------------------------------------------------------------------
def build_dataset(cfg: TrainConfig, split: str = "train", input_size: int | None = None, length: int = 1_000_000,
                  device: torch.device | str | None = None, deferred: bool = False, cached_prior: bool = True):
    """The dataset a run trains/evaluates on: SynthHeads (procedural, avat3r.data.sampler) by default.

    Input views at ``input_size`` (default: the model preset's), supervision views at ``supervision_size``
    (default 667/512 of that, as in the paper). ``cfg.data_options`` go to the sampler's config (e.g.
    ``{"device": "cuda"}`` to generate samples on the GPU, ``{"prior": "oracle"}``). Given ``device`` (the
    training device) and no such option, samples are rendered there; with ``deferred`` (the trainer) and DataLoader
    workers, SynthHeads items are plans posed on the CPU that the trainer renders on the device (``realize``).
    A prior the sampler cannot compute (``cfg.data_prior()``, e.g. "dust3r") is read from ``cfg.prior_cache``
    (``avat3r.train.priors``; ``cached_prior=False``: the samples without those maps, to fill the cache)."""
    size = input_size or cfg.input_size or cfg.model_config().image_size
    sup = cfg.supervision_size or int(round(size * 667 / 512))
    opts = dict(cfg.data_options)
    from ..priors.registry import get_spec

    prior = get_spec(cfg.data_prior())
    opts.setdefault("prior", prior.name if prior.from_render else "none")
    if cfg.lambda_expression > 0 and split == "train" and cfg.data == "synthheads":
        opts.setdefault("expression_region", True)  # the loss's weights (the evaluation does not need them)
    opts.setdefault("seed", cfg.seed)
    if device is not None and torch.device(device).type == "cuda" and cfg.data == "synthheads":
        # pose heads on the CPU in DataLoader workers (launch-bound on a GPU), render on the GPU
        opts.setdefault("device", str(device))
        if deferred and cfg.num_workers != 0:
            opts.setdefault("plan_device", "cpu")
    common = dict(split=split, num_inputs=cfg.num_inputs, num_targets=cfg.num_supervision, input_size=size,
                  target_size=sup, consistent_inputs=cfg.consistent_inputs)
    if not prior.from_render and cached_prior and cfg.data != "synthheads":
        raise InputError(f"the {prior.name!r} prior cache is implemented for SynthHeads data only")
    if cfg.data == "synthheads":
        from ..data.sampler import SynthHeadsDataset

        ds = SynthHeadsDataset(length=opts.pop("length", length), **common, **opts)
        if prior.from_render or not cached_prior:
            return ds
        from .priors import CachedPriorDataset, open_cache

        return CachedPriorDataset(ds, open_cache(cfg.prior_cache, prior.name))
    try:
        from ..data.ava256 import Ava256Dataset  # the data helper's Ava-256 loader
    except ImportError as e:
        raise InputError("data='ava256': no Ava-256 loader in this install (avat3r.data.ava256)") from e
    if not cfg.data_root:
        raise InputError("data='ava256' needs --data-root pointing at the Ava-256 folder (m--*--GHS/...)")
    return Ava256Dataset(cfg.data_root, length=opts.pop("length", length), **common, **opts)


def resolve_workers(cfg: TrainConfig, device) -> int:
    """cfg.num_workers; -1 (auto) = 2 on CPU, and on CUDA the CPU cores of this process's share (cores / local
    ranks, minus 2 for the training process) up to 16: SynthHeads heads are posed in the workers."""
    if cfg.num_workers >= 0:
        return cfg.num_workers
    if torch.device(device).type != "cuda":
        return 2
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 2
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return int(max(1, min(16, cores // max(1, local) - 2)))


def expression_space_overrides(dataset) -> dict[str, Any]:
    """ModelConfig fields that make the model's expression code that of the dataset."""
    names = getattr(dataset, "expression_names", None)
    presets = getattr(dataset, "expression_presets", None)
    if names is None and type(getattr(dataset, "dataset", dataset)).__module__.startswith("avat3r.data."):
        from ..data.synthheads import EXPRESSION_NAMES, EXPRESSION_PRESETS

        names, presets = EXPRESSION_NAMES, EXPRESSION_PRESETS
    if names is None:
        dim = getattr(dataset, "expression_dim", None)
        return {"expression_dim": int(dim)} if dim else {}
    out: dict[str, Any] = {"expression_dim": len(names), "expression_names": list(names)}
    if presets:
        out["expression_presets"] = {k: [float(x) for x in np.asarray(v).reshape(-1)] for k, v in presets.items()}
    return out


class _StepItems(torch.utils.data.Dataset):
    """Item k -> the sample of (step = start + k // B, i = k % B) of this rank (see sample_index)."""

    def __init__(self, dataset, start: int, stop: int, batch: int, info: DistInfo, seed: int):
        self.dataset, self.start, self.stop, self.batch, self.info, self.seed = dataset, start, stop, batch, info, seed

    def __len__(self) -> int:
        return max(0, self.stop - self.start) * self.batch

    def __getitem__(self, k: int):
        step, i = self.start + k // self.batch, k % self.batch
        idx = sample_index(step, self.info.rank, i, self.batch, self.info.world_size, len(self.dataset), self.seed)
        return self.dataset[idx]


def _as_list(items: list) -> list:
    return items


# ---- trainer ----------------------------------------------------------------------------------------------
class Trainer:
    """Owns model, optimiser, objective and data of one run. ``Trainer(cfg).fit()``.

    dataset: a map-style dataset of training samples (see ``batch.collate``); built from cfg when None.
    resume: a checkpoint / run folder, "auto" (newest checkpoint in cfg.out_dir, if any) or None."""

    def __init__(self, cfg: TrainConfig, *, dataset=None, resume: str | os.PathLike | None = None,
                 device: str = "auto", lpips=None, progress: bool = True, tensorboard: bool = True) -> None:
        self.cfg = cfg
        self.info = init_distributed(device)
        self.device = self.info.device
        self.out = Path(cfg.out_dir)
        self.progress = progress and self.info.is_main
        self.dataset = dataset if dataset is not None else build_dataset(cfg, "train", device=self.device, deferred=True)
        seed_everything(cfg.seed)  # identical initial weights on every rank
        from ..model import Avat3rModel

        self._rewarm_from: int | None = None
        self.step = 0
        if cfg.init_from:  # continue from exported weights: their config, fresh optimiser
            self.net = Avat3rModel.from_pretrained(cfg.init_from).to(self.device)
            self.model_config = self.net.config
            tj = Path(cfg.init_from) / "training.json"
            if tj.is_file():
                self.step = int(json.loads(tj.read_text()).get("step") or 0)
            self._rewarm_from = self.step
        else:
            self.model_config = cfg.model_config(**expression_space_overrides(self.dataset))
            self.net = Avat3rModel(self.model_config).to(self.device)
        check_run_prior(cfg, self.dataset, self.model_config)  # the checkpoint records the data's prior
        self.net.gradient_checkpointing = cfg.gradient_checkpointing
        if cfg.compile and hasattr(self.net, "compile_parts"):
            self.net.compile_parts()
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=cfg.lr, betas=tuple(cfg.betas),
                                          weight_decay=cfg.weight_decay)
        self.objective = Objective(
            ObjectiveConfig(cfg.lambda_l1, cfg.lambda_ssim, cfg.lambda_lpips, cfg.lpips_start, cfg.lpips_net, cfg.lpips_weights),
            lpips=lpips,
        ).to(self.device)
        self.history: list[dict[str, float]] = []
        self._pending: list[tuple[int, torch.Tensor]] = []
        self._term_names: list[str] | None = None
        seed_everything(cfg.seed + 1 + self.info.rank)  # per-rank streams from here on (e.g. worker seeds)
        ckpt = None
        if resume == "auto":
            ckpt = latest_checkpoint(self.out) if self.out.exists() else None
        elif resume:
            ckpt = latest_checkpoint(resume)
            if ckpt is None:
                raise InputError(f"--resume {resume}: no checkpoint found there (expected a step_* folder or a run folder)")
        if ckpt is not None:
            meta = load_checkpoint(ckpt, self.net, self.optimizer, rank=self.info.rank)
            self.step = int(meta["step"])
            self.resumed_from = str(ckpt)
            self._rewarm_from = None if meta["optimizer_restored"] else self.step
            if self.info.is_main:
                log.info("resumed from %s at step %d (optimiser state: %s, rng: %s)", ckpt, self.step,
                         meta["optimizer_restored"], meta["rng_restored"])
        else:
            self.resumed_from = None
        self.model = self.net
        if self.info.distributed:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = DDP(self.net, device_ids=ids)
        self.amp = cfg.precision == "bf16" or (cfg.precision == "auto" and self.device.type == "cuda")
        self.writer = None
        if tensorboard and self.info.is_main:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(self.out / "tb"), purge_step=self.step or None)
            except ImportError:
                log.warning("tensorboard is not installed (pip install 'avat3r[train]'): no tensorboard logs")
        if self.info.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            log.info(
                "run %s: %s preset, %.1f M parameters, %d process(es) x batch %d, %s, lr %g, LPIPS %s",
                cfg.run, cfg.model_preset, self.net.num_parameters() / 1e6, self.info.world_size, cfg.batch_size,
                "bf16 autocast" if self.amp else "fp32", cfg.lr,
                f"on from step {cfg.lpips_start}" if self.objective.lpips_available and cfg.lambda_lpips > 0
                else "OFF (no weights found; see docs/TRAINING.md)" if cfg.lambda_lpips > 0 else "off (lambda 0)",
            )

    # ---- one step -----------------------------------------------------------------------------------
    def lr_at(self, step: int) -> float:
        """Linear warm-up from step 0, and again after starting without Adam state (``_rewarm_from``)."""
        w = self.cfg.warmup_steps
        f = min(1.0, (step + 1) / w) if w > 0 else 1.0
        if self._rewarm_from is not None and self.cfg.rewarm_steps > 0:
            f *= min(1.0, (step - self._rewarm_from + 1) / self.cfg.rewarm_steps)
        return self.cfg.lr * f

    def views_at(self, step: int, num_views: int) -> int:
        """Input views kept at ``step`` (TrainConfig.view_dropout): all of them, or k in 1..V-1 drawn from
        (seed, step) alone, so that a resumed run and every DDP rank draw the same k."""
        p = self.cfg.view_dropout
        if p <= 0 or num_views < 2:
            return num_views
        rng = np.random.default_rng([self.cfg.seed, int(step), 0x71E5])
        return int(rng.integers(1, num_views)) if rng.random() < p else num_views

    def _hull_config(self):
        """The data's visual-hull settings (a SynthHeads dataset's), else the defaults."""
        sampler = getattr(self.dataset, "sampler", None)
        return getattr(getattr(sampler, "config", None), "hull", None)

    def train_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One optimisation step on this rank's part of the global batch. Returns detached loss terms."""
        self.model.train()
        batch = batch.to(self.device, non_blocking=True)
        keep = self.views_at(self.step, batch.images.shape[1])
        if keep < batch.images.shape[1]:
            batch = batch.with_views(keep, self.cfg.data_prior(), self._hull_config())
        if not self.cfg.use_prior:
            batch = batch.without_prior()
        for g in self.optimizer.param_groups:
            g["lr"] = self.lr_at(self.step)
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            pred = render_batch(self.model, batch, background=self.cfg.background)  # [B, T, 3, H, W]
        weight = region = None
        if self.cfg.lambda_expression > 0:
            if batch.target_regions is None:
                raise InputError("lambda_expression > 0 needs samples with target_expression_region: SynthHeads "
                                 "renders them with data_options.expression_region=true (set by build_dataset); "
                                 "a sample pool or other data must provide them, or set lambda_expression=0")
            if self.cfg.expression_weighting == "mean":
                region = batch.target_regions.flatten(0, 1)
            else:
                weight = 1.0 + self.cfg.lambda_expression * batch.target_regions.flatten(0, 1)
        loss, terms = self.objective(pred.flatten(0, 1), batch.target_images.flatten(0, 1), self.step, weight,
                                     region, self.cfg.lambda_expression)
        if self.cfg.view_dropout > 0:
            terms["views"] = torch.tensor(float(keep), device=loss.device)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip > 0:
            terms["grad_norm"] = torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.cfg.grad_clip).detach()
        self.optimizer.step()
        self.step += 1
        self._last = (batch, pred.detach())
        return terms

    # ---- the loop ------------------------------------------------------------------------------------
    def _data_engine(self):
        """The batched SynthHeads engine (``avat3r.data.engine``) when ``cfg.data_engine`` asks for it: "auto" = on
        for SynthHeads on CUDA; "on" = also on a CPU (tests). None: the per-sample DataLoader path."""
        mode = self.cfg.data_engine
        from ..data.sampler import SynthHeadsDataset

        is_synth = isinstance(self.dataset, SynthHeadsDataset)
        if mode == "off" or (mode == "auto" and not (is_synth and self.device.type == "cuda")):
            return None
        if not is_synth:
            raise InputError("data_engine='on' needs the SynthHeads dataset (data='synthheads')")
        if getattr(self, "_engine", None) is None:
            from ..data.engine import DataEngine, EngineConfig

            sampler = self.dataset.sampler
            if sampler.device != self.device:
                sampler.config.device = str(self.device)
                sampler.device = self.device
            self._engine = DataEngine(sampler, EngineConfig(**(self.dataset.engine_options or {})))
            if self.info.is_main:
                log.info("data: SynthHeads engine on %s (pool %d identities, %d steps per chunk)", self.device,
                         self._engine.config.pool_size, self._engine.config.chunk_steps)
        return self._engine

    def _loader(self, start: int, stop: int):
        """Batches of steps start..stop-1. A ``deferred`` dataset's workers return plans, rendered here on the device;
        with the data engine, whole chunks of steps are built on the device (see ``avat3r.data.engine``)."""
        engine = self._data_engine()
        if engine is not None:
            B, W, R, n, seed = self.cfg.batch_size, self.info.world_size, self.info.rank, len(self.dataset), self.cfg.seed

            def items_of_step(step: int) -> list[tuple[int, int]]:  # (dataset index, training position)
                return [(sample_index(step, R, i, B, W, n, seed), step * W * B + R * B + i) for i in range(B)]

            background = self.device.type == "cuda" and self.cfg.data_engine_background
            return (collate(samples) for samples in engine.iterate(items_of_step, start, stop, background=background))
        items = _StepItems(self.dataset, start, stop, self.cfg.batch_size, self.info, self.cfg.seed)
        nw = resolve_workers(self.cfg, self.device)
        deferred = bool(getattr(self.dataset, "deferred", False))
        loader = torch.utils.data.DataLoader(
            items, batch_size=self.cfg.batch_size, shuffle=False, num_workers=nw,
            collate_fn=_as_list if deferred else collate,
            pin_memory=self.device.type == "cuda" and nw > 0 and not deferred, persistent_workers=False,
            prefetch_factor=4 if nw > 0 else None,
            generator=torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + start),
            worker_init_fn=_worker_init,
        )
        if not deferred:
            return loader
        return (collate([self.dataset.realize(p, self.device) for p in plans]) for plans in loader)

    def _flush(self) -> None:
        """All-reduce the pending per-step terms (one collective for many steps) into history/logs."""
        if not self._pending:
            return
        steps = [s for s, _ in self._pending]
        vals = all_reduce_mean(torch.stack([t for _, t in self._pending]).float()).cpu().tolist()
        self._pending.clear()
        for s, row in zip(steps, vals):
            rec = {"step": s, **dict(zip(self._term_names, row))}
            self.history.append(rec)
        if self.info.is_main:
            rec = self.history[-1]
            if self.writer is not None:
                for k, v in rec.items():
                    if k != "step":
                        self.writer.add_scalar(f"train/{k}", v, rec["step"])
                self.writer.add_scalar("train/lr", self.lr_at(rec["step"] - 1), rec["step"])
            log.debug("step %d %s", rec["step"], {k: round(v, 5) for k, v in rec.items() if k != "step"})

    def _log_images(self) -> None:
        if self.writer is None or not hasattr(self, "_last"):
            return
        batch, pred = self._last
        grid = image_grid(batch.images[0], pred[0], batch.target_images[0])
        self.writer.add_image("train/inputs_pred_gt", grid, self.step, dataformats="HWC")

    def save(self) -> Path:
        path = save_checkpoint(
            self.out, step=self.step, model=self.net, optimizer=self.optimizer, train_config=self.cfg.to_dict(),
            model_config=self.model_config.to_dict(), fmt=self.cfg.checkpoint_format, shard_mib=self.cfg.shard_mib,
            rank=self.info.rank, world_size=self.info.world_size, barrier=barrier if self.info.distributed else None,
            keep=self.cfg.keep_checkpoints, extra={"last": self.history[-1] if self.history else {}},
        )
        if self.info.is_main:
            log.info("checkpoint %s (%.1f MiB)", path, checkpoint_size(path) / 2**20)
        return path

    def fit(self, max_steps: int | None = None, save_final: bool = True) -> dict[str, Any]:
        """Train until ``max_steps`` (default cfg.max_steps) or the wall-clock budget; returns a summary.

        A checkpoint is written every ``ckpt_every`` steps and (unless save_final=False) at the end."""
        cfg = self.cfg
        stop = min(max_steps or cfg.max_steps, cfg.max_steps)
        start, t0 = self.step, time.time()
        budget = cfg.max_minutes * 60 if cfg.max_minutes else math.inf
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=stop, initial=start, unit="it", dynamic_ncols=True, desc=cfg.run, smoothing=0.05)
        last_ckpt = None
        if start < stop:
            for batch in self._loader(start, stop):
                terms = self.train_step(batch)
                if self._term_names is None:
                    self._term_names = list(terms)
                self._pending.append((self.step, torch.stack([terms[k].float() for k in self._term_names])))
                if self.step % cfg.log_every == 0 or self.step == stop:
                    self._flush()
                    if bar is not None:
                        rec = self.history[-1]
                        bar.set_postfix(loss=f"{rec['loss']:.4f}", l1=f"{rec['l1']:.4f}", ssim=f"{rec['ssim']:.3f}")
                if self.info.is_main and cfg.image_every and self.step % cfg.image_every == 0:
                    self._log_images()
                if bar is not None:
                    bar.update(1)
                if cfg.ckpt_every and self.step % cfg.ckpt_every == 0:
                    self._flush()
                    last_ckpt = self.save()
                out_of_time = broadcast_bool(time.time() - t0 > budget, self.device) if budget < math.inf else False
                if out_of_time:
                    if self.info.is_main:
                        log.info("time budget of %.1f min spent at step %d: saving and stopping", cfg.max_minutes, self.step)
                    break
                if self.step >= stop:
                    break
        self._flush()
        if bar is not None:
            bar.close()
        if save_final and (last_ckpt is None or int(last_ckpt.name.split("_")[-1]) != self.step):
            last_ckpt = self.save()
        elapsed = time.time() - t0
        done = self.step - start
        summary = {
            "run": cfg.run, "steps": self.step, "steps_this_session": done, "seconds": elapsed,
            "it_per_s": done / elapsed if elapsed > 0 else 0.0, "world_size": self.info.world_size,
            "checkpoint": str(last_ckpt) if last_ckpt else None,
            "checkpoint_mib": checkpoint_size(last_ckpt) / 2**20 if (last_ckpt and self.info.is_main) else None,
            "last": self.history[-1] if self.history else {},
        }
        if self.writer is not None:
            self.writer.flush()
        if self.info.is_main:
            (self.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
        return summary

    def close(self) -> None:
        if getattr(self, "_engine", None) is not None:
            self._engine.close()
            self._engine = None
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _worker_init(worker_id: int) -> None:
    torch.set_num_threads(1)  # many workers, one core each
    s = torch.initial_seed() % 2**32
    np.random.seed(s)
    random.seed(s)


def image_grid(inputs: torch.Tensor, pred: torch.Tensor, target: torch.Tensor, height: int = 128) -> np.ndarray:
    """Rows: input views [V, 3, H, W]; renderings [T, 3, Ht, Wt]; ground truth -> uint8 [rows*h, cols*h, 3]."""
    import torch.nn.functional as F

    rows = []
    cols = max(inputs.shape[0], pred.shape[0])
    for imgs in (inputs, pred, target):
        x = F.interpolate(imgs.detach().float().cpu(), size=(height, height), mode="bilinear", align_corners=False)
        x = torch.cat([x, torch.zeros(cols - x.shape[0], 3, height, height)]) if x.shape[0] < cols else x
        rows.append(torch.cat(list(x), dim=2))  # [3, h, cols*h]
    g = torch.cat(rows, dim=1).clamp(0, 1).permute(1, 2, 0)
    return (g.numpy() * 255 + 0.5).astype(np.uint8)


# ---- command line -----------------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="avat3r train",
        description="Train Avat3r (paper Sec. 4.1). Run under torchrun for several GPUs / nodes: "
                    "torchrun --nproc_per_node=N -m avat3r.train ...",
    )
    p.add_argument("--run", "--named-run", dest="run", default=None, choices=sorted(RUNS),
                   help="named run configuration (ablations); default full. Under torchrun write --named-run "
                        "(torchrun takes --run as its own --run-path)")
    p.add_argument("--preset", dest="model_preset", default=None, choices=["paper", "small", "tiny"], help="model preset (default small)")
    p.add_argument("--out", dest="out_dir", default=None, help="run folder (checkpoints, tensorboard, summary.json); default runs/<run>")
    p.add_argument("--data", default=None, choices=["synthheads", "ava256"])
    p.add_argument("--data-root", default=None)
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--max-minutes", type=float, default=None, help="wall-clock budget; saves a checkpoint and stops")
    p.add_argument("--batch-size", type=int, default=None, help="samples per GPU (global batch = this x #GPUs)")
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--grad-clip", type=float, default=None)
    p.add_argument("--precision", default=None, choices=["auto", "bf16", "fp32"])
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--input-size", type=int, default=None)
    p.add_argument("--supervision-size", type=int, default=None)
    p.add_argument("--num-workers", type=int, default=None)
    p.add_argument("--lpips-start", type=int, default=None)
    p.add_argument("--lpips-weights", default=None, help="folder with LPIPS weights (see docs/TRAINING.md)")
    p.add_argument("--log-every", type=int, default=None)
    p.add_argument("--image-every", type=int, default=None)
    p.add_argument("--ckpt-every", type=int, default=None)
    p.add_argument("--checkpoint-format", default=None, choices=["exact", "compact", "weights"],
                   help="exact: bit-exact resume; compact: ~1.25x model size; weights: fp32 weights only (Adam restarts)")
    p.add_argument("--init-from", default=None, metavar="WEIGHTS",
                   help="start from exported weights (config.json + model.safetensors): fresh Adam, LR re-warm-up")
    p.add_argument("--gradient-checkpointing", action="store_true", default=None)
    p.add_argument("--compile", action="store_true", default=None, help="torch.compile the network's blocks (GPU)")
    p.add_argument("--set", nargs="*", action="extend", default=[], metavar="KEY=VALUE",
                   help="override any TrainConfig field, e.g. --set model_overrides.pos_skip=false warmup_steps=1000")
    p.add_argument("--resume", default=None, help="checkpoint or run folder, or 'auto' (newest in --out)")
    p.add_argument("--device", default="auto")
    p.add_argument("--export", default=None, metavar="DIR",
                   help="after training, write DIR/config.json + DIR/model.safetensors (fp16) from the final weights")
    p.add_argument("--fill-prior-cache", type=int, default=None, metavar="N",
                   help="compute the position maps of training samples 0..N-1 into --set prior_cache=DIR with the "
                        "run's prior (e.g. --set prior=dust3r) once, then exit (docs/TRAINING.md)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """TrainConfig from the run name (or a resumed checkpoint's config) + the flags that were given."""
    flags = {k: v for k, v in vars(args).items()
             if v is not None and k not in ("run", "set", "resume", "device", "export", "quiet", "fill_prior_cache")}
    flags.update(parse_overrides(args.set))
    base: dict[str, Any] | None = None
    if args.resume and args.resume != "auto":
        ckpt = latest_checkpoint(args.resume)
        if ckpt is not None:
            base = read_meta(ckpt)["train_config"]
    elif args.resume == "auto" and args.out_dir:
        ckpt = latest_checkpoint(args.out_dir) if Path(args.out_dir).exists() else None
        if ckpt is not None:
            base = read_meta(ckpt)["train_config"]
    if base is not None:
        if args.run and args.run != base.get("run"):
            raise InputError(f"--run {args.run} differs from the resumed checkpoint's run {base.get('run')!r}")
        mo = dict(base.get("model_overrides", {}))
        mo.update(flags.pop("model_overrides", {}) or {})
        base.update(flags)
        base["model_overrides"] = mo
        return TrainConfig.from_dict(base)
    name = args.run or "full"
    return TrainConfig.from_run(name, **flags)


def train_main(argv: Sequence[str] | None = None) -> int:
    """``avat3r train`` / ``python -m avat3r.train``: returns a process exit code."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = config_from_args(args)
        if args.fill_prior_cache:
            return _fill_prior_cache(cfg, args.fill_prior_cache, args.device, progress=not args.quiet)
        trainer = Trainer(cfg, resume=args.resume, device=args.device, progress=not args.quiet)
    except Avat3rError as e:
        print(f"avat3r train: error: {e}", file=sys.stderr)
        return 2
    try:
        summary = trainer.fit()
        if trainer.info.is_main:
            print(json.dumps({k: v for k, v in summary.items() if k != "last"} | {"last": summary["last"]}, indent=1))
            if args.export:
                from .export import export_weights

                export_weights(trainer.net, args.export, train_config=cfg, summary=summary)
                print(f"exported fp16 weights to {args.export}")
    finally:
        trainer.close()
        cleanup()
    return 0


def _fill_prior_cache(cfg: TrainConfig, count: int, device: str, progress: bool) -> int:
    from .priors import fill_prior_cache, open_cache

    if not cfg.prior_cache:
        raise InputError("--fill-prior-cache needs the cache folder: --set prior_cache=DIR (and the prior, e.g. prior=dust3r)")
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else torch.device(device)
    ds = build_dataset(cfg, "train", length=count, device=dev, cached_prior=False)
    n = fill_prior_cache(ds, open_cache(cfg.prior_cache, cfg.data_prior()), device=dev, progress=progress)
    print(f"prior cache {cfg.prior_cache}: {n} samples computed ({count - n} were there)")
    return 0
