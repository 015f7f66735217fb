# Source of notebooks/09_gghead.ipynb (build with `python notebooks/_build.py`).

# %% [markdown]
# # 09 · GGHead: generated 3D heads that Avat3r animates
#
# The paper's first application (Fig. 7a): sample a new 3D head with **GGHead** (Kirschstein et al. 2024), render
# four views of it, and let Avat3r turn the static head into an animatable avatar. This notebook walks through
# `avat3r.generate`:
#
# 1. the **mapping network** (EG3D's StyleGAN2, camera-conditioned): z, c -> w, and truncation towards the mean w;
# 2. the **synthesis network**: w -> UV maps of Gaussian attributes (position offset, scale, rotation, colour,
#    opacity), shown as images;
# 3. the **template** the maps live on (SynthHeads' average skin with a UV chart) and one Gaussian per UV site;
# 4. **samples** from four views, **truncation**, **interpolation** in W;
# 5. the **four input views** with cameras -> **Avat3r** -> an animated avatar.
#
# It uses the shipped GGHead weights (`weights/gghead/`) when present; otherwise a **randomly initialised** `tiny`
# generator, which shows every mechanism but not what a trained GGHead looks like (heads are template-shaped
# with noise colours). Runs in about a minute on 2 CPU cores.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

from avat3r.generate import GGHeadGenerator, preset
from avat3r.generate.avatar import INPUT_VIEWS, generated_capture
from avat3r.generate.hub import default_weights_dir, load_generator
from avat3r.generate.train import view_cameras

torch.set_num_threads(2)
plt.rcParams["figure.dpi"] = 80

if (default_weights_dir() / "model.safetensors").is_file():
    G = load_generator()
    print("GGHead weights:", default_weights_dir())
else:
    torch.manual_seed(0)
    G = GGHeadGenerator(preset("tiny")).eval()
    print("NOTE: no trained GGHead weights here -> a randomly initialised 'tiny' generator (mechanics only)")
cfg = G.config
print(f"preset {cfg.preset}: z {cfg.z_dim}, w {cfg.w_dim} x {G.num_ws}, UV maps {cfg.n_uv_channels} x "
      f"{cfg.plane_resolution}², {G.num_gaussians} Gaussians")

def show_row(images, titles, height=2.2):
    fig, axes = plt.subplots(1, len(images), figsize=(height * len(images), height + 0.3))
    for a, im, t in zip(np.atleast_1d(axes), images, titles):
        a.imshow(np.clip(np.asarray(im), 0, 1)); a.set_title(t, fontsize=9); a.axis("off")
    plt.tight_layout(); plt.show()

# %% [markdown]
# ## 1. Mapping: z, c -> w
#
# `z ~ N(0, I)` and the camera label `c` (EG3D: cam-to-world 16 + normalised intrinsics 9) are normalised,
# embedded and sent through an 8-layer MLP with a 0.01 learning-rate multiplier (`tiny`: 2 layers). The result is
# broadcast to one w per synthesis layer. Truncation `psi` pulls w towards the running mean `w_avg`.

# %%
z = torch.randn(1, cfg.z_dim, generator=torch.Generator().manual_seed(3))
c = G.canonical_label()
with torch.no_grad():
    ws = {psi: G.mapping(z, c, truncation_psi=psi) for psi in (0.0, 0.5, 1.0)}
print("ws:", tuple(ws[1.0].shape), "  c:", tuple(c.shape))
for psi, w in ws.items():
    print(f"psi={psi}: |w - w_avg| = {(w[0, 0] - G.backbone.mapping.w_avg).norm():.3f}")

# %% [markdown]
# ## 2. Synthesis: w -> UV attribute maps
#
# A StyleGAN2 'skip' generator (modulated 3x3 convolutions, per-pixel noise, ToRGB at every resolution) writes
# 22 channels instead of RGB: position offset 3 (through a zero-initialised 1x1 conv, then `tanh x 0.25`),
# scale 3, rotation 3 (a Rodrigues vector), colour 12 (SH degree 1: DC + 3 bands, RGB each), opacity 1.

# %%
with torch.no_grad():
    out = G(z, c, truncation_psi=0.7)
maps = out["maps"][0]
def norm01(x):
    x = x - x.amin(dim=(-2, -1), keepdim=True)
    return (x / x.amax(dim=(-2, -1), keepdim=True).clamp(min=1e-8)).permute(1, 2, 0).numpy()
