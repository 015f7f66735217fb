# Source of notebooks/05_training.ipynb (build with `python notebooks/_build.py`).

# %% [markdown]
# # 05 · Training: a short run on SynthHeads, on a CPU
#
# **What this notebook teaches** (paper Sec. 4.1, eqs. 14-18):
#
# 1. the training sample: 4 input views (different timesteps), the prior, supervision views of a target expression;
# 2. the loop of `avat3r.train.Trainer`: network → Gaussians (eq. 13) → splatting into the supervision cameras
#    (eq. 14) → L1 + SSIM (+ LPIPS late in training) against the ground truth → Adam;
# 3. a **real, short run** of the `tiny` preset on a handful of SynthHeads samples (about a minute on 2 CPU cores),
#    its loss curve, and renders **before and after**;
# 4. how the real multi-GPU run is launched.
#
# A minute of CPU training cannot make a good avatar model; what it shows is that the whole differentiable path
# learns (the loss drops, renders sharpen towards the targets). The shipped `small` model was trained the same way,
# for longer (docs/TRAINING.md).

# %%
import tempfile
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

from avat3r.data.batch import collate, render_batch
from avat3r.data.sampler import SynthHeadsDataset
from avat3r.data.synthheads import split_seeds
from avat3r.train import TrainConfig
from avat3r.train.trainer import Trainer

torch.set_num_threads(2)
plt.rcParams["figure.dpi"] = 80
SIZE = 64          # tiny preset: 64² inputs
STEPS = 60         # optimisation steps of the demo run (about a minute on 2 cores)

# %% [markdown]
# ## 1. A small, fixed training set
#
# The real run draws a fresh sample at every step (any of a million identities, random expressions, cameras).
# To fit a CPU minute we pre-generate 4 samples of 2 identities (input 64², 3 supervision views of 64²) and let the
# trainer cycle through them. Any map-style dataset works: here a plain Python list.

# %%
t0 = time.perf_counter()
ds = SynthHeadsDataset(num_inputs=4, num_targets=3, input_size=SIZE, target_size=SIZE,
                       identities=tuple(int(s) for s in split_seeds("train")[30:32]), seed=0)
samples = [ds[i] for i in range(4)]
held_out = SynthHeadsDataset(num_inputs=4, num_targets=3, input_size=SIZE, target_size=SIZE,
                             identities=tuple(int(s) for s in split_seeds("train")[30:32]), seed=1)[0]
print(f"5 samples generated in {time.perf_counter() - t0:.0f} s")

# %% [markdown]
# ## 2. The run configuration
#
# `TrainConfig` carries everything (model preset and overrides, data, optimiser, loss weights) and is saved inside
# every checkpoint. `TrainConfig.from_run(name)` gives the named runs of the paper's ablations (`full`, `no_pos_skip`,
# `no_prior`, `consistent_inputs`, ...). Here: the `full` recipe with the `tiny` preset, a higher learning rate than
# the paper's 5e-5 (a short run needs bigger steps), fp32 on the CPU, no LPIPS (its weights need a download).

# %%
out_dir = tempfile.mkdtemp(prefix="avat3r_run_")
cfg = TrainConfig.from_run(
    "full", model_preset="tiny", input_size=SIZE, supervision_size=SIZE, num_supervision=3,
    lr=1e-3, max_steps=STEPS, lambda_lpips=0.0, num_workers=0, log_every=2, ckpt_every=0, image_every=0,
    out_dir=out_dir, precision="fp32", checkpoint_format="compact",
)
print({k: v for k, v in cfg.to_dict().items() if k in ("run", "model_preset", "lr", "max_steps", "lambda_l1",
                                                        "lambda_ssim", "lambda_lpips", "batch_size", "num_inputs")})
trainer = Trainer(cfg, dataset=samples, device="cpu", progress=False, tensorboard=False)
print(f"model: {trainer.net.num_parameters():,} parameters, expression code of {trainer.model_config.expression_dim} dims")

