# Source of notebooks/02_synthheads.ipynb (build with `python notebooks/_build.py`).

# %% [markdown]
# # 02 · SynthHeads: procedural, animatable heads for training
#
# No real multi-view head video can be downloaded here, so the project trains and benchmarks on **SynthHeads**
# (`avat3r.data`): procedural heads made of ~50k 3D Gaussians each, with an interpretable expression rig, seen by a
# camera dome like Ava-256's. This notebook teaches
#
# 1. how a head is built from an **identity** (shape, skin, hair, accessories; drawn from an integer seed);
# 2. the **expression code** `z_exp` (20 named dimensions) and its presets, with interactive **sliders**;
# 3. the **camera dome** (80 cameras, back-only views never used as inputs) and head-centric crops;
# 4. the **training sampler** of the paper's supp. C: 4 inputs by *k-farthest viewpoint sampling*, each at a
#    *different timestep* (expression and head pose), plus supervision views of a target expression.
#
# Runs in about a minute on a 2-core CPU (building a head's rig takes a few seconds; renders are small).

# %%
import dataclasses
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

from avat3r.cameras import Cameras, farthest_point_sampling, k_farthest_viewpoints, orbit_cameras
from avat3r.data.dome import back_only, head_crops, make_dome
from avat3r.data.sampler import SynthHeadsDataset
from avat3r.data.synthheads import (
    EXPRESSION_NAMES,
    EXPRESSION_PRESETS,
    SPLITS,
    build_head,
    build_heads,
    expression,
    sample_identity,
    split_seeds,
)
from avat3r.render import render

torch.set_num_threads(2)
plt.rcParams["figure.dpi"] = 80
SIZE = 96  # render size for this notebook (training uses 512² inputs at paper size)

def views(azimuths, size=SIZE, elevation=5.0):
    """Cameras looking at the head from the given azimuths (degrees)."""
    cams = [orbit_cameras(1, radius=1.0, elevation_deg=elevation, fov_deg=20.0, size=size, azimuth_range=(a, a + 1.0))
            for a in azimuths]
    return Cameras.cat(cams)

def show_row(images, titles, height=2.4):
    fig, axes = plt.subplots(1, len(images), figsize=(height * len(images), height + 0.3))
    for a, im, t in zip(np.atleast_1d(axes), images, titles):
        a.imshow(np.clip(np.asarray(im), 0, 1)); a.set_title(t, fontsize=9); a.axis("off")
    plt.tight_layout(); plt.show()

# %% [markdown]
# ## 1. An identity, and the head it builds
#
# `sample_identity(seed)` draws every parameter of a person from its seed (the same seed always gives the same
# person). Splits use disjoint seed ranges, as the paper holds out 12 of Ava-256's persons:

# %%
for name, r in SPLITS.items():
    print(f"{name:>10}: seeds [{r.start:,}, {r.stop:,})  ({len(r):,} identities)")
seed = int(split_seeds("train")[7])
ident = sample_identity(seed)
print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in dataclasses.asdict(ident).items() if k in
       ("seed", "scale", "jaw_width", "nose_length", "eye_size", "hair_style", "beard", "glasses", "hat", "headband")})

# %% [markdown]
# `build_head(identity, expression)` returns an `avat3r.gaussians.Gaussians` set in the head-centric frame
# (metres, +y up, +z out of the face; notebook 01), rendered here with the CPU rasterizer from four sides.

# %%
t0 = time.perf_counter()
head = build_head(ident)
print(f"{len(head):,} Gaussians, built in {time.perf_counter() - t0:.1f} s (the rig is cached per identity)")
cams = views([0, 60, 180, -90])
t0 = time.perf_counter()
imgs = render(head, cams, background=(1, 1, 1)).color
print(f"4 views of {SIZE}² rendered in {time.perf_counter() - t0:.1f} s")
show_row(imgs, ["front", "azimuth 60", "back", "azimuth -90"])

# %% [markdown]
# Identities differ in shape, skin, hair style and colour (including unusual colours), beards and accessories.
# An identity is a frozen dataclass, so any field can be changed with `dataclasses.replace` to see what it does:

# %%
others = [sample_identity(int(s)) for s in split_seeds("train")[20:22]]
variant = dataclasses.replace(ident, hair_style="bald", nose_length=1.25, jaw_width=1.15, glasses="sun")
heads = [build_head(i) for i in others + [variant]]
front = views([25])
show_row([render(h, front, background=(1, 1, 1)).color[0] for h in heads],
         [f"seed {i.seed}: {i.hair_style}" for i in others] + ["seed 7 variant: bald, long nose, sunglasses"], height=3)