show_row([norm01(maps[0:3]), norm01(maps[3:6]), norm01(maps[6:9]), norm01(maps[9:12]), norm01(maps[21:22]).repeat(3, -1)],
         ["position (raw)", "scale (raw)", "rotation (raw)", "colour DC (raw)", "opacity (raw)"])

# %% [markdown]
# ## 3. The template and the Gaussians on it
#
# The maps live on a template surface with a UV chart: ours is the skin of SynthHeads' average head, u = azimuth
# (denser on the face), v = polar angle from the crown to the neck. GGHead samples an n x n grid in UV space
# (kept where the chart is valid) and places one Gaussian at each site: template point + offset.

# %%
pm = G.template_position_map
uv = G.template_uv[0, :, 0]
fig, ax = plt.subplots(1, 2, figsize=(7, 3.2))
ax[0].imshow(norm01(pm)); ax[0].set_title("template position map (xyz as rgb)", fontsize=9); ax[0].axis("off")
ax[1].scatter(uv[::3, 0], -uv[::3, 1], s=1); ax[1].set_title(f"UV sites ({len(uv)} Gaussians; every 3rd)", fontsize=9)
ax[1].set_aspect("equal"); plt.tight_layout(); plt.show()
print("activated scales (m): median", float(torch.exp(out["scale"]).median() * cfg.world_scale))

# %% [markdown]
# ## 4. Samples, truncation, interpolation
#
# Each row is one seed seen from the four input azimuths (-60, -20, 20, 60 degrees), rendered with the project's
# splatting renderer (ours on CPU, gsplat on CUDA). Then one seed at several truncations, and a walk in W.

# %%
cams = view_cameras(96)
rows = []
for seed in (0, 1, 2):
    o = G.sample(seed, 0.7)
    rgb, _ = G.render(o, cams, index=0)
    rows.append(torch.cat(list(rgb), 1))
plt.figure(figsize=(8, 6)); plt.imshow(torch.cat(rows, 0).clamp(0, 1).numpy()); plt.axis("off"); plt.show()

cam1 = view_cameras(96, azimuths=(20.0,))
trunc = [G.render(G.sample(5, t), cam1, index=0)[0][0] for t in (0.0, 0.5, 1.0, 1.5)]
show_row(trunc, [f"truncation {t}" for t in (0.0, 0.5, 1.0, 1.5)])

# %%
w0 = G.mapping(torch.randn(1, cfg.z_dim, generator=torch.Generator().manual_seed(0)), c, truncation_psi=0.7)
w1 = G.mapping(torch.randn(1, cfg.z_dim, generator=torch.Generator().manual_seed(1)), c, truncation_psi=0.7)
frames = []
with torch.no_grad():
    for t in np.linspace(0, 1, 5):
        m = G.uv_maps(torch.lerp(w0, w1, float(t)))
        frames.append(G.render({"maps": m, **G.attributes(m)}, cam1, index=0)[0][0])
show_row(frames, [f"t = {t:.2f}" for t in np.linspace(0, 1, 5)])

# %% [markdown]
# ## 5. Four views -> Avat3r -> an animated avatar
#
# `generated_capture` renders the four input views (black background, masks from the rendered alpha, cameras in
# the head-centric world); `Pipeline.reconstruct` takes that Capture like any other source
# (`reconstruct(seed, source="gghead")` does the same through the input-source registry).

# %%
from avat3r.pipeline import load_pipeline

pipe = load_pipeline(device="cpu")
t0 = time.time()
cap, _ = generated_capture(G, seed=3, truncation=0.7, size=pipe.image_size)
avatar = pipe.reconstruct(cap)
print(f"seed -> avatar in {time.time() - t0:.1f} s")
show_row(list(cap.images), [f"input az {a:+.0f}" for a, _ in INPUT_VIEWS])
faces = [avatar.render((20.0, 5.0), expression=e, size=128) / 255.0 for e in ("neutral", "smile", "surprise")]
show_row(faces, ["neutral", "smile", "surprise"])

# %% [markdown]
# The same from the command line: `avat3r generate --seed 3 --truncation 0.7 -o out/` writes `gghead.ply`, the
# four views as a capture folder, `avatar.ply`, a turntable and an expression clip. In the app: tab
# "3 · Generate". Training a generator: `python -m avat3r.generate.train --preset small --minutes 5`
# (see docs/GGHEAD.md); official GGHead `.pkl` files load with `load_generator("checkpoint.pkl")`, read by a
# restricted unpickler that never runs the pickle's code.
