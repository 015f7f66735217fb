"""``avat3r eval`` / ``python -m avat3r.eval``: the command line over ``avat3r.eval.evaluation``.

    avat3r eval --checkpoint weights/ --num-samples 24 --out eval/            # Table 1: model + baselines
    avat3r eval --runs runs/full runs/no_pos_skip runs/no_col_skip ... --out eval/ablations   # Tables 2-3
    avat3r eval --runs ... --same-step        # each run at the largest checkpoint step all of them saved

An entry point (the top stage): it reads training runs and checkpoints (``avat3r.train``'s format and its
TrainConfig, to rebuild the data a model was trained on at the test split); the evaluation library itself does not
depend on the trainer.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Sequence

import torch

from ..errors import Avat3rError, CheckpointError
from ..train.config import TrainConfig
from .evaluation import METHODS, EvalConfig, evaluate
from .tables import ablation_tables, table1, write_tables

__all__ = ["eval_main", "load_for_eval"]


def load_for_eval(path, device="cpu"):
    """(model, train_config dict or None) from a weights folder (config.json + model.safetensors, or a Hub
    repo id) or a training checkpoint / run folder."""
    from ..train.checkpoint import latest_checkpoint
    from ..train.export import model_from_checkpoint

    p = Path(path)
    if p.exists() and latest_checkpoint(p) is not None and not (p / "config.json").is_file():
        model, meta = model_from_checkpoint(p, device)
        return model, meta["train_config"]
    from ..model import Avat3rModel

    model = Avat3rModel.from_pretrained(str(path), device=device).eval()
    tc = None
    if (p / "training.json").is_file():
        tc = json.loads((p / "training.json").read_text()).get("train_config")
    return model, tc


def _dataset_for(train_cfg: dict | None, model, cfg: EvalConfig, overrides: dict):
    from ..train.trainer import build_dataset

    tc = TrainConfig.from_dict(dict(train_cfg)) if train_cfg else TrainConfig(prior=model.config.prior)
    if tc.data_prior() != model.config.prior:
        raise CheckpointError(f"the model records the {model.config.prior!r} prior but its run's data used "
                              f"{tc.data_prior()!r}; evaluate it on data with its own prior (re-export the run)")
    tc = tc.replace(consistent_inputs=False, seed=cfg.seed, **overrides)  # evaluation always uses inconsistent inputs
    ds = build_dataset(tc, cfg.split, input_size=tc.input_size or model.config.image_size, length=max(cfg.num_samples, 12),
                       device=cfg.device)  # on CUDA the samples are rendered on the GPU
    return ds, tc


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="avat3r eval", description="Evaluate Avat3r weights on held-out identities "
                                "(Table 1) and ablation runs (Tables 2-3).")
    p.add_argument("--checkpoint", default=None, help="weights folder (config.json + model.safetensors), Hub id, or training run/checkpoint")
    p.add_argument("--runs", nargs="*", default=None, help="training run folders of the ablations (Tables 2-3); each is evaluated as 'avat3r'")
    p.add_argument("--same-step", action="store_true", help="--runs: evaluate every run at the largest checkpoint "
                   "step that all of them saved (equal samples seen for runs trained to a wall-clock budget)")
    p.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated subset of {','.join(METHODS)}")
    p.add_argument("--num-samples", type=int, default=24)
    p.add_argument("--split", default="test")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--video-frames", type=int, default=24, help="frames per identity video for tErr (0 = off)")
    p.add_argument("--video-identities", type=int, default=None)
    p.add_argument("--face-views", type=int, default=2, help="supervision views per sample that get AKD/CSIM (-1 = all)")
    p.add_argument("--no-faces", action="store_true", help="skip AKD/CSIM")
    p.add_argument("--lpips-weights", default=None)
    p.add_argument("--input-size", type=int, default=None)
    p.add_argument("--supervision-size", type=int, default=None)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", default="eval", help="folder for eval.md / eval.json (ablations.md / ablations.json)")
    p.add_argument("--quiet", action="store_true")
    return p


def eval_main(argv: Sequence[str] | None = None) -> int:
    """``avat3r eval``: prints the tables and writes them (markdown + JSON) to --out."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.checkpoint and not args.runs:
        print("avat3r eval: error: give --checkpoint (Table 1) and/or --runs (ablation tables)", file=sys.stderr)
        return 2
    cfg = EvalConfig(split=args.split, num_samples=args.num_samples, seed=args.seed, faces=not args.no_faces,
                     face_views=None if args.face_views < 0 else args.face_views, video_frames=args.video_frames,
                     video_identities=args.video_identities, lpips_weights=args.lpips_weights, device=args.device)
    overrides = {k: v for k, v in (("input_size", args.input_size), ("supervision_size", args.supervision_size)) if v}
    from ..model.lpips import try_load_lpips

    lpips = try_load_lpips("vgg", args.lpips_weights)
    if lpips is not None:
        lpips = lpips.to(args.device)
    try:
        if args.checkpoint:
            methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
            model, tc = load_for_eval(args.checkpoint, args.device)
            ds, tcfg = _dataset_for(tc, model, cfg, overrides)
            results = evaluate(model, ds, cfg, use_prior=tcfg.use_prior, lpips=lpips, methods=methods, progress=not args.quiet)
            md = table1(results)
            print(md)
            paths = write_tables(args.out, {"results": results, "checkpoint": str(args.checkpoint), "eval": vars(args)}, md, "eval")
            print(f"wrote {paths[0]} and {paths[1]}")
        if args.runs:
            runs = {}
            run_paths, step = list(args.runs), None
            if args.same_step:
                from ..train.checkpoint import common_step_checkpoints

                step, run_paths = common_step_checkpoints(args.runs)
                print(f"evaluating every run at step {step}: " + ", ".join(str(p) for p in run_paths))
            for r in run_paths:
                model, tc = load_for_eval(r, args.device)
                if tc is None:
                    raise CheckpointError(f"{r}: no training config found; --runs needs training run folders")
                ds, tcfg = _dataset_for(tc, model, cfg, overrides)
                res = evaluate(model, ds, cfg, use_prior=tcfg.use_prior, lpips=lpips, methods=("avat3r",), progress=not args.quiet)
                runs[tcfg.run] = res["avat3r"]
                if tcfg.run == "full":  # the full recipe is also the layer-order row of its own order
                    runs.setdefault(model.config.layer_order, res["avat3r"])
            md = ablation_tables(runs)
            print(md)
            paths = write_tables(args.out, {"runs": runs, "step": step, "eval": vars(args)}, md, "ablations")
            print(f"wrote {paths[0]} and {paths[1]}")
    except Avat3rError as e:
        print(f"avat3r eval: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(eval_main(sys.argv[1:]))