# %% [markdown]
# ## 2. Expressions
#
# The expression code has 20 named dimensions in [0, 1] (gaze in [-1, 1]). It is exactly the `z_exp` a model
# trained on SynthHeads receives, and its names and presets travel in the model's config. `expression(**values)`
# builds a code by name; `build_heads` poses one identity under several codes (sharing the rest geometry).

# %%
print(", ".join(EXPRESSION_NAMES))
print("presets:", ", ".join(EXPRESSION_PRESETS))
shown = ["neutral", "smile", "surprise", "tongue", "wink_left", "angry"]
codes = np.stack([EXPRESSION_PRESETS[n] for n in shown])
posed = build_heads(ident, codes)
close = views([15], elevation=0.0)
show_row([render(g, close, background=(1, 1, 1)).color[0] for g in posed], shown, height=2.2)

# %% [markdown]
# ### Interactive: expression sliders
#
# Move a slider and the head re-renders (each update builds the posed Gaussians and renders one 128² view, about
# a second on a CPU). When the notebook runs headless (CI), the widgets have no front end, so the cell also renders
# the default pose directly, outside the callback.

# %%
import ipywidgets as widgets
from IPython.display import display

SLIDERS = ["jaw_open", "smile", "blink_left", "brow_raise", "pucker", "gaze_x"]

def render_pose(azimuth=20.0, **values):
    cam = views([azimuth], size=128, elevation=0.0)
    return render(build_head(ident, expression(**values)), cam, background=(1, 1, 1)).color[0].numpy()

def show_pose(azimuth=20.0, **values):
    plt.figure(figsize=(3.2, 3.2)); plt.imshow(np.clip(render_pose(azimuth, **values), 0, 1)); plt.axis("off")
    active = ", ".join(f"{k}={v:.1f}" for k, v in values.items() if abs(v) > 0.01) or "neutral"
    plt.title(active, fontsize=8); plt.show()

controls = {n: widgets.FloatSlider(value=0.0, min=-1.0 if n.startswith("gaze") else 0.0, max=1.0, step=0.1,
                                   description=n, continuous_update=False) for n in SLIDERS}
controls["azimuth"] = widgets.FloatSlider(value=20.0, min=-90, max=90, step=10, description="azimuth", continuous_update=False)
ui = widgets.interactive(show_pose, **controls)
display(ui)

# headless default (what the widget shows before anything is moved; also what CI checks)
default = render_pose(20.0, jaw_open=0.5, smile=0.6)
print("default render:", default.shape, "foreground fraction", round(float((default.mean(-1) < 0.99).mean()), 2))

# %% [markdown]
# ## 3. The camera dome
#
# `make_dome()` places 80 cameras (by default) like Ava-256's rig: 0.8-1.3 m away, varied focal lengths, denser at
# the front, some above and below, and 12 behind the head. Back-only cameras (|azimuth| > 125°) are never inputs
# (`back_only`) but can supervise. Each view is rendered straight into a **head-centric square crop**
# (`head_crops`): the square around the projected head centre that holds a sphere of 17.5 cm.

# %%
dome = make_dome()
back = back_only(dome.cameras)
c = dome.cameras.centers.numpy()
fig = plt.figure(figsize=(10, 4.2))
ax = fig.add_subplot(1, 2, 1, projection="3d")
ax.scatter(*c[~back.numpy()].T, c="tab:blue", label="may be an input")
ax.scatter(*c[back.numpy()].T, c="tab:red", label="back-only (supervision only)")
ax.scatter([0], [0], [0], c="k", marker="x", s=80, label="head")
ax.view_init(elev=20, azim=-60, vertical_axis="y"); ax.legend(fontsize=8); ax.set_title(f"{len(c)} dome cameras (metres)")
ax2 = fig.add_subplot(1, 2, 2)
ax2.scatter(dome.azimuth, dome.elevation, c=np.where(back, "tab:red", "tab:blue"))
ax2.set_xlabel("azimuth (deg, 0 = frontal)"); ax2.set_ylabel("elevation (deg)"); ax2.set_title("layout")
plt.tight_layout(); plt.show()
print("full-frame camera:", dome.cameras.width[0].item(), "x", dome.cameras.height[0].item(), "px; K[0] =\n", dome.cameras.K[0].numpy().round(1))

