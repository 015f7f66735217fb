# Source of notebooks/10_lift.ipynb (build with `python notebooks/_build.py`).

# %% [markdown]
# # 10 · One photo -> 3D: GAN inversion, four views, Avat3r
#
# The paper makes Avat3r work from a single image by lifting it with a 3D GAN (Sec. 4.5, Fig. 5): invert the photo
# into the generator, render four views of the lifted head, and give those to Avat3r. This notebook walks through
# `avat3r.lift` on our GGHead generator:
#
# 1. the **front end** gives the photo's camera, head crop and mask;
# 2. the **encoder** (GOAE's design: `w_avg` + coarse / mid / fine corrections from a CNN pyramid) guesses w+;
# 3. a short **optimisation** of w+ against the photo inside its mask (the curve);
# 4. the **correction of the Gaussians the photo sees** (GOAE's occlusion-aware idea on Gaussians);
# 5. the **four views** -> **Avat3r** -> novel views and an expression, next to native V = 1 (the photo alone).
#
# It uses the shipped GGHead weights (`weights/gghead/`: trained here on SynthHeads, soft heads with faces) and a
# lift encoder (`weights/lift/`) when present. No encoder is shipped yet (it trains on a GPU): the notebook trains
# a tiny one for a few seconds, so the optimisation starts near the average head. Without GGHead weights it uses a
# **randomly initialised** `tiny` generator: every mechanism runs, but the lifted head is a blob, not a person.
# About a minute on 2 CPU cores.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from skimage import data

from avat3r.generate import GGHeadGenerator, preset
from avat3r.generate.hub import default_weights_dir, load_generator
from avat3r.lift import InvertConfig
from avat3r.lift.hub import load_encoder
from avat3r.lift.invert import correct_visible, invert_photo, synthesize
from avat3r.lift.route import lifted_views, photo_view
from avat3r.lift.train import TrainConfig, train_encoder
from avat3r.pipeline import load_pipeline

torch.set_num_threads(2)
plt.rcParams["figure.dpi"] = 80

if (default_weights_dir() / "model.safetensors").is_file():
    G = load_generator()
    print("GGHead weights:", default_weights_dir())
else:
    torch.manual_seed(0)
    G = GGHeadGenerator(preset("tiny")).eval().requires_grad_(False)
    print("NOTE: no trained GGHead weights here -> a randomly initialised 'tiny' generator (mechanics only)")
pipe = load_pipeline(device="cpu")
print(pipe)

def show_row(images, titles, height=2.4):
    fig, axes = plt.subplots(1, len(images), figsize=(height * len(images), height + 0.3))
    for a, im, t in zip(np.atleast_1d(axes), images, titles):
        a.imshow(np.clip(np.asarray(im), 0, 1)); a.set_title(t, fontsize=9); a.axis("off")
    plt.tight_layout(); plt.show()

# %% [markdown]
# ## 1. The photo through the front end
#
# Face landmarks -> camera by PnP against the head template (head-centric world, OpenCV), a head-centric square
# crop with its intrinsics, and a mask. The generator renders into exactly this camera, so photo and render line up.

# %%
res = photo_view(data.astronaut(), size=pipe.image_size)
view = res.capture
from avat3r.frontend.pose import azimuth_elevation

az, el = azimuth_elevation(view.cameras.world_to_cam[0].double().numpy())
print("\n".join(res.report))
print(f"camera: azimuth {az:.1f} deg, elevation {el:.1f} deg")
show_row([view.images[0], view.masks[0][..., None].repeat(3, -1)], ["head crop (background removed)", "mask"])

# %% [markdown]
# ## 2. The encoder: image (+ mask, + camera angles) -> w+
#
# A small CNN pyramid; the deepest level predicts one base w for every layer plus the **coarse** ws (low-resolution
# synthesis layers: shape), the middle level the **mid** ws, the shallowest the **fine** ws (texture, colour).
# Output = `w_avg + w_std * (base + correction)`; the output layers start at zero, so an untrained encoder returns
# the average head. It is trained on the generator's own samples (true latent known: loss on w+ and on re-renders
# from the same and a novel view) and on SynthHeads renders (image loss only).

