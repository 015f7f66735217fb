"""Result tables laid out like the paper's: Table 1 (few-shot avatar creation: methods x PSNR SSIM LPIPS
JOD AKD CSIM), Table 2 (prior / random-timestep ablations), Table 3 (skip-connection ablations), plus the
layer-order comparison. Markdown for docs, JSON for machines.

Our columns differ from the paper's where its tools need weights from the internet: tErr (temporal-gradient
error, lower is better) stands in for JOD, dlib's 68 landmarks for PIPNet (AKD), dlib's ResNet embedding for
ArcFace (CSIM). A metric that could not be computed shows as "–".
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from .metrics import METRICS

__all__ = ["format_table", "table1", "ablation_tables", "write_tables", "TABLE_COLUMNS"]

TABLE_COLUMNS = ["psnr", "ssim", "lpips", "terr", "akd", "csim"]
_FMT = {"psnr": "{:.2f}", "ssim": "{:.3f}", "lpips": "{:.3f}", "terr": "{:.2f}", "akd": "{:.2f}", "csim": "{:.3f}"}
_GROUP = {"psnr": "image", "ssim": "image", "lpips": "image", "terr": "video", "akd": "face", "csim": "face"}

#: display names of methods and runs
NAMES = {
    "avat3r": "Avat3r (ours)", "prior_only": "Prior only", "static": "Static (neutral expression)",
    "full": "Avat3r", "no_pos_skip": "No pos. skip", "no_col_skip": "No col. skip", "no_skip": "No skip",
    "no_prior": "w/o prior positions", "consistent_inputs": "w/o rand. timesteps",
    "interleaved": "interleaved (N x [self, cross, MLP])", "cached": "cached (self blocks, then cross blocks)",
}

# Tables 2-3: rows (run names) and the flag columns the paper shows
TABLE2 = {"title": "Table 2. Ablation: prior positions (D) and random input timesteps (T)",
          "rows": ["no_prior", "consistent_inputs", "full"], "flags": {"D": ("no_prior",), "T": ("consistent_inputs",)}}
TABLE3 = {"title": "Table 3. Ablation: colour (C) and position (P) skip connections",
          "rows": ["no_skip", "no_pos_skip", "no_col_skip", "full"],
          "flags": {"C": ("no_skip", "no_col_skip"), "P": ("no_skip", "no_pos_skip")}}
TABLE_ORDER = {"title": "Layer order (expression-independent part cached or not)", "rows": ["interleaved", "cached"], "flags": {}}


def _cell(summary: dict, key: str) -> str:
    v = summary.get(key)
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return _FMT[key].format(v)


def format_table(title: str, rows: list[tuple[str, dict]], flags: dict[str, tuple] | None = None,
                 columns: list[str] = TABLE_COLUMNS, notes: list[str] | None = None) -> str:
    """Markdown table: one row per (name, summary); flags: column -> run names where it is OFF (☐, else ☒)."""
    flags = flags or {}
    head = ["Method"] + list(flags) + [f"{METRICS[c][0]} ({_GROUP[c]})" for c in columns]
    lines = [f"**{title}**", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, summ in rows:
        cells = [NAMES.get(name, name)] + [("☐" if name in off else "☒") for off in flags.values()]
        cells += [_cell(summ, c) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    for n in notes or []:
        lines.append("")
        lines.append(n)
    return "\n".join(lines) + "\n"


def _notes(results: dict) -> list[str]:
    counts = {}
    for summ in results.values():
        for k, v in summ.get("counts", {}).items():
            counts[k] = max(counts.get(k, 0), v)
    notes = ["tErr: temporal-gradient error x100 of a rendered video vs its ground truth (stands in for JOD). "
             "AKD: 68 dlib landmarks, pixels (paper: PIPNet). CSIM: cosine of dlib face embeddings (paper: ArcFace)."]
    if counts:
        notes.append("Counts: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + ".")
    if all(math.isnan(s.get("lpips", math.nan)) for s in results.values()):
        notes.append("LPIPS: not computed (no LPIPS weights found; see docs/TRAINING.md).")
    return notes


def table1(results: dict[str, dict], title: str = "Table 1. Few-shot 3D head avatar creation") -> str:
    """results: {method: summary}; keys with '@' (subsets) become their own section."""
    main = [(k, v) for k, v in results.items() if "@" not in k]
    out = format_table(title, main, notes=_notes(results))
    subsets = sorted({k.split("@", 1)[1] for k in results if "@" in k})
    for sub in subsets:
        rows = [(k.split("@")[0], v) for k, v in results.items() if k.endswith("@" + sub)]
        out += "\n" + format_table(f"{title}, {sub} targets only", rows)
    return out


def ablation_tables(runs: dict[str, dict]) -> str:
    """runs: {run name: summary of the model trained with that run config}. Tables 2, 3 and the layer order."""
    out = []
    for spec in (TABLE2, TABLE3, TABLE_ORDER):
        rows = [(r, runs[r]) for r in spec["rows"] if r in runs]
        full = runs.get("full")
        if any(r != "full" and s is not full for r, s in rows):  # a run of its own, not just the full recipe's alias
            out.append(format_table(spec["title"], rows, spec["flags"]))
    extra = [(r, s) for r, s in runs.items() if not any(r in t["rows"] for t in (TABLE2, TABLE3, TABLE_ORDER))]
    if extra:  # with the full recipe as the reference row
        out.append(format_table("Other runs", ([("full", runs["full"])] if "full" in runs else []) + extra))
    return "\n".join(out)


def write_tables(out_dir, results: dict, markdown: str, name: str = "eval") -> tuple[Path, Path]:
    """Write <out_dir>/<name>.md and <name>.json atomically."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = (out / f"{name}.md", out / f"{name}.json")
    for p, text in zip(paths, (markdown, json.dumps(results, indent=1, default=float) + "\n")):
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, p)
    return paths