# %%
pick = [0, 20, 40, 60, 75]
crops = head_crops(dome.cameras[pick], SIZE)
imgs = render(head, crops).color
show_row(imgs, [f"{dome.names[i]}: az {dome.azimuth[i]:.0f}, el {dome.elevation[i]:.0f}" for i in pick], height=2.2)

# %% [markdown]
# ## 4. The training sampler (paper supp. C)
#
# **k-farthest viewpoint sampling**: from a random allowed camera, farthest-point sampling picks 10 well-spread
# candidate directions; 4 of them are chosen at random. Inputs are thus spread around the head, but not always the
# same spread. Below: the candidates and the chosen inputs for three draws.

# %%
allowed = ~back
dirs = torch.nn.functional.normalize(dome.cameras.centers, dim=-1)
fig, axes = plt.subplots(1, 3, figsize=(11, 3.2), sharey=True)
for k, a in enumerate(axes):
    gen = torch.Generator().manual_seed(k)
    chosen = k_farthest_viewpoints(dome.cameras.centers, 4, n_candidates=10, allowed=allowed, generator=gen)
    a.scatter(dome.azimuth, dome.elevation, c="0.85", s=15)
    a.scatter(dome.azimuth[chosen], dome.elevation[chosen], c="tab:green", s=80, label="4 inputs")
    a.set_title(f"draw {k}: cameras {chosen}", fontsize=9); a.set_xlabel("azimuth")
idx = torch.nonzero(allowed).squeeze(1)
cand = idx[farthest_point_sampling(dirs[idx], 10, start=0)]
axes[0].scatter(dome.azimuth[cand], dome.elevation[cand], facecolors="none", edgecolors="k", s=120,
                label="10 FPS candidates from camera 0")
axes[0].set_ylabel("elevation"); axes[0].legend(fontsize=7, loc="lower left")
plt.tight_layout(); plt.show()

# %% [markdown]
# **Inconsistent inputs**: in the paper each input view comes from a *different timestep*, so the inputs show
# different expressions (and head poses), and the network must still produce one consistent head in the target
# expression. `SynthHeadsDataset` does exactly that (`consistent_inputs=True` is the ablation). One sample, small
# sizes; the identity is fixed so its rig comes from the cache:

# %%
ds = SynthHeadsDataset(num_inputs=4, num_targets=3, input_size=64, target_size=64, identities=(seed,), seed=0)
t0 = time.perf_counter()
s = ds[0]
print(f"one sample in {time.perf_counter() - t0:.1f} s:",
      {k: tuple(v.shape) for k, v in s.items() if isinstance(v, torch.Tensor)})

def top(z, n=2):
    order = np.argsort(-np.abs(np.asarray(z)))[:n]
    return ", ".join(f"{EXPRESSION_NAMES[i]} {float(z[i]):.1f}" for i in order if abs(float(z[i])) > 0.05) or "neutral"

ins = [s["input_images"][v].permute(1, 2, 0) for v in range(4)]
show_row(ins, [f"input {v} (cam {int(s['input_camera_ids'][v])}):\n{top(s['input_expressions'][v])}" for v in range(4)], height=2.3)
tg = [s["target_images"][t].permute(1, 2, 0) for t in range(3)]
show_row(tg, [f"target view {t} (cam {int(s['target_camera_ids'][t])})" for t in range(3)], height=2.3)
print("target expression:", top(s["target_expression"], 4))

# %% [markdown]
# The sample also carries the weight-free **position prior** computed from the input masks and cameras only
# (`prior_positions`, `prior_confidence`; notebook 03) and the input masks. Ground-truth depth never enters unless
# the ablation-only `prior="oracle"` is asked for.

# %% [markdown]
# ## What to try next
#
# - Change `seed` (section 1) or `dataclasses.replace` more identity fields (`hair_style` from `HAIR_STYLES`, `beard`,
#   `hat=True`).
# - Drag the sliders; combine `jaw_open` with `tongue_out`; try the `scream` and `disgust` presets.
# - Draw more samples with `consistent_inputs=True` and compare the input expressions.
# - Write capture folders to disk with `avat3r synth --out captures --subjects 2 --views 4 --size 256`.
# - Next: **03_priors**, where the position maps come from.
