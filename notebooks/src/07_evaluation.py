# Source of notebooks/07_evaluation.ipynb (build with `python notebooks/_build.py`).

# %% [markdown]
# # 07 · Evaluation: metrics, the hold-out table, ablations
#
# **What this notebook teaches** (paper Sec. 4.2-4.4, Tables 1-3; code in `avat3r.eval`):
#
# 1. the **metrics** on examples you can see: PSNR, SSIM, the face metrics AKD and CSIM (dlib stands in for the paper's
#    PIPNet and ArcFace, whose weights need the internet), and the temporal error tErr (stands in for JOD);
# 2. the **hold-out table** (Table 1) of the shipped model against two baselines on SynthHeads' 12 hold-out identities:
#    read from `docs/eval/` when it is there, otherwise computed here on a few samples;
# 3. the **ablation tables** (Tables 2-3: prior, random timesteps, skips; and the layer order) when their results exist;
# 4. plots of all of it.
#
# Runs in a few minutes on a 2-core CPU (the small computed table is the slow part).

# %%
import json
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from scipy import ndimage

from avat3r.eval.metrics import METRICS, MetricAccumulator, flicker, psnr, ssim, temporal_error
from avat3r.eval.tables import ablation_tables, table1

torch.set_num_threads(2)
plt.rcParams["figure.dpi"] = 80
DOCS = Path("../docs/eval")  # relative to notebooks/: where `avat3r eval --out docs/eval` writes its tables

# %% [markdown]
# ## 1. Image metrics on examples
#
# A rendered head (SynthHeads, notebook 02) and versions of it with the kinds of error a reconstruction makes: a blur
# (lost detail), a shift of 2 pixels (misplaced geometry), a colour cast (wrong appearance), noise (floaters).
# PSNR punishes every pixel error; SSIM cares about local structure, so the blur and the shift cost it most.

# %%
from avat3r.data.synthheads import build_head, split_seeds
from avat3r.pipeline import orbit_camera
from avat3r.render import render

gt = render(build_head(int(split_seeds("test")[1]), "smile"), orbit_camera(20, 5, 128)).color[0].numpy()
rng = np.random.default_rng(0)
variants = {
    "blur σ=1.5": ndimage.gaussian_filter(gt, sigma=(1.5, 1.5, 0)),
    "shift 2 px": np.roll(gt, 2, axis=1),
    "colour cast": np.clip(gt * np.array([1.1, 0.95, 0.9]), 0, 1),
    "noise σ=0.05": np.clip(gt + rng.normal(0, 0.05, gt.shape), 0, 1).astype(np.float32),
}
fig, axes = plt.subplots(1, 5, figsize=(13, 3))
axes[0].imshow(gt); axes[0].set_title("ground truth")
for a, (name, im) in zip(axes[1:], variants.items()):
    a.imshow(im)
    a.set_title(f"{name}\nPSNR {psnr(im, gt)[0]:.1f} dB, SSIM {ssim(im, gt)[0]:.3f}", fontsize=9)
for a in axes:
    a.axis("off")
plt.tight_layout(); plt.show()

# %% [markdown]
# ## 2. Face metrics: AKD and CSIM
#
# **AKD** is the mean distance in pixels between 68 facial landmarks found in the rendering and in the ground truth
# (expression and pose accuracy); **CSIM** the cosine similarity of face-identity embeddings (does it still look like
# the person). Both use dlib's offline models (`pip install "avat3r[faces]"`). On a real photo and edits of it:

# %%
from skimage import data as skdata

from avat3r.eval.faces import faces_available
from avat3r.eval.metrics import face_pair

if not faces_available():
    print("SKIPPED: the face metrics need dlib and its models (pip install 'avat3r[faces]')")
else:
    photo = skdata.astronaut().astype(np.float32) / 255.0
    edits = {"shift 4 px": np.roll(photo, 4, axis=1), "blur σ=3": ndimage.gaussian_filter(photo, (3, 3, 0)),
             "mouth region moved": photo.copy()}
    edits["mouth region moved"][150:205, 165:265] = photo[160:215, 165:265]  # mouth 10 px up: a crude expression change
    other = Path("../../shared/realdata/Fanziapril_mvfnet/data/imgs/front.jpg")  # another person, when available
    if other.exists():
        from PIL import Image

        edits["another person"] = np.asarray(Image.open(other).convert("RGB").resize((512, 512)), np.float32) / 255.0
    fig, axes = plt.subplots(1, 1 + len(edits), figsize=(2.6 * (1 + len(edits)), 3))
    axes[0].imshow(photo); axes[0].set_title("reference")
    for a, (name, im) in zip(axes[1:], edits.items()):
        r = face_pair(im, photo)
        a.imshow(im); a.set_title(f"{name}\nAKD {r['akd']:.1f} px, CSIM {r['csim']:.3f}" if r else name, fontsize=9)
    for a in axes:
        a.axis("off")
    plt.tight_layout(); plt.show()
    print("dlib's embeddings are not zero-centred: unrelated images still score CSIM ~0.8; compare CSIM across methods.")

# %% [markdown]
# ## 3. Video metric: tErr
#
# The paper's JOD needs the ColorVideoVDP toolbox; the project uses the temporal-gradient error
# `tErr = mean |(p_t - p_{t-1}) - (g_t - g_{t-1})| × 100` instead (lower is better): it punishes flicker and lag, not a
# constant error. Three "renders" of a ground-truth sequence that slides a head across the frame:

# %%
frames = np.stack([np.roll(gt, 3 * t, axis=1) for t in range(8)])
cases = {
    "constant colour error": np.clip(frames * 0.9, 0, 1),
    "flicker": np.clip(frames * (1 + 0.1 * (-1) ** np.arange(8))[:, None, None, None], 0, 1),
    "one frame late": np.concatenate([frames[:1], frames[:-1]]),
}
print(f"{'case':<24} {'PSNR':>6} {'tErr':>6} {'flicker':>8}")
for name, pred in cases.items():
    print(f"{name:<24} {psnr(pred[1:], frames[1:]).mean():>6.1f} {temporal_error(pred, frames):>6.2f} {flicker(pred, frames):>8.2f}")

# %% [markdown]
# `MetricAccumulator` collects all of these per image and per video for one method; `summary()` gives the means.

# %%
acc = MetricAccumulator(faces=False)
for im in variants.values():
    acc.update(im, gt)
acc.update_video(cases["flicker"], frames)
print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in acc.summary().items()})

# %% [markdown]
# ## 4. The hold-out table (Table 1)
#
# Protocol (`avat3r eval`, docs/TRAINING.md): SynthHeads' 12 hold-out identities; per sample 4 input views showing
# *different* expressions, and supervision views of a *novel* target expression from *novel* viewpoints. Every method
# sees the same samples. The baselines: **prior only** (no network: one Gaussian per confident pixel at the prior's
# point, in the pixel's colour) and **static** (the model with its expression input held at neutral).
#
# If `docs/eval/eval.json` exists (written by `avat3r eval --checkpoint weights/ --out docs/eval`), we read it.
# Otherwise we compute a small table here: 2 samples, no video and no face metrics, so it is only an illustration.

# %%
from avat3r.errors import CheckpointError

table_file = DOCS / "eval.json"
if table_file.exists():
    results = json.loads(table_file.read_text())
    results = results.get("results", results)  # `avat3r eval` stores {"results", "checkpoint", "eval"}
    source = f"{table_file} (precomputed)"
else:
    from avat3r.data.sampler import SynthHeadsDataset
    from avat3r.eval.__main__ import load_for_eval
    from avat3r.eval.evaluation import EvalConfig, evaluate

    try:
        from avat3r.pipeline import default_weights_dir

        model, _ = load_for_eval(default_weights_dir())
        source = "shipped weights, 2 samples computed here"
    except (CheckpointError, OSError) as e:
        print(f"no shipped weights ({e}); using a freshly initialised tiny model: the numbers only show the mechanics")
        from avat3r.data.synthheads import expression_space
        from avat3r.model import Avat3rModel, ModelConfig

        space = expression_space()
        torch.manual_seed(0)
        model = Avat3rModel(ModelConfig.preset("tiny", expression_dim=space["dim"], expression_names=space["names"]))
        source = "UNTRAINED tiny model, 2 samples computed here"
    size = model.config.image_size
    ds = SynthHeadsDataset(split="test", num_inputs=4, num_targets=2, input_size=size, target_size=size, seed=1234)
    t0 = time.perf_counter()
    results = evaluate(model, ds, EvalConfig(num_samples=2, video_frames=0, faces=False), progress=False)
    print(f"evaluated in {time.perf_counter() - t0:.0f} s")
print("source:", source)
print(table1(results))

# %%
methods = [k for k in results if "@" not in k]
cols = [c for c in ("psnr", "ssim", "lpips", "akd", "csim", "terr") if any(c in results[m] for m in methods)]
cols = [c for c in cols if any(np.isfinite(results[m].get(c, np.nan)) for m in methods)]
fig, axes = plt.subplots(1, len(cols), figsize=(3.2 * len(cols), 3))
for a, c in zip(np.atleast_1d(axes), cols):
    vals = [results[m].get(c, np.nan) for m in methods]
    a.bar(range(len(methods)), vals, color=["tab:blue", "tab:gray", "tab:orange"][: len(methods)])
    a.set_xticks(range(len(methods))); a.set_xticklabels(methods, rotation=20); a.set_title(METRICS[c][0])
plt.suptitle(f"hold-out identities: {source}", fontsize=10); plt.tight_layout(); plt.show()

# %% [markdown]
# ## 5. Ablations (Tables 2-3 and the layer order)
#
# Each ablation is a full training run with one change (`TrainConfig.from_run(name)`: `no_pos_skip`, `no_col_skip`,
# `no_skip`, `no_prior`, `consistent_inputs`, `interleaved`, `cached`), evaluated on the same samples:
#
# ```bash
# avat3r eval --runs runs/full runs/no_pos_skip runs/no_col_skip runs/no_skip runs/no_prior \
#             runs/consistent_inputs runs/interleaved runs/cached --out docs/eval
# ```
#
# Training all of them needs GPUs, so this section only reads `docs/eval/ablations.json` when it exists.

# %%
abl_file = DOCS / "ablations.json"
if not abl_file.exists():
    print(f"SKIPPED: no ablation results at {abl_file.resolve()} (run the command above after training the runs)")
else:
    runs = json.loads(abl_file.read_text())
    runs = runs.get("runs", runs)  # `avat3r eval --runs` stores {"runs", "eval"}
    print(ablation_tables(runs))
    names = [r for r in runs if "@" not in r]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
    for a, c in zip(axes, ("psnr", "ssim")):
        a.barh(names, [runs[r].get(c, np.nan) for r in names], color="tab:blue"); a.set_title(METRICS[c][0])
    plt.tight_layout(); plt.show()

# %% [markdown]
# ## What to try next
#
# - Compute a bigger table: `avat3r eval --checkpoint weights/ --num-samples 24 --out /tmp/eval` (with the face and
#   video metrics; minutes on a CPU), then point `DOCS` at it.
# - Compare the "expressive targets only" section of Table 1: that is where the static baseline falls behind.
# - Train two short runs with notebook 05 (e.g. `full` and `no_pos_skip`) and evaluate both with
#   `avat3r eval --runs ...` to make your own ablation table.