# %% [markdown]
# ### Before training
#
# Thanks to the skips, the untrained network already places a Gaussian at each prior point with the pixel's colour
# (notebook 04), but their scales and opacities are arbitrary, so renders into the supervision views are blotchy.

# %%
def predict(sample):
    with torch.no_grad():
        trainer.net.eval()
        return render_batch(trainer.net, collate([sample]))[0]  # [T, 3, H, W]

before_train, before_held = predict(samples[0]), predict(held_out)

# %% [markdown]
# ## 3. Train
#
# `trainer.fit()` runs the loop; `trainer.history` holds the loss terms every `log_every` steps.

# %%
t0 = time.perf_counter()
summary = trainer.fit(save_final=True)
print(f"{summary['steps']} steps in {time.perf_counter() - t0:.0f} s ({summary['it_per_s']:.2f} it/s); "
      f"checkpoint {summary['checkpoint']}")

# %%
hist = trainer.history
steps = [h["step"] for h in hist]
fig, axes = plt.subplots(1, 3, figsize=(12, 3))
axes[0].plot(steps, [h["loss"] for h in hist]); axes[0].set_title("total loss")
axes[1].plot(steps, [h["l1"] for h in hist], color="tab:orange"); axes[1].set_title("L1")
axes[2].plot(steps, [h["ssim"] for h in hist], color="tab:green"); axes[2].set_title("SSIM (higher is better)")
for a in axes:
    a.set_xlabel("step"); a.grid(alpha=0.3)
plt.tight_layout(); plt.show()
print(f"loss: first logged {hist[0]['loss']:.4f} -> last {hist[-1]['loss']:.4f}")

# %% [markdown]
# ## 4. Before / after
#
# Rows: the ground-truth supervision views, the untrained network's renders, the trained network's renders;
# left a training sample, right a sample of the same identities the run never saw (new expressions and cameras).

# %%
after_train, after_held = predict(samples[0]), predict(held_out)

def row(imgs):
    return np.concatenate([np.clip(im.permute(1, 2, 0).numpy(), 0, 1) for im in imgs], axis=1)

fig, axes = plt.subplots(3, 2, figsize=(12, 6.5))
for col, (s, b, a, name) in enumerate([(samples[0], before_train, after_train, "training sample"),
                                        (held_out, before_held, after_held, "unseen sample")]):
    for r, (imgs, label) in enumerate([(s["target_images"], "ground truth"), (b, "before"), (a, f"after {STEPS} steps")]):
        axes[r, col].imshow(row(imgs)); axes[r, col].set_title(f"{name}: {label}", fontsize=9); axes[r, col].axis("off")
plt.tight_layout(); plt.show()

l1 = lambda p, s: float((p - s["target_images"]).abs().mean())  # noqa: E731
print(f"L1 training sample: {l1(before_train, samples[0]):.4f} -> {l1(after_train, samples[0]):.4f}")
print(f"L1 unseen sample:   {l1(before_held, held_out):.4f} -> {l1(after_held, held_out):.4f}")

# %% [markdown]
# The checkpoint folder holds the weights, optimiser state and both configs; `avat3r.train.export` turns it into the
# shipped format (`config.json` + fp16 `model.safetensors`) that `avat3r.load_pipeline(path)` loads.

