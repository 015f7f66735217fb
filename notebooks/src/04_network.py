# Source of notebooks/04_network.ipynb (build with `python notebooks/_build.py`).

# %% [markdown]
# # 04 · The Avat3r network, layer by layer
#
# **What this notebook teaches** (paper Sec. 3.2, Fig. 2, eqs. 4-13), on real tensors from a SynthHeads sample
# and the `tiny` preset of `avat3r.model.Avat3rModel` (the same class the shipped model and the app use):
#
# 1. the presets (`paper`, `small`, `tiny`) and what they change;
# 2. **tokens**: each view's image, position map and Plücker rays, patchified to D-dimensional tokens (eq. 4);
# 3. **self-attention across views** (eq. 7), with an attention map read out of the model's own layer;
# 4. **expression tokens** `f_exp = MLP(z_exp)` and the **cross-attention** to them (eqs. 8-9);
# 5. the **upsampler** back to pixels (eq. 10), the **Gaussian maps**, the **skips** (eqs. 11-12) and
#    **confidence masking** (eq. 13);
# 6. the two layer orders, `interleaved` and `cached`, and what a new expression costs in each (timed on this CPU).
#
# Hooks read intermediate tensors out of the model's modules; nothing of the network is re-implemented here.
# The weights are freshly initialised (training is notebook 05), so attention maps show structure from the inputs,
# not learnt correspondences; the last section repeats the attention map with the shipped model when `weights/` has it.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

from avat3r.cameras import orbit_cameras, plucker_rays
from avat3r.data.sampler import SynthHeadsDataset
from avat3r.data.synthheads import EXPRESSION_NAMES, split_seeds
from avat3r.head_template import HEAD_BOX_CENTER
from avat3r.model import Avat3rModel, ModelConfig
from avat3r.render import render

torch.manual_seed(0)
torch.set_num_threads(2)
plt.rcParams["figure.dpi"] = 80

# %% [markdown]
# ## 1. Presets
#
# A `ModelConfig` holds every hyper-parameter and travels inside each checkpoint as `config.json`. `paper` is
# Table 4; `small` is the shipped CPU model; `tiny` is a toy for tests and for this notebook. Parameter counts are
# computed on the `meta` device, so even the paper model costs no memory here.

# %%
keys = ["image_size", "patch_size", "dim", "heads", "num_self_layers", "num_cross_layers", "layer_order",
        "expression_dim", "upsampler_steps", "features", "prior"]
rows = []
for name in ("paper", "small", "tiny"):
    cfg = ModelConfig.preset(name)
    with torch.device("meta"):
        n = Avat3rModel(cfg).num_parameters()
    rows.append([name] + [str(getattr(cfg, k)) for k in keys] + [f"{n / 1e6:.2f} M"])
header = ["preset"] + keys + ["params"]
widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
for r in [header] + rows:
    print("  ".join(c.ljust(w) for c, w in zip(r, widths)))

# %% [markdown]
# ## 2. A real input: one SynthHeads training sample
#
# A sample holds V = 4 input views (each possibly showing a different expression), the weight-free position prior
# (visual hull, notebook 03) with its confidence, and supervision views of a target expression (notebook 02).
# The network takes channel-first tensors `[B, V, C, H, W]`; the Plücker rays come from the input cameras.
# The `tiny` preset runs at 64² (patch 8 gives 8×8 tokens per view).

# %%
cfg = ModelConfig.preset("tiny", expression_dim=len(EXPRESSION_NAMES), expression_names=list(EXPRESSION_NAMES))
ds = SynthHeadsDataset(num_inputs=4, num_targets=1, input_size=cfg.image_size, target_size=cfg.image_size,
                       identities=(int(split_seeds("train")[7]),), seed=0)
sample = ds[0]
images = sample["input_images"][None]          # [B=1, V, 3, H, W] in [0, 1]
positions = sample["prior_positions"][None]    # [1, V, 3, H, W] metres (head-centric world)
confidence = sample["prior_confidence"][None]  # [1, V, 1, H, W]
plucker = plucker_rays(sample["input_cameras"])[None]  # [1, V, 6, H, W]
z = sample["target_expression"][None]          # [1, C] the target expression code z_exp
inputs = (images, positions, confidence, plucker)
for name, t in dict(images=images, positions=positions, confidence=confidence, plucker=plucker, expression=z).items():
    print(f"{name:>11}: {tuple(t.shape)}")
B, V, _, H, W = images.shape

