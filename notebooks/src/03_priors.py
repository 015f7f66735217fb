# Source of notebooks/03_priors.ipynb (build with `python notebooks/_build.py`).

# %% [markdown]
# # 03 · Position priors: where the Gaussians start
#
# Avat3r does not regress 3D positions from scratch: every input pixel comes with a **position map** `I^pos`
# (a 3D point in the head-centric world) and a **confidence** `I^conf` (eq. 2). The network predicts offsets from
# those points (the position skip, eq. 11) and keeps only pixels with confidence above τ = 0.5 (eq. 13).
#
# **What this notebook teaches**
#
# 1. The project's **weight-free prior** (`avat3r.priors.visual_hull.VisualHullPrior`): a visual hull carved from the
#    input masks and cameras, rendered back to per-view position maps; shown as images, with its error against
#    ground truth on a SynthHeads capture, for 1 to 8 views.
# 2. The `PositionPrior` interface every prior implements (`Capture -> PriorOutput(positions, confidence)`).
# 3. How the paper's **DUSt3R** prior and **Sapiens** features plug in: the loading code, and the same plumbing run
#    with tiny random networks. **Their real weights need the internet** (DUSt3R 2.3 GB, CC BY-NC-SA 4.0; Sapiens
#    0.3b-2b, CC BY-NC 4.0): the cells that need them check for them and skip, saying why.
#
# Runs in about a minute on a 2-core CPU.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

from avat3r.cameras import k_farthest_viewpoints
from avat3r.capture import Capture
from avat3r.data.dome import back_only, head_crops, make_dome
from avat3r.data.synthheads import EXPRESSION_PRESETS, build_head, split_seeds
from avat3r.model.inputs import NetworkInputs
from avat3r.priors.base import PriorOutput
from avat3r.priors.registry import PRIORS, build_prior
from avat3r.priors.visual_hull import VisualHullPrior, depth_to_positions
from avat3r.render import render

torch.set_num_threads(2)
plt.rcParams["figure.dpi"] = 80
SIZE = 96

# %% [markdown]
# ## 1. A capture with ground truth
#
# A `Capture` is what every stage after the front end consumes: V images, masks, `Cameras` (and optionally the
# expression each view shows). We make one from a SynthHeads test identity seen by 8 dome cameras picked by
# k-farthest sampling. Because the head is synthetic, the renderer also gives exact depth, which
# `depth_to_positions` turns into **ground-truth position maps** (used here only to measure the prior's error).

# %%
dome = make_dome()
ids = k_farthest_viewpoints(dome.cameras.centers, 8, n_candidates=10, allowed=~back_only(dome.cameras),
                            generator=torch.Generator().manual_seed(3))
cams = head_crops(dome.cameras[ids], SIZE)
head = build_head(int(split_seeds("test")[0]), EXPRESSION_PRESETS["smile"])
with torch.no_grad():
    out = render(head, cams)
masks = out.alpha[..., 0].clamp(0, 1)
gt = depth_to_positions(out.depth[..., 0], cams)  # [V, H, W, 3] metres
capture = Capture(images=out.color.numpy(), cameras=cams, names=[dome.names[i] for i in ids], masks=masks.numpy())
print(f"capture: {len(capture)} views of {capture.size}, cameras {capture.names}")

fig, axes = plt.subplots(1, 8, figsize=(16, 2.3))
for a, im, n in zip(axes, capture.images, capture.names):
    a.imshow(im); a.set_title(n, fontsize=9); a.axis("off")
plt.tight_layout(); plt.show()

# %% [markdown]
# ## 2. The visual-hull prior on 4 views
#
# `VisualHullPrior()(capture)` uses only the masks and cameras (no learned weights, no ground truth):
# carve a voxel grid with every silhouette, intersect with a head-shaped proxy when there are few views, ray-march the
# hull from each camera to its first surface point, fill holes. Confidence is above 0.5 exactly on the mask's
# foreground, higher where a ray really hit the hull. Position maps are shown with x, y, z mapped to r, g, b.

# %%
prior = VisualHullPrior()
four = capture.subset([0, 1, 2, 3])
t0 = time.perf_counter()
pout = prior(four).numpy()  # priors return torch tensors on their device; numpy for plotting
print(f"VisualHullPrior on {len(four)} views of {four.size}: {time.perf_counter() - t0:.2f} s ->",
      "positions", pout.positions.shape, "confidence", pout.confidence.shape)

def pos_rgb(p):
    return np.clip(np.asarray(p) / 0.3 + 0.5, 0, 1)

