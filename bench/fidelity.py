"""Fidelity on SynthHeads hold-out identities: the numbers of issue #15's goals in one command.

    python bench/fidelity.py --checkpoint weights --out docs/eval        # 2-core CPU: ~6 min

Protocol (that of ``avat3r eval``, see avat3r/eval/evaluation.py): identities of the test split (outside every
split the trainer draws from; ``--identity-seeds`` for others), one sample per identity (index i -> identity i mod
12), each = V input views at different random expressions and head poses (inconsistent inputs) + 8 supervision
views of a novel target expression from novel viewpoints, black background, whole-image metrics. Reported:

- V = 4: the model, the prior-only and the static baselines (avat3r/eval/baselines.py), PSNR / SSIM;
- V = 4: PSNR inside the pixels that the target expression changes (bench/expression_effect.py's
  ``expression_region``: the ground truth re-rendered at neutral, |diff| > 0.05, dilated 2 px), model vs static,
  and the neutral ground truth itself (what a perfect non-animating model scores there);
- V = 1 and V = 2: the model's PSNR / SSIM (samples drawn by the same sampler with V inputs).

Writes ``fidelity.json`` and ``fidelity.md`` (the table, the goals and the command) into --out.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from expression_effect import expression_region, expression_response, masked_psnr  # noqa: E402  (the one definition of the region)

GOALS = {  # issue #15
    "model_minus_prior_only_db": 9.0,
    "region_model_minus_static_db": 2.0,
    "one_view_psnr_db": 24.0,
    "two_views_psnr_db": 26.0,
}


def _checkpoint_info(path: str) -> dict:
    """Path, step count and samples seen of a weights folder (its training.json) or a training run folder."""
    info: dict = {"path": str(path)}
    tj = Path(path) / "training.json"
    if tj.is_file():
        d = json.loads(tj.read_text())
        info.update({k: d[k] for k in ("step", "total_samples") if k in d})
    else:
        from avat3r.train.checkpoint import latest_checkpoint

        ck = latest_checkpoint(Path(path)) if Path(path).exists() else None
        if ck is not None:
            info["checkpoint"] = str(ck)
    return info


def _machine() -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU, {cores} cores"
    return f"{platform.machine()} {dev}, torch {torch.__version__}"


@torch.no_grad()  # not set_grad_enabled(False): tests call run() in-process, and grad must stay on after it
def run(checkpoint: str, num_samples: int = 12, seed: int = 1234, views=(4, 1, 2), threshold: float = 0.05,
        identity_seeds: list[int] | None = None, device: str = "cpu", supervision_size: int | None = None,
        input_size: int | None = None, log=print) -> dict:
    """All numbers of the fidelity table -> dict (see the module docstring)."""
    from avat3r.data.batch import collate
    from avat3r.eval.__main__ import _dataset_for, load_for_eval
    from avat3r.eval.baselines import neutral_expression
    from avat3r.eval.evaluation import EvalConfig, _hwc, predict
    from avat3r.eval.metrics import MetricAccumulator

    model, tc = load_for_eval(checkpoint, device)
    model = model.eval()
    neutral = neutral_expression(model).cpu().numpy()
    cfg = EvalConfig(num_samples=num_samples, seed=seed, device=device, faces=False, video_frames=0)
    results: dict = {"views": {}, "region": None}
    t_all = time.time()
    for V in views:
        overrides: dict = {"num_inputs": V}
        if supervision_size:
            overrides["supervision_size"] = supervision_size
        if input_size:
            overrides["input_size"] = input_size
        if identity_seeds:
            opts = dict((tc or {}).get("data_options", {}) if isinstance(tc, dict) else {})
            opts["identities"] = tuple(int(s) for s in identity_seeds)
            overrides["data_options"] = opts
        ds, tcfg = _dataset_for(tc, model, cfg, overrides)
        methods = ("avat3r", "prior_only", "static") if V == 4 else ("avat3r",)
        acc = {m: MetricAccumulator(faces=False) for m in methods}
        region_rows, ids = [], []
        t0 = time.time()
        for i in range(min(num_samples, len(ds))):
            sample = ds[i]
            batch = collate([sample]).to(device)
            gt = batch.target_images[0]
            preds = {m: predict(m, model, batch, tcfg.use_prior, cfg.background)[0] for m in methods}
            for m in methods:
                acc[m].update(_hwc(preds[m]), _hwc(gt))
            row = {"index": i, "identity": int(sample["identity_seed"])}
            ids.append(row["identity"])
            if V == 4:
                mask, gt0 = expression_region(sample, neutral, threshold)
                frac = float(mask.float().mean())
                row["region_fraction"] = frac
                if frac > 1e-4:
                    row.update(avat3r=masked_psnr(preds["avat3r"], gt, mask), static=masked_psnr(preds["static"], gt, mask),
                               neutral_gt=masked_psnr(gt0, gt, mask),
                               response=expression_response(preds["avat3r"], preds["static"], gt, gt0, mask))
                region_rows.append(row)
            log(json.dumps({"V": V, **row, **{m: round(float(acc[m].values["psnr"][-1]), 2) for m in methods}}))
        results["views"][str(V)] = {
            "num_inputs": V, "samples": min(num_samples, len(ds)), "seconds": time.time() - t0,
            "identities": sorted(set(ids)),
            "methods": {m: {k: v for k, v in a.summary().items()} for m, a in acc.items()},
        }
        if V == 4:
            scored = [r for r in region_rows if "avat3r" in r]
            results["region"] = {
                "threshold": threshold, "with_region": len(scored), "samples": len(region_rows),
                "mean_region_fraction": float(np.mean([r["region_fraction"] for r in region_rows])) if region_rows else math.nan,
                "psnr": {k: float(np.mean([r[k] for r in scored])) if scored else math.nan for k in ("avat3r", "static", "neutral_gt")},
                "avat3r_beats_static": f"{sum(r['avat3r'] > r['static'] for r in scored)}/{len(scored)}",
                "response": float(np.mean([r["response"] for r in scored])) if scored else math.nan,
                "rows": region_rows,
            }
    results["seconds"] = time.time() - t_all
    results["summary"] = summarize(results)
    return results


def summarize(res: dict) -> dict:
    """The goal figures (dB) and whether each goal is met."""
    v4 = res["views"].get("4", {}).get("methods", {})
    out: dict = {}
    if v4:
        out["psnr_model"] = v4["avat3r"]["psnr"]
        out["psnr_prior_only"] = v4["prior_only"]["psnr"]
        out["psnr_static"] = v4["static"]["psnr"]
        out["model_minus_prior_only_db"] = out["psnr_model"] - out["psnr_prior_only"]
        out["model_minus_static_db"] = out["psnr_model"] - out["psnr_static"]
    if res.get("region"):
        r = res["region"]["psnr"]
        out["region_psnr_model"], out["region_psnr_static"], out["region_psnr_neutral_gt"] = r["avat3r"], r["static"], r["neutral_gt"]
        out["region_model_minus_static_db"] = r["avat3r"] - r["static"]
        if "response" in res["region"]:
            out["region_response"] = res["region"]["response"]
    if "1" in res["views"]:
        out["one_view_psnr_db"] = res["views"]["1"]["methods"]["avat3r"]["psnr"]
    if "2" in res["views"]:
        out["two_views_psnr_db"] = res["views"]["2"]["methods"]["avat3r"]["psnr"]
    out["goals_met"] = {k: bool(out[k] >= g) for k, g in GOALS.items() if k in out and math.isfinite(out[k])}
    return out


def markdown(doc: dict) -> str:
    """The table of every run in ``doc["runs"]`` (one column per label, e.g. before / after retraining)."""
    runs = doc["runs"]
    f = lambda x, d="": "–" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:{d}.2f}"  # noqa: E731
    ok = lambda s, k: ("✅" if s["goals_met"][k] else "❌") if k in s.get("goals_met", {}) else ""  # noqa: E731

    def ssim(r, v, m):
        try:
            return f" / {r['views'][v]['methods'][m]['ssim']:.3f}"
        except KeyError:
            return ""

    rows = [  # (figure, goal, goal key, value(run) -> str)
        ("4 views: model PSNR / SSIM", "", None, lambda r: f(r["summary"].get("psnr_model")) + ssim(r, "4", "avat3r")),
        ("4 views: prior-only PSNR / SSIM", "", None, lambda r: f(r["summary"].get("psnr_prior_only")) + ssim(r, "4", "prior_only")),
        ("4 views: static PSNR / SSIM", "", None, lambda r: f(r["summary"].get("psnr_static")) + ssim(r, "4", "static")),
        ("**model − prior-only**", "≥ +9 dB", "model_minus_prior_only_db", lambda r: f(r["summary"].get("model_minus_prior_only_db"), "+")),
        ("model − static (whole image)", "", None, lambda r: f(r["summary"].get("model_minus_static_db"), "+")),
        ("expression pixels: model / static / neutral GT PSNR", "", None,
         lambda r: " / ".join(f(r["summary"].get(k)) for k in ("region_psnr_model", "region_psnr_static", "region_psnr_neutral_gt"))),
        ("**expression pixels: model − static**", "≥ +2 dB", "region_model_minus_static_db",
         lambda r: f(r["summary"].get("region_model_minus_static_db"), "+")
         + (f" (model better in {r['region']['avat3r_beats_static']}; region {100 * r['region']['mean_region_fraction']:.1f} % of the image)"
            if r.get("region") else "")),
        ("expression response: the avatar's change / the truth's change in those pixels (bench/expression_effect.py)", "", None,
         lambda r: f(r["summary"].get("region_response"))),
        ("**1 input view: model PSNR** / SSIM", "≥ 24 dB", "one_view_psnr_db",
         lambda r: f(r["summary"].get("one_view_psnr_db")) + ssim(r, "1", "avat3r")),
        ("**2 input views: model PSNR** / SSIM", "≥ 26 dB", "two_views_psnr_db",
         lambda r: f(r["summary"].get("two_views_psnr_db")) + ssim(r, "2", "avat3r")),
    ]
    labels = list(runs)
    lines = ["# Fidelity on SynthHeads hold-out identities (issue #15 goals)", "",
             "Protocol and definitions: bench/fidelity.py's docstring (the expression region is bench/expression_effect.py's "
             "`expression_region`). PSNR in dB over the whole image (black background), mean over the samples.", ""]
    for lab in labels:
        m = runs[lab]["meta"]
        ck = m["checkpoint"]
        lines += [f"- **{lab}**: checkpoint `{ck['path']}`, step {ck.get('step', '?')}"
                  + (f" ({ck['total_samples']:,} samples)" if "total_samples" in ck else "")
                  + f"; `{m['command']}`; {m['machine']}; {runs[lab]['seconds']:.0f} s wall; identities {m['identities']}, "
                  f"{runs[lab]['views'].get('4', {}).get('samples', '?')} samples per row, seed {m['seed']}."
                  + (f" Note: {m['note']}." if m.get("note") else "")]
    lines += ["", "| figure | goal | " + " | ".join(labels) + " |", "|---|---|" + "---|" * len(labels)]
    for name, goal, key, val in rows:
        cells = []
        for lab in labels:
            r = runs[lab]
            cells.append(val(r) + (" " + ok(r["summary"], key) if key else ""))
        lines.append(f"| {name} | {goal} | " + " | ".join(cells) + " |")
    return "\n".join(lines + [""])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default="weights")
    p.add_argument("--num-samples", type=int, default=12, help="samples per row (12 = one per test identity)")
    p.add_argument("--seed", type=int, default=1234, help="the evaluation seed (avat3r eval's default)")
    p.add_argument("--views", default="4,1,2", help="numbers of input views to score (4 also gives the baselines)")
    p.add_argument("--identity-seeds", default=None, help="comma-separated SynthHeads identity seeds (default: the test split)")
    p.add_argument("--threshold", type=float, default=0.05)
    p.add_argument("--input-size", type=int, default=None, help="(tests) input views' size; default the model's")
    p.add_argument("--supervision-size", type=int, default=None, help="(tests) supervision views' size; default 667/512 of the input")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default="docs/eval", help="folder for fidelity.json and fidelity.md")
    p.add_argument("--label", default="before", help="name of this run in the JSON (e.g. before / after retraining)")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    seeds = [int(x) for x in args.identity_seeds.split(",")] if args.identity_seeds else None
    views = tuple(int(x) for x in args.views.split(","))
    res = run(args.checkpoint, args.num_samples, args.seed, views, args.threshold, seeds, args.device,
              args.supervision_size, args.input_size)
    from avat3r.data.identity import split_seeds

    meta = {"command": "python bench/fidelity.py " + " ".join(argv if argv is not None else sys.argv[1:]),
            "machine": _machine(), "checkpoint": _checkpoint_info(args.checkpoint), "seed": args.seed, "label": args.label,
            "identities": (",".join(map(str, seeds)) if seeds else
                           f"test split {split_seeds('test').start}..{split_seeds('test').stop - 1}")}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    jp = out / "fidelity.json"
    doc = json.loads(jp.read_text()) if jp.is_file() else {}
    runs = doc.setdefault("runs", {})
    prev = runs.get(args.label)
    if prev is not None and prev.get("meta", {}).get("checkpoint") == meta["checkpoint"] and prev["meta"].get("identities") == meta["identities"]:
        # the same label and checkpoint run with other --views (e.g. one process per view count): merge the rows;
        # every sample is deterministic by (seed, index), so this equals one run with all the views
        res["views"] = {**prev.get("views", {}), **res["views"]}
        res["region"] = res.get("region") or prev.get("region")
        res["seconds"] = max(res["seconds"], prev.get("seconds", 0.0))
        res["summary"] = summarize(res)
        meta["command"] = prev["meta"]["command"] + " + " + meta["command"] if prev["meta"]["command"] != meta["command"] else meta["command"]
    runs[args.label] = {"meta": meta, **res}
    jp.write_text(json.dumps(doc, indent=1, default=lambda x: None))
    md = markdown(doc)
    (out / "fidelity.md").write_text(md)
    print(md)
    print(f"wrote {out / 'fidelity.json'} and {out / 'fidelity.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
