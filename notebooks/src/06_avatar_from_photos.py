# Source of notebooks/06_avatar_from_photos.ipynb (build with `python notebooks/_build.py`).

# %% [markdown]
# # 06 · An avatar from your photos
#
# **What this notebook teaches**: the whole product path, through the same `avat3r.Pipeline` the CLI and the web app
# use (`avat3r.load_pipeline()`):
#
# 1. the **front end** on real photos: face detection, 68 landmarks, a camera per photo (PnP against a 3D template),
#    a head-centric square crop and a mask (`avat3r.frontend`), first on one photo (`skimage.data.astronaut()`), then on a
#    real multi-view set (three photos of one person, when `../../shared/realdata` is there);
# 2. the **shipped model** (`weights/`) reconstructing an avatar in one forward pass;
# 3. an **interactive viewer**: expression sliders and the view angle (ipywidgets);
# 4. **exports**: a standard 3DGS `.ply` (opens in splat viewers and Gradio's `Model3D`) and an `.mp4` turntable.
#
# Everything runs offline on a CPU in a minute or two.

# %%
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

import avat3r
from avat3r.errors import CheckpointError

torch.set_num_threads(2)
plt.rcParams["figure.dpi"] = 80
OUT = Path(tempfile.mkdtemp(prefix="avat3r_nb06_"))
REALDATA = Path("../../shared/realdata")  # relative to notebooks/ (the project's real photos; not in the repository)

# %% [markdown]
# ## 1. Load the pipeline
#
# `avat3r.load_pipeline()` reads the shipped checkpoint from `weights/` (`config.json` + `model.safetensors`; or
# `$AVAT3R_WEIGHTS`, a folder, or a Hub repo id). The config says which position prior the weights were trained with
# and carries the expression space (names and presets).

# %%
try:
    pipe = avat3r.load_pipeline(device="cpu")
    TRAINED = True
except CheckpointError as e:
    TRAINED = False
    print("!" * 100)
    print("!! NO SHIPPED WEIGHTS:", e)
    print("!! Using a FRESHLY INITIALISED `small` model instead. It runs the same code path, but it has learnt nothing:")
    print("!! it reproduces the position prior's point cloud in the photos' colours, and expressions do nothing.")
    print("!" * 100)
    from avat3r.data.synthheads import expression_space
    from avat3r.model import Avat3rModel, ModelConfig
    from avat3r.pipeline import Pipeline

    space = expression_space()
    torch.manual_seed(0)
    cfg = ModelConfig.preset("small", expression_dim=space["dim"], expression_names=space["names"],
                             expression_presets={k: v for k, v in space["presets"].items() if k != "neutral"})
    pipe = Pipeline(Avat3rModel(cfg), source="untrained small model (no weights/)")
print(pipe)
print("expression presets:", ", ".join(pipe.expression_space.presets))

# %% [markdown]
# ## 2. Input sources: every route into an avatar
#
# Photos, a video, a capture folder (or its zip) and a procedural SynthHeads head are *sources* that each turn their
# input into a `Capture` (views + masks + cameras). The app, the CLI and this notebook list them from one registry;
# `pipe.reconstruct(x)` picks the source from the input, `pipe.reconstruct(x, source="synth")` names one.

# %%
from avat3r.sources import list_sources

for s in list_sources():
    print(f"{s.name:<8} takes {s.takes:<6} {s.label}")

# %% [markdown]
# ## 3. One photo: the front end
#
# `pipe.reconstruct(images)` runs the photos source (the front end), the prior, and the network's
# expression-independent `encode` once.
# The avatar keeps what the front end did: a report (one line a step), a preview image (the crop with landmarks, the mask,
# and a top view of the estimated camera) and the `Capture` the network saw.
#
# The photo front end needs the offline face detector (`pip install "avat3r[faces]"`: dlib's HOG/CNN detector and
# landmark models). Without it, this notebook falls back to a SynthHeads capture folder, which has its own cameras.

# %%
from skimage import data as skdata

from avat3r.frontend import faces_available

FACES = faces_available()
if FACES:
    photo = skdata.astronaut()  # a real photo (NASA, public domain), 512x512
    t0 = time.perf_counter()
    avatar = pipe.reconstruct([photo])
    print(f"reconstructed from 1 photo in {time.perf_counter() - t0:.1f} s")