fg = four.masks > 0.5
err_mm = np.linalg.norm(pout.positions - gt[:4].numpy(), axis=-1) * 1000
fig, axes = plt.subplots(4, 4, figsize=(9, 9.4), layout="constrained")
for v in range(4):
    axes[0, v].imshow(four.images[v]); axes[0, v].set_title(four.names[v])
    axes[1, v].imshow(pos_rgb(gt[v]) * fg[v][..., None]); axes[1, v].set_title("ground truth xyz")
    axes[2, v].imshow(pos_rgb(pout.positions[v]) * fg[v][..., None]); axes[2, v].set_title("prior I^pos")
    im = axes[3, v].imshow(np.where(fg[v], err_mm[v], np.nan), cmap="magma", vmin=0, vmax=30)
    axes[3, v].set_title(f"|error|, median {np.median(err_mm[v][fg[v]]):.0f} mm", fontsize=9)
for a in axes.flat:
    a.axis("off")
fig.colorbar(im, ax=axes[3, -1], label="mm (clipped at 30)")
plt.show()

plt.figure(figsize=(9, 2.3))
for v in range(4):
    plt.subplot(1, 4, v + 1); plt.imshow(pout.confidence[v], cmap="viridis", vmin=0, vmax=1); plt.axis("off")
    plt.title(f"I^conf (kept: {(pout.confidence[v] > 0.5).mean():.0%})", fontsize=9)
plt.tight_layout(); plt.show()

# %% [markdown]
# ## 3. Error against the number of views
#
# More silhouettes carve a tighter hull. With one view the hull is a cone that bounds nothing in depth, so the prior
# falls back on the head proxy fitted to the silhouette. The network's position skip can move a Gaussian by at most
# 5 cm (`max_offset`); the prior has to land within that.

# %%
rows = []
for V in (1, 2, 4, 8):
    sub = capture.subset(list(range(V)))
    t0 = time.perf_counter()
    p = prior(sub).numpy()
    dt = time.perf_counter() - t0
    fgV = sub.masks > 0.5
    kept = p.confidence > 0.5
    e = np.linalg.norm(p.positions - gt[:V].numpy(), axis=-1)[fgV & kept] * 1000
    rows.append((V, np.mean(e), np.median(e), np.percentile(e, 90), (kept & fgV).sum() / fgV.sum(), dt))
print(f"{'V':>2} {'mean mm':>8} {'median':>7} {'p90':>6} {'coverage':>9} {'time s':>7}")
for r in rows:
    print(f"{r[0]:>2} {r[1]:>8.1f} {r[2]:>7.1f} {r[3]:>6.1f} {r[4]:>9.1%} {r[5]:>7.2f}")
plt.figure(figsize=(4.5, 2.8))
plt.plot([r[0] for r in rows], [r[1] for r in rows], "o-", label="mean")
plt.plot([r[0] for r in rows], [r[2] for r in rows], "s--", label="median")
plt.xlabel("input views V"); plt.ylabel("position error (mm)"); plt.xticks([1, 2, 4, 8]); plt.legend(); plt.grid(alpha=0.3)
plt.title("visual-hull prior vs ground truth"); plt.tight_layout(); plt.show()

# %% [markdown]
# ## 4. One interface for all priors
#
# A prior is any object with a `name` (recorded in the model's config, so a checkpoint says which prior it was trained
# with) and `__call__(capture) -> PriorOutput(positions [V,H,W,3], confidence [V,H,W])` (torch tensors on the prior's
# device). One registry (`avat3r.priors.registry`) builds each by name: `build_prior(name)`. A checkpoint records the
# prior of the data it was trained on; the pipeline uses exactly that prior and refuses weights asked to run with another.

# %%
for name, spec in PRIORS.items():
    print(f"{name:12s} servable={spec.servable!s:5s} {spec.summary}")
p = build_prior("visual_hull")
print(type(p).__name__, "name =", p.name)
print(PriorOutput.__doc__)

# %% [markdown]
# ## 5. DUSt3R, the paper's prior
#
# The paper runs DUSt3R (`naver/DUSt3R_ViTLarge_BaseDecoder_512_dpt`) on the input views with known cameras:
# pairwise pointmaps for every ordered pair, then global alignment with the poses and focal lengths fixed, giving a depth
# map per view, lifted along the capture's rays into the head-centric world (`avat3r.priors.dust3r`, docs/PRIORS.md).
#
# Loading the real network (needs the weights: `weights/dust3r/model.safetensors`, `$AVAT3R_DUST3R`, or the Hugging Face
# cache; downloading them needs the internet):
#
# ```python
# from avat3r.priors.dust3r import Dust3rPrior
# prior = Dust3rPrior.from_pretrained()            # CheckpointError naming the file when the weights are missing
# out = prior(capture)                             # PriorOutput; prior.last_alignment has the aligned depth
# ```
#
# The cell below looks for the weights without downloading anything and skips when they are absent.