# %%
enc = load_encoder(G)
if enc is None:
    print("no shipped encoder for this generator: training a tiny one for a few steps (mechanics only)")
    t0 = time.time()
    enc, rows = train_encoder(G, steps=6, tc=TrainConfig(batch=3, image_size=32, synth_frac=0.34, synth_identities=1),
                              preset="tiny")
    print(f"{len(rows)} steps in {time.time() - t0:.1f} s")
    plt.figure(figsize=(5, 2.5))
    plt.plot([r["loss"] for r in rows], label="total"); plt.plot([r["w"] for r in rows], label="w+ (normalised MSE)")
    plt.xlabel("step"); plt.legend(); plt.title("encoder training"); plt.show()
else:
    print("shipped encoder:", enc.config)
gc, gm, gf = enc.config.groups()
print(f"ws groups: coarse {list(gc)}, mid {list(gm)}, fine {list(gf)}; {sum(p.numel() for p in enc.parameters()):,} parameters")

# %% [markdown]
# ## 3. Optimisation of w+ against the photo (inside its mask)
#
# A few Adam steps on w+ (in units of the ws' spread): L1 between the render and the masked photo plus L1 between
# the rendered alpha and the mask, with a pull toward the encoder's guess that keeps the unseen side plausible.

# %%
cfg = InvertConfig(steps=5, render_size=64, correct=0.0)
t0 = time.time()
result = invert_photo(G, enc, view.images[0], view.masks[0], view.cameras, cfg)
print(f"{time.time() - t0:.1f} s;", "; ".join(result.report))
plt.figure(figsize=(5, 2.5)); plt.plot(result.curve, "o-"); plt.xlabel("step"); plt.ylabel("masked L1")
plt.title("optimisation curve"); plt.show()
show_row([view.images[0], result.render_before, result.render_after],
         ["photo", "encoder's guess", f"after {cfg.steps} steps"])

# %% [markdown]
# ## 4. Correcting the Gaussians the photo sees
#
# GOAE corrects the triplane features the image sees with the image's own features. On Gaussians: a Gaussian is
# *seen* when its centre projects inside the mask and lies on the rendered surface (not behind it); its colour takes
# the photo's residual at that pixel (three times, against a fresh render, because a pixel blends several
# Gaussians). The unseen side keeps the generator's colours.

# %%
with torch.no_grad():
    out0 = synthesize(G, result.ws)
    out1, n_seen = correct_visible(G, out0, view.images[0], view.masks[0], view.cameras, strength=1.0)
    before, _ = G.render(out0, view.cameras, index=0)
    after, _ = G.render(out1, view.cameras, index=0)
    from avat3r.cameras import orbit_camera

    back0, _ = G.render(out0, orbit_camera(150, 5, 128), index=0)
    back1, _ = G.render(out1, orbit_camera(150, 5, 128), index=0)
print(f"{n_seen} of {G.num_gaussians} Gaussians seen and corrected")
show_row([view.images[0], before[0], after[0], back0[0], back1[0]],
         ["photo", "before correction", "after", "back, before", "back, after"])

# %% [markdown]
# ## 5. Four views -> Avat3r -> an animated avatar (and native V = 1 beside it)
#
# The lifted head is rendered from the GGHead route's four input views (azimuth -60, -20, 20, 60), with masks and
# cameras: a Capture like any other. `avat3r lift photo.jpg -o DIR --mode lift` and the app's "One photo" tab run
# these steps. Compare the two rows: since the session-9 Avat3r weights (trained on 1-4 input views), native V = 1 is
# about as good as the lift on SynthHeads and better on real photos, so it is the default mode
# (docs/LIFT.md, "Which mode").

# %%
images, masks, cams, names = lifted_views(G, out1, pipe.image_size)
show_row(list(images), names)
from avat3r.capture import Capture

t0 = time.time()
lifted = pipe.reconstruct(Capture(images, cams, names, masks))
native = pipe.reconstruct(view)
print(f"two reconstructions in {time.time() - t0:.1f} s")
angles = (-60, -30, 0, 30, 60)
show_row([lifted.render((az + a, 5.0)) / 255 for a in angles], [f"lift {a:+d}°" for a in angles])
show_row([native.render((az + a, 5.0)) / 255 for a in angles], [f"native {a:+d}°" for a in angles])
smile = "smile" if "smile" in pipe.expression_space.presets else None
show_row([lifted.render((20.0, 5.0), smile) / 255, native.render((20.0, 5.0), smile) / 255],
         [f"lift, {smile}", f"native, {smile}"])