# %%
fig, axes = plt.subplots(4, V, figsize=(2.2 * V, 8.4))
for v in range(V):
    axes[0, v].imshow(images[0, v].permute(1, 2, 0)); axes[0, v].set_title(f"view {v}: I")
    axes[1, v].imshow((positions[0, v].permute(1, 2, 0) / 0.3 + 0.5).clamp(0, 1)); axes[1, v].set_title("I^pos (xyz→rgb)")
    axes[2, v].imshow(confidence[0, v, 0], cmap="gray", vmin=0, vmax=1); axes[2, v].set_title("confidence")
    d = plucker[0, v, :3].permute(1, 2, 0)
    axes[3, v].imshow((0.5 + 0.5 * d).clamp(0, 1)); axes[3, v].set_title("Plücker d")
for a in axes.flat:
    a.axis("off")
plt.tight_layout(); plt.show()

# %% [markdown]
# ## 3. Tokens (eq. 4)
#
# Per view, the 12 channels `[2I-1, clip(I^pos/s), I^pluck]` go through one strided convolution (`patch_embed`,
# kernel = stride = 8) to an 8×8 grid of D-dimensional tokens; the V grids are concatenated into one sequence of
# V·Hp·Wp tokens. There is no view embedding and no 2D position embedding: the Plücker rays tell each token where
# it is. A forward hook on `patch_embed` captures the tokens; their first three principal components, shown as
# colours, reveal that the tokens already separate head from background and front from side.

# %%
model = Avat3rModel(cfg).eval()
captured = {}

def keep(name):
    def hook(module, args, output):
        captured[name] = (args, output)
    return hook

handles = [model.patch_embed.register_forward_hook(keep("patch_embed"))]
handles += [blk.attn.register_forward_hook(keep(f"self{i}")) for i, blk in enumerate(model.self_blocks)]
handles += [blk.attn.register_forward_hook(keep(f"cross{i}")) for i, blk in enumerate(model.cross_blocks)]
handles += [model.upsampler.register_forward_hook(keep("upsampler"))]
with torch.no_grad():
    maps = model(*inputs, z)
for h in handles:
    h.remove()

tok = captured["patch_embed"][1]  # [B*V, D, Hp, Wp]
print("patch_embed output:", tuple(tok.shape), "-> sequence", (B, V * tok.shape[2] * tok.shape[3], tok.shape[1]))
flat = tok.permute(0, 2, 3, 1).reshape(-1, tok.shape[1])
_, _, vecs = torch.pca_lowrank(flat - flat.mean(0), q=3)
pca = (flat - flat.mean(0)) @ vecs
pca = ((pca - pca.amin(0)) / (pca.amax(0) - pca.amin(0))).reshape(V, tok.shape[2], tok.shape[3], 3)
fig, axes = plt.subplots(1, V, figsize=(2.2 * V, 2.4))
for v in range(V):
    axes[v].imshow(pca[v]); axes[v].set_title(f"view {v} tokens (PCA)"); axes[v].axis("off")
plt.tight_layout(); plt.show()

# %% [markdown]
# ## 4. Self-attention across views (eq. 7)
#
# Every token attends to every token of every view: this is where views exchange information. We take the input
# the first self-attention layer received (captured by a hook on `self_blocks[0].attn`) and recompute its attention
# weights from that layer's own `qkv` projection: `softmax(q·kᵀ/√d)`. Below: for one query token in view 0 (the red
# square), the attention it pays to each token of the four views (mean over heads).