# %% [markdown]
# ## 5. The real run (GPUs, markdown only)
#
# The same trainer runs under `torchrun` with DDP over 1..N GPUs (bf16 autocast, per-rank deterministic samples,
# exact resume). The paper trains for 3.5M steps with batch 1 on each of 8 GPUs, LPIPS from step 3M:
#
# ```bash
# # 8 GPUs on one node, paper preset on SynthHeads (512² inputs, 8 x 667² supervision views)
# torchrun --nproc_per_node=8 -m avat3r.train --named-run full --preset paper --out runs/paper \
#     --lpips-weights weights/lpips --ckpt-every 5000
#
# # the shipped CPU model: the small preset, on 1 GPU, with a time budget, exported for the app
# python -m avat3r.train --run full --preset small --out runs/small --max-minutes 60 --export weights/
#
# # resume after an interruption (same samples, same losses as an uninterrupted run)
# torchrun --nproc_per_node=8 -m avat3r.train --resume auto --out runs/paper
#
# # an ablation of Tables 2-3, e.g. without the position skip
# torchrun --nproc_per_node=8 -m avat3r.train --named-run no_pos_skip --preset paper --out runs/no_pos_skip
# ```
#
# Multi-node: add `--nnodes`, `--node_rank` and `--rdzv_endpoint` as usual for torchrun. Training on Ava-256 instead of
# SynthHeads: `--data ava256 --data-root /path/to/ava256`.

# %% [markdown]
# ## 6. Two training options beyond the paper (not yet used for the shipped weights)
#
# **The expression region** (`TrainConfig.lambda_expression`). The shipped model barely animates: gaze and blinks change
# a few hundred pixels of a supervision image, and a plain L1 over the whole image hardly sees them
# (docs/eval/learning_curve.md). With `expression_region=True` SynthHeads renders every target a second time at the
# neutral expression; the pixels that differ are the region, and the L1 term weighs them `1 + lambda` times.

# %%
rs = SynthHeadsDataset(num_inputs=2, num_targets=3, input_size=SIZE, target_size=SIZE, expression_region=True,
                       identities=tuple(int(s) for s in split_seeds("train")[30:31]), seed=0)[0]
fig, axs = plt.subplots(2, 3, figsize=(7, 4.6))
for t in range(3):
    axs[0, t].imshow(rs["target_images"][t].permute(1, 2, 0).clamp(0, 1).numpy())
    axs[1, t].imshow(rs["target_expression_region"][t, 0].numpy(), cmap="magma", vmin=0, vmax=1)
    axs[1, t].set_title(f"{100 * float(rs['target_expression_region'][t].mean()):.1f} % of the view", fontsize=8)
for a in axs.flat:
    a.axis("off")
fig.suptitle("supervision views (top) and the pixels their expression changes (bottom)", fontsize=9)
plt.tight_layout()
plt.show()

# %% [markdown]
# **View dropout** (`TrainConfig.view_dropout`). The paper trains and evaluates with 4 views, so one or two views are
# outside what the network has seen. With `view_dropout = p`, a share p of the steps keeps only the first k views
# (k in 1..V-1, drawn from the seed and the step). The visual hull is carved again from the kept views
# (`Batch.with_views`), as inference does. Below, one sample's prior depth with 4, 2 and 1 views: fewer views give a
# looser hull.

# %%
b4 = collate([samples[0]])
fig, axs = plt.subplots(1, 3, figsize=(7, 2.6))
for a, k in zip(axs, (4, 2, 1)):
    bk = b4.with_views(k)
    depth = (bk.positions[0, 0] - bk.input_cameras[0].centers[0][:, None, None]).norm(dim=0) * bk.confidence[0, 0, 0]
    a.imshow(depth.numpy(), cmap="viridis")
    a.set_title(f"view 0's hull depth from {k} view{'s' * (k > 1)}", fontsize=8)
    a.axis("off")
plt.tight_layout()
plt.show()

# %% [markdown]
# Both are one flag on the command line: `--set lambda_expression=5 view_dropout=0.5`.

# %% [markdown]
# ## What to try next
#
# - Double `STEPS` or the number of samples and compare the unseen-sample L1.
# - Train an ablation: `TrainConfig.from_run("no_pos_skip", ...)` or `"consistent_inputs"` with the same budget.
# - Set `num_inputs=2` in the dataset and the config: the same network handles any number of views.
# - Next: **06_avatar_from_photos** uses the shipped model on real photos.