else:
    print("SKIPPED the photo front end: the face detector is not installed (pip install 'avat3r[faces]'); "
          "using a SynthHeads head (the synth source) instead")
    avatar = pipe.reconstruct(0, source="synth", views=3)
print("\n".join(avatar.report))
if avatar.preview is not None:
    plt.figure(figsize=(12, 4)); plt.imshow(avatar.preview); plt.axis("off"); plt.title("front-end preview"); plt.show()

# %%
cap = avatar.capture
fig, axes = plt.subplots(1, 4, figsize=(12, 3))
axes[0].imshow(cap.images[0]); axes[0].set_title("crop the network sees")
axes[1].imshow(cap.masks[0], cmap="gray"); axes[1].set_title("mask")
axes[2].imshow(np.clip(avatar.prior.numpy().positions[0] / 0.3 + 0.5, 0, 1) * (cap.masks[0] > 0.5)[..., None])
axes[2].set_title("prior positions (xyz→rgb)")
axes[3].imshow(avatar.render((0, 0), size=192)); axes[3].set_title("avatar, frontal render")
for a in axes:
    a.axis("off")
plt.tight_layout(); plt.show()

# %% [markdown]
# With one photo the back of the head is unseen: the prior falls back on a head proxy fitted to the silhouette, and the
# network has to hallucinate the rest. Novel views show how far that goes:

# %%
t0 = time.perf_counter()
frames = [avatar.render((az, 5), size=128) for az in (-60, -30, 0, 30, 60)]
print(f"5 renders in {time.perf_counter() - t0:.1f} s")
plt.figure(figsize=(13, 3)); plt.imshow(np.concatenate(frames, 1)); plt.axis("off")
plt.title("azimuth -60 ... +60 (one input photo)"); plt.show()

# %% [markdown]
# ## 4. Several photos of one person
#
# The paper's setting is a few views. `../../shared/realdata/Fanziapril_mvfnet/data/imgs/` has three photos of one
# person (front, left, right; from the MVF-Net repository, see its MANIFEST.md). The cell skips, saying why, when that
# folder or the face detector is missing.

# %%
mv_dir = REALDATA / "Fanziapril_mvfnet" / "data" / "imgs"
mv_files = [mv_dir / f"{n}.jpg" for n in ("front", "left", "right")]
multi = None
if not all(p.exists() for p in mv_files):
    print(f"SKIPPED: the multi-view photos are not at {mv_dir.resolve()} (they live outside the repository)")
elif not FACES:
    print("SKIPPED: the face detector is not installed (pip install 'avat3r[faces]')")
else:
    t0 = time.perf_counter()
    multi = pipe.reconstruct([str(p) for p in mv_files])
    print(f"reconstructed from {len(mv_files)} photos in {time.perf_counter() - t0:.1f} s")
    print("\n".join(multi.report))
    if multi.preview is not None:
        plt.figure(figsize=(13, 4)); plt.imshow(multi.preview); plt.axis("off"); plt.show()
    views = [multi.render((az, 5), size=128) for az in (-50, -25, 0, 25, 50)]
    plt.figure(figsize=(13, 3)); plt.imshow(np.concatenate(views, 1)); plt.axis("off")
    plt.title("three input photos: novel views"); plt.show()
if multi is not None:
    avatar = multi  # the viewer and exports below use the best avatar we have

# %% [markdown]
# ## 5. Interactive viewer
#
# Expression sliders (a few named dimensions of the model's expression space) and the view angle. Each change
# runs only the expression-dependent layers on the cached state (`avatar.animate`) and renders one view (about a second
# on a CPU). Headless (CI), the widgets have no front end, so the cell also renders the default view directly.

# %%
import ipywidgets as widgets
from IPython.display import display

space = pipe.expression_space
shown = [n for n in ("jaw_open", "smile", "blink_left", "brow_raise", "pucker") if n in space.names] or space.names[:5]

def code_from(values):
    z = np.zeros(space.dim, np.float32)
    for name, v in values.items():
        z[space.names.index(name)] = v
    return z

def view(azimuth=20.0, elevation=5.0, **values):
    return avatar.render((azimuth, elevation), expression=code_from(values), size=160)