# %%
def attention_weights(attn_module, x, ctx=None):
    """Attention probabilities [B, heads, N, M] of one avat3r.model.layers.Attention for its captured input."""
    Bx, N, D = x.shape
    h = attn_module.heads
    if ctx is None:
        q, k, _ = attn_module.qkv(x).view(Bx, N, 3, h, D // h).permute(2, 0, 3, 1, 4)
    else:
        q = attn_module.q(x).view(Bx, N, h, D // h).transpose(1, 2)
        k, _ = attn_module.kv(ctx).view(Bx, ctx.shape[1], 2, h, D // h).permute(2, 0, 3, 1, 4)
    return torch.softmax(q @ k.transpose(-1, -2) / (D // h) ** 0.5, dim=-1)

Hp, Wp = H // cfg.patch_size, W // cfg.patch_size
with torch.no_grad():
    A = attention_weights(model.self_blocks[0].attn, captured["self0"][0][0]).mean(1)[0]  # [N, N]
qy, qx = Hp // 2, Wp // 2  # a token in the middle of view 0 (on the face)
query = 0 * Hp * Wp + qy * Wp + qx

def show_attention(A, query, images, patch, title):
    """Overlay row ``query`` of an attention matrix A [N, N] on the V input images [V, 3, H, W]."""
    Vn, _, Hn, Wn = images.shape
    gh, gw = Hn // patch, Wn // patch
    row = A[query].reshape(Vn, gh, gw)
    fig, axes = plt.subplots(1, Vn, figsize=(2.4 * Vn, 2.6))
    for v in range(Vn):
        axes[v].imshow(images[v].permute(1, 2, 0))
        axes[v].imshow(row[v], cmap="inferno", alpha=0.6, extent=(0, Wn, Hn, 0), vmin=0, vmax=float(row.max()))
        axes[v].set_title(f"view {v}: {float(row[v].sum()):.0%} of attention"); axes[v].axis("off")
    qv, rest = divmod(query, gh * gw)
    axes[qv].add_patch(plt.Rectangle((rest % gw * patch, rest // gw * patch), patch, patch, fill=False, color="red", lw=2))
    fig.suptitle(title); plt.tight_layout(); plt.show()

show_attention(A, query, images[0], cfg.patch_size, "self-attention of one token of view 0 over all views (untrained tiny model, layer 0)")
print("each row of the attention matrix sums to 1:", torch.allclose(A.sum(-1), torch.ones(A.shape[0]), atol=1e-5))

# %% [markdown]
# ## 5. Expression tokens and cross-attention (eqs. 8-9)
#
# The expression code `z_exp` (SynthHeads: 20 named dims such as `jaw_open`, `smile`) goes through a 2-layer ReLU MLP
# to S = 4 tokens, projected to D (`model.expression`). Each image token then *cross-attends* to those S tokens
# (`cross_blocks` in the `cached` order). Cross-attention never mixes image tokens with each other, so it can be run
# per expression on a cached state (section 7). Below: how much each image token listens to each expression token.

# %%
print("z_exp of this sample:", {n: round(float(v), 2) for n, v in zip(cfg.names, z[0]) if abs(float(v)) > 0.05})
with torch.no_grad():
    f_exp = model.expression(z)
print("expression tokens f_exp:", tuple(f_exp.shape), "(B, S, D)")
x_in, ctx_in = captured["cross0"][0][:2]
with torch.no_grad():
    C = attention_weights(model.cross_blocks[0].attn, x_in, ctx_in).mean(1)[0]  # [N, S]
S = C.shape[1]
print(f"attention to the {S} expression tokens ranges over [{float(C.min()):.3f}, {float(C.max()):.3f}] "
      f"(uniform would be {1 / S:.3f}: an untrained model barely prefers any token)")
fig, axes = plt.subplots(S, V, figsize=(2 * V, 2 * S), layout="constrained")
for s in range(S):
    for v in range(V):
        im = axes[s, v].imshow(C[:, s].reshape(V, Hp, Wp)[v], cmap="viridis", vmin=float(C.min()), vmax=float(C.max()))
        axes[s, v].set_title(f"view {v} → exp. token {s}", fontsize=8); axes[s, v].axis("off")
fig.colorbar(im, ax=axes[:, -1], label="attention weight")
plt.show()

# %% [markdown]
# ## 6. Upsampler, Gaussian maps, skips and masking (eqs. 10-13)
#
# The upsampler turns the token grid back into pixels: LayerNorm → Linear → ×2 pixel shuffle, windowed
# self-attention inside each view, then a linear "unpatchify" to the remaining 4×4 pixels per token, giving 14 raw
# channels per input pixel (position offset 3, scale 3, rotation 4, colour 3, opacity 1). The hook recorded its
# input and output:

# %%
(up_in,), up_out = captured["upsampler"]
print("upsampler input  (B*V, Hp, Wp, D):", tuple(up_in.shape))
print("upsampler output (B*V, H, W, 14): ", tuple(up_out.shape))
print("GaussianMaps:", {k: tuple(getattr(maps, k).shape) for k in ("means", "quats", "scales", "opacities", "colors", "mask")})

# %% [markdown]
# The heads bound every attribute. With the **position skip** (eq. 11) a Gaussian sits at the prior's point plus a
# tanh-bounded offset (≤ `max_offset` = 5 cm); with the **colour skip** (eq. 12) its colour is the pixel's colour plus
# a residual in logit space. The final layer starts near zero, so an untrained network already outputs the prior's
# point cloud in the input colours; training learns the corrections. Without the position skip (an ablation), the
# same untrained network puts every Gaussian near the origin.

# %%
off = (maps.means - positions.permute(0, 1, 3, 4, 2)).norm(dim=-1)
print(f"|mean - I^pos|: max {float(off.max()) * 1000:.2f} mm (bound {cfg.max_offset * 1000:.0f} mm)")
print(f"|colour - I|:   max {float((maps.colors - images.permute(0, 1, 3, 4, 2)).abs().max()):.4f}")
no_skip = Avat3rModel(cfg.replace(pos_skip=False, rgb_skip=False)).eval()
with torch.no_grad():
    m2 = no_skip(*inputs, z)
print(f"without skips: mean |position| {float(m2.means.norm(dim=-1).mean()) * 1000:.1f} mm, colour spread {float(m2.colors.std()):.3f}")

fig, axes = plt.subplots(1, 5, figsize=(12, 2.6))
v = 0
axes[0].imshow((maps.means[0, v] / 0.3 + 0.5).clamp(0, 1)); axes[0].set_title("M^pos (xyz→rgb)")
axes[1].imshow(maps.scales[0, v].mean(-1) * 1000, cmap="magma"); axes[1].set_title("mean scale (mm)")
axes[2].imshow(maps.opacities[0, v], cmap="gray", vmin=0, vmax=1); axes[2].set_title("opacity")
axes[3].imshow(maps.colors[0, v]); axes[3].set_title("M^rgb")
axes[4].imshow(maps.mask[0, v], cmap="gray"); axes[4].set_title(f"mask: conf > τ={cfg.conf_threshold}")
for a in axes:
    a.axis("off")
plt.tight_layout(); plt.show()

# %% [markdown]
# **Confidence masking** (eq. 13) keeps only pixels whose prior confidence exceeds τ; those become the avatar's
# Gaussians (`GaussianMaps.to_gaussians`). Rendering them from new viewpoints shows what the untrained network
# outputs: the prior's surface, coloured by the inputs.

# %%
gaussians = maps.to_gaussians()[0]
print(f"{int(maps.mask.sum())} of {maps.mask.numel()} pixels kept -> {len(gaussians)} Gaussians")
cams = orbit_cameras(4, radius=1.0, elevation_deg=5.0, fov_deg=24.0, size=96, azimuth_range=(-60.0, 60.0),
                     target=HEAD_BOX_CENTER)
with torch.no_grad():
    imgs = render(gaussians, cams, backend="torch").color
fig, axes = plt.subplots(1, 4, figsize=(9, 2.5))
for a, im, az in zip(axes, imgs, np.linspace(-60, 60, 4)):
    a.imshow(im.clamp(0, 1)); a.set_title(f"azimuth {az:.0f}"); a.axis("off")
plt.tight_layout(); plt.show()

# %% [markdown]
# ## 7. `cached` vs `interleaved`: what a new expression costs
#
# * `interleaved`: N × [self-attention, cross-attention, MLP], paper-like. Every layer after the patch embedding
#   depends on the expression, so each new expression reruns the whole backbone.
# * `cached`: all [self-attention, MLP] blocks first, then [cross-attention, MLP] blocks that do not mix tokens.
#   `encode` runs the expression-independent part once and keeps an `AvatarState`; `animate(state, z)` runs only the
#   cross blocks, the upsampler and the heads.
#
# Two measures of what a new expression costs: **FLOPs** counted by `torch.utils.flop_counter` (exact, independent of
# the machine and of other processes) and **wall-clock time** on this CPU (best of several runs; on a busy shared
# machine timings are noisy). The FLOPs are also counted for the **paper preset** at 4 × 512² on PyTorch's `meta` device,
# which computes shapes only, so the 80 M-parameter model costs no memory or time here.

# %%
from torch.utils.flop_counter import FlopCounterMode


def gflops(fn):
    with FlopCounterMode(display=False) as fc:
        fn()
    return fc.get_total_flops() / 1e9

def timed(fn, repeat=7):
    """Best of ``repeat`` runs in ms (the minimum is the least disturbed by other processes)."""
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best * 1000

results = {}
for order in ("interleaved", "cached"):
    m = Avat3rModel(cfg.replace(layer_order=order)).eval()
    with torch.no_grad():
        state = m.encode(*inputs)
        results[order] = dict(params=m.num_parameters(),
                              full=(gflops(lambda: m(*inputs, z)), timed(lambda: m(*inputs, z))),
                              animate=(gflops(lambda: m.animate(state, z)), timed(lambda: m.animate(state, z))))
    pcfg = ModelConfig.preset("paper", features=None, feature_dim=0, layer_order=order)
    with torch.device("meta"):
        pm = Avat3rModel(pcfg).eval()
        pin = (torch.empty(1, 4, 3, 512, 512), torch.empty(1, 4, 3, 512, 512), torch.empty(1, 4, 1, 512, 512),
               torch.empty(1, 4, 6, 512, 512))
        pz = torch.zeros(1, pcfg.expression_dim)
        with torch.no_grad():
            pstate = pm.encode(*pin)
            results[order]["paper"] = (gflops(lambda: pm(*pin, pz)), gflops(lambda: pm.animate(pstate, pz)))

print(f"{'order':<12} | tiny 4x64²: {'full':>14} {'new expression':>18} | paper 4x512²: {'full':>8} {'new expression':>15}")
for order, r in results.items():
    print(f"{order:<12} | {r['full'][0]:>6.3f} GF {r['full'][1]:>5.0f} ms {r['animate'][0]:>8.3f} GF {r['animate'][1]:>5.0f} ms"
          f" | {r['paper'][0] / 1e3:>10.2f} TF {r['paper'][1] / 1e3:>12.2f} TF")

fig, axes = plt.subplots(1, 2, figsize=(10, 2.6))
orders = list(results)
axes[0].barh(orders, [results[o]["paper"][1] / 1e3 for o in orders], color=["tab:orange", "tab:blue"])
axes[0].set_xlabel("TFLOPs per new expression (paper preset, 4 x 512²)")
axes[1].barh(orders, [results[o]["animate"][1] for o in orders], color=["tab:orange", "tab:blue"])
axes[1].set_xlabel("ms per new expression (tiny, this CPU)")
plt.tight_layout(); plt.show()
ratio = results["interleaved"]["paper"][1] / results["cached"]["paper"][1]
print(f"at paper size, a new expression costs {ratio:.1f}x fewer FLOPs with the cached order")

# %% [markdown]
# Measured at paper size on an H200 (../shared/guide/FACTS.md): 8 × [self, cross, MLP] takes 20.2 ms, the 8 cross
# blocks alone 4.2 ms, the same factor of about five. In the tiny model the upsampler and heads are a bigger share of
# the work, so its ratio is smaller.
#
# Both orders give the same kind of output; the choice is a config field (`layer_order`) stored in the checkpoint.
# The `AvatarState` of one order cannot be animated by a model of the other (it would be the wrong tensor):

# %%
from avat3r.errors import InputError

m_int = Avat3rModel(cfg.replace(layer_order="interleaved"))
try:
    m_int.animate(Avat3rModel(cfg).encode(*inputs), z)
except InputError as e:
    print("InputError:", e)

# %% [markdown]
# ## 8. Attention of the shipped model (when `weights/` has it)
#
# The untrained tiny model above attends by input similarity only. The shipped `small` model (trained on SynthHeads)
# should concentrate a face token's attention on the corresponding face region in the other views. This cell runs only
# when the shipped checkpoint is present.

# %%
from avat3r.pipeline import default_weights_dir

weights = default_weights_dir()  # weights/ beside the package, or $AVAT3R_WEIGHTS
if not (weights / "config.json").exists():
    print(f"SKIPPED: no shipped checkpoint in {weights} (config.json + model.safetensors); "
          "train one with notebook 05 / `avat3r train`, then rerun this cell.")
else:
    shipped = Avat3rModel.from_pretrained(weights).eval()
    sc = shipped.config
    ds2 = SynthHeadsDataset(num_inputs=4, num_targets=1, input_size=sc.image_size, target_size=sc.image_size,
                            identities=(int(split_seeds("test")[0]),), seed=0)
    s2 = ds2[0]
    # the last self-attention layer, whichever layer order the checkpoint uses
    last = shipped.self_blocks[-1].attn if sc.layer_order == "cached" else shipped.blocks[-1].self_attn
    got = {}
    hk = last.register_forward_hook(lambda mod, a, o: got.setdefault("x", a[0]))
    with torch.no_grad():
        shipped(s2["input_images"][None], s2["prior_positions"][None], s2["prior_confidence"][None],
                plucker_rays(s2["input_cameras"])[None], torch.tensor([sc.presets["neutral"]]))
        A2 = attention_weights(last, got["x"]).mean(1)[0]
    hk.remove()
    g = sc.image_size // sc.patch_size
    show_attention(A2, (g // 2) * g + g // 2, s2["input_images"], sc.patch_size, "shipped model, last self-attention layer")

# %% [markdown]
# ## What to try next
#
# - Change the query token (`qy, qx`) or pick a later layer (`self_blocks[1]`) in section 4.
# - Feed fewer views (`[t[:, :1] for t in inputs]`): the same weights run for any V ≥ 1.
# - Switch on the feature path: `ModelConfig.preset("tiny", features="sapiens-0.3b", feature_dim=32)` and pass random
#   `features` of shape [B, V, 32, 4, 4] to see eqs. 5-6 at work.
# - Raise `conf_threshold` and watch the number of Gaussians drop.
# - Next: **05_training** trains this tiny model for a minute on SynthHeads.