# %%
from avat3r.errors import CheckpointError
from avat3r.priors.dust3r import PRESETS as DUST3R_PRESETS
from avat3r.priors.dust3r import Dust3rNet, Dust3rPrior, Dust3rPriorConfig, find_dust3r_weights

try:
    path = find_dust3r_weights(allow_download=False)
except CheckpointError as e:
    print("SKIPPED (DUSt3R weights not available offline):", e)
else:
    print("found", path, "- running DUSt3R on the 4-view capture (minutes on a CPU)")
    real = Dust3rPrior.from_pretrained(path)
    t0 = time.perf_counter()
    dout = real(four).numpy()
    e = np.linalg.norm(dout.positions - gt[:4].numpy(), axis=-1)[fg & (dout.confidence > 0.5)] * 1000
    print(f"DUSt3R prior: {time.perf_counter() - t0:.0f} s, median error {np.median(e):.1f} mm")

# %% [markdown]
# The same code path runs with a **tiny, randomly initialised** DUSt3R (`PRESETS["tiny"]`, same structure: ViT encoder
# with 2D RoPE, two cross-attending decoders, DPT heads). Its output is meaningless (it has not been trained) but
# every step of the plumbing runs: preparing the images, pairwise inference, alignment with known cameras, and the
# lifting into the world.

# %%
tiny = Dust3rPrior(model=Dust3rNet(DUST3R_PRESETS["tiny"]), config=Dust3rPriorConfig(long_side=64), device="cpu")
t0 = time.perf_counter()
tout = tiny(capture.subset([0, 1, 2])).numpy()
print(f"tiny random DUSt3R on 3 views: {time.perf_counter() - t0:.1f} s -> positions {tout.positions.shape}, "
      f"confidence in [{tout.confidence.min():.2f}, {tout.confidence.max():.2f}]")

# %% [markdown]
# ## 6. Sapiens features (optional, eqs. 5-6)
#
# The paper also feeds Sapiens-2b feature maps (1920 channels at 1/16 resolution) into the network: they are
# grid-sampled to the token grid and fused with the tokens by a linear layer. The shipped CPU model does without them
# (`features=None`). Loading (weights needed, from `facebook/sapiens-pretrain-<size>` on the Hub; `.pth` files are read
# with a restricted unpickler that rebuilds tensors only):
#
# ```python
# from avat3r.priors.sapiens import SapiensFeatures
# feats = SapiensFeatures.from_pretrained("sapiens-2b")   # or "sapiens-0.3b" for a lighter one
# f = feats(capture.images)                               # [V, 1920, 64, 64]
# ```

# %%
from avat3r.priors.sapiens import SapiensConfig, SapiensFeatures, SapiensViT

try:
    real_feats = SapiensFeatures.from_pretrained("sapiens-0.3b", allow_download=False)
except CheckpointError as e:
    print("SKIPPED (Sapiens weights not available offline):", e)
else:
    f = real_feats(capture.images[:1])
    print("Sapiens-0.3b features:", tuple(f.shape))

# %% [markdown]
# And the plumbing with a tiny random ViT of the same structure, feeding a `tiny` Avat3r model that has the feature
# path switched on (`features=..., feature_dim=...` in its config):

# %%
from avat3r.model import Avat3rModel, ModelConfig

vit = SapiensViT(SapiensConfig(embed_dim=32, depth=2, num_heads=2, pretrain_size=64))
extractor = SapiensFeatures("0.3b", model=vit, device="cpu", resolution=(64, 64))
sub = capture.subset([0, 1])
feats = extractor(sub.images)
print("features:", tuple(feats.shape), "(V, C_f, H/16, W/16)")

cfg = ModelConfig.preset("tiny", image_size=SIZE, features="sapiens-tiny-demo", feature_dim=32)
net = Avat3rModel(cfg).eval()
hp = VisualHullPrior()(sub)
inputs = NetworkInputs.from_capture(sub, hp, feats)  # the adapter the pipeline and the trainer use: [1, V, ...]
with torch.no_grad():
    maps = inputs.forward(net, torch.zeros(1, cfg.expression_dim))
print("Gaussian maps with the feature path:", tuple(maps.means.shape), "->", int(maps.mask.sum()), "Gaussians kept")

# %% [markdown]
# ## What to try next
#
# - Change `VisualHullConfig` (`avat3r.priors.visual_hull`): a coarser `grid`, more `tolerance` for noisy masks,
#   `carve_votes=2`, and watch the error table.
# - Erode or shift one mask (a bad segmentation) and see how the hull degrades.
# - With the internet (or the files copied in), put the DUSt3R weights in `weights/dust3r/` and rerun section 5 to
#   compare the two priors on the same capture.
# - Next: **04_network**, which consumes these position maps.