def show_view(azimuth=20.0, elevation=5.0, **values):
    plt.figure(figsize=(3.5, 3.5)); plt.imshow(view(azimuth, elevation, **values)); plt.axis("off"); plt.show()

sliders = {n: widgets.FloatSlider(value=0.0, min=0.0, max=1.0, step=0.1, description=n, continuous_update=False) for n in shown}
sliders["azimuth"] = widgets.FloatSlider(value=20.0, min=-90, max=90, step=5, description="azimuth", continuous_update=False)
sliders["elevation"] = widgets.FloatSlider(value=5.0, min=-30, max=45, step=5, description="elevation", continuous_update=False)
display(widgets.interactive(show_view, **sliders))

default = view(20.0, 5.0, **{shown[0]: 0.6})  # headless default, outside the callback
plt.figure(figsize=(3.5, 3.5)); plt.imshow(default); plt.axis("off"); plt.title(f"{shown[0]} = 0.6, azimuth 20"); plt.show()

# %% [markdown]
# Presets, side by side (for a model trained on SynthHeads: `smile`, `surprise`, ...):

# %%
presets = [p for p in ("neutral", "smile", "surprise", "jaw_open", "wink_left") if p in space.presets]
row = [avatar.render((15, 0), expression=p, size=128) for p in presets]
plt.figure(figsize=(13, 3)); plt.imshow(np.concatenate(row, 1)); plt.axis("off"); plt.title(" | ".join(presets)); plt.show()
if not TRAINED:
    print("(untrained model: expressions change nothing yet; see the note at the top)")

# %% [markdown]
# ## 6. Exports: `.ply` and video
#
# `avatar.save_ply` writes the standard 3DGS layout in metres, y-up (notebook 01); `avatar.turntable` and
# `avatar.animation` give frames; `avat3r.io.video.write_video` writes `.mp4` (or `.gif` by suffix).

# %%
from avat3r.io.ply import read_ply_array
from avat3r.io.video import write_video
from avat3r.pipeline import expression_sequence

ply = avatar.save_ply(OUT / "head.ply", expression=presets[min(1, len(presets) - 1)])
print(f"{ply}: {ply.stat().st_size / 1e6:.1f} MB, {len(read_ply_array(ply)):,} Gaussians")

t0 = time.perf_counter()
turn = avatar.turntable(8, 96)
mp4 = write_video(OUT / "turntable.mp4", turn, fps=8)
codes = expression_sequence(space, presets[:3], frames_per_step=3)
anim = avatar.animation(codes, (20, 5), size=96)
mp4b = write_video(OUT / "animation.mp4", anim, fps=8)
print(f"{len(turn)} + {len(anim)} frames rendered and written in {time.perf_counter() - t0:.1f} s:")
for p in (mp4, mp4b):
    print(f"  {p} ({Path(p).stat().st_size / 1e3:.0f} kB)")
plt.figure(figsize=(13, 2)); plt.imshow(np.concatenate(turn, 1)); plt.axis("off"); plt.title("turntable frames"); plt.show()

# %% [markdown]
# The same from the command line:
#
# ```bash
# avat3r reconstruct front.jpg left.jpg right.jpg -o out/      # out/head.ply + out/turntable.mp4 + out/preview.png
# avat3r animate front.jpg left.jpg right.jpg --expressions neutral,smile,surprise -o smile.mp4
# python app.py                                                # the web demo (Gradio), same pipeline
# ```
#
# ## What to try next
#
# - Your own photos: `pipe.reconstruct(["me1.jpg", "me2.jpg", ...])` (1 to 8; different head poses help most).
# - A video: `pipe.reconstruct("clip.mp4")` picks diverse frames.
# - A capture folder or its zip: `pipe.reconstruct("capture/")` uses its cameras, masks and expressions as they are
#   (only fitted to the model's input size); `pipe.reconstruct(3, source="synth")` makes a procedural head.
# - Longer, smoother videos: `avatar.turntable(48, 256)` and `expression_sequence(space, [...], frames_per_step=12)`
#   (a few seconds a frame on a CPU; kept short here).
# - Open `head.ply` (path printed above) in a splat viewer or in the app's 3D view.
# - Next: **07_evaluation**, how the model is measured.
