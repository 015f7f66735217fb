# Source of notebooks/08_driving.ipynb (build with `python notebooks/_build.py`).

# %% [markdown]
# # 08 · Driving an avatar with a video
#
# **What this notebook teaches**: how `avat3r drive` (and the app's "4 · Drive" tab) turns a person's video
# into expression codes and head poses for an avatar, step by step, with the package's own code (`avat3r.drive`):
#
# 1. **landmarks**: dlib's 68 face points on each frame (`avat3r.frontend.faces`);
# 2. **head pose**: PnP against the project's 3D landmark template (`avat3r.frontend.pose`), as yaw/pitch/roll;
# 3. **pose-free features**: what the rigid template cannot explain, in metres in the head's axes, minus the
#    person's neutral face (the first frames);
# 4. **the code**: a small regressor trained on SynthHeads, where the true code is known (`weights/drive/`),
#    plus gaze from the irises measured against face-fixed eyeballs, smoothed over time with a One-Euro filter;
#    how close it gets on faces it never saw;
# 5. **the driven avatar**: the shipped model under those codes and poses.
#
# It uses a real talking-head clip from `../../shared/realdata` when present, else a still photo
# (`skimage.data.astronaut()`) repeated, which shows the machinery but not the motion. CPU, offline, about a minute.

# %%
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

import avat3r
from avat3r.drive.regressor import load_regressor
from avat3r.drive.video import CALIBRATION_FRAMES, code_for_space, drive_video
from avat3r.io.video import write_video

torch.set_num_threads(2)
plt.rcParams["figure.dpi"] = 80
OUT = Path(tempfile.mkdtemp(prefix="avat3r_nb08_"))
REALDATA = Path("../../shared/realdata")
CLIP = REALDATA / "KwaiVGI_LivePortrait/assets/examples/driving/d0.mp4"
N = 40  # frames used here (the CLI takes up to avat3r.limits.MAX_VIDEO_DRIVE_FRAMES)

if CLIP.is_file():
    video = CLIP
else:  # no real clip here: a still portrait as a 'video' (the codes stay near neutral)
    import skimage.data

    video = write_video(OUT / "still.mp4", [skimage.data.astronaut()] * 12, fps=12)
    N = 12
print("driving video:", video)

# %% [markdown]
# ## 1-4. The driver, frame by frame
#
# `drive_video` runs the whole chain and keeps every intermediate: landmarks [T, 68, 2], poses [T, 3] (degrees),
# codes [T, C] (the SynthHeads dimensions the landmarks can see, then `gaze_x`, `gaze_y` when
# `weights/drive/gaze.json` is there). The first `CALIBRATION_FRAMES` frames with a face are the person's neutral
# (face and gaze): start a driving video with a relaxed face, looking at the camera.

# %%
reg = load_regressor()  # weights/drive: trained on SynthHeads (weights/drive/training.json says how)
res = drive_video(video, regressor=reg, max_frames=N)
print("\n".join(res.report))
print(f"code extraction: {res.ms_per_frame:.0f} ms per frame; calibration frames: {CALIBRATION_FRAMES}")

from avat3r.drive.video import iter_video  # noqa: E402

frames = [f for _, f in iter_video(video, N)]
fig, axes = plt.subplots(1, 4, figsize=(14, 4))
for ax, i in zip(axes, np.linspace(0, len(frames) - 1, 4).astype(int)):
    ax.imshow(frames[i])
    if res.found[i]:
        ax.scatter(*res.landmarks[i].T, s=4, c="lime")
    ax.set_title(f"frame {i}")
    ax.axis("off")
plt.show()

# %% [markdown]
# ## Head pose and expression code over time
#
# The pose drives the avatar's rigid motion; the code its expression. Dimensions that never leave zero are
# hidden from the plot.

# %%
t = np.arange(len(res.codes)) / res.fps
fig, (a1, a2) = plt.subplots(1, 2, figsize=(14, 3.5))
for j, name in enumerate(["yaw", "pitch", "roll"]):
    a1.plot(t, res.poses[:, j], label=name)
a1.set_xlabel("s"), a1.set_ylabel("degrees"), a1.legend(), a1.set_title("head pose")
active = [j for j in range(res.codes.shape[1]) if np.abs(res.codes[:, j]).max() > 0.05]
for j in active:
    a2.plot(t, res.codes[:, j], label=res.names[j])
a2.set_xlabel("s"), a2.set_ylim(-1.05, 1.05), a2.legend(fontsize=7, ncol=2), a2.set_title("expression code")
plt.show()

# %% [markdown]
# ## Gaze: the iris against a face-fixed eyeball
#
# dlib's eye points follow the iris (on renders the corners slide towards where the eye looks), so gaze is not
# measured against them. Instead the eyeball is a 12 mm sphere fixed in the head (the template's eyeball centres),
# placed in the frame by the PnP head pose (blue); the iris centre (red) is the darkest disc inside dlib's eye
# outline; the camera ray through it meets the sphere, which gives the eye's direction in the head's axes. Minus
# the calibration frames' direction and times a gain fitted on SynthHeads renders (`gaze.json`), that is the code's
# gaze. Only `gaze_x` is read: up-down was no better than always 0 on SynthHeads (docs/DRIVE.md has the numbers).

# %%
from avat3r.drive.features import default_intrinsics, landmark_features  # noqa: E402
from avat3r.drive.gaze import EYES, iris_centres  # noqa: E402

i = int(np.flatnonzero(res.found)[len(np.flatnonzero(res.found)) // 2])
lm = res.landmarks[i].astype(np.float64)
K = default_intrinsics(*res.size)
T = landmark_features(lm, K)[1].world_to_cam
iris = iris_centres(frames[i], lm)
centres = [(K @ (T[:3, :3] @ c + T[:3, 3]))[:2] / (T[:3, :3] @ c + T[:3, 3])[2] for _, c in EYES]
x0, y0 = lm[36:48].min(0) - 25
x1, y1 = lm[36:48].max(0) + 25
plt.figure(figsize=(8, 3))
plt.imshow(frames[i])
plt.scatter(*lm[36:48].T, s=10, c="lime", label="dlib eye outline")
plt.scatter(*np.array(centres).T, s=40, c="blue", label="eyeball centre (PnP)")
plt.scatter(*iris.T, s=40, c="red", label="iris centre")
plt.xlim(x0, x1), plt.ylim(y1, y0), plt.legend(fontsize=7), plt.axis("off"), plt.title(f"frame {i}")
plt.show()
if "gaze_x" in res.names:
    print("gaze_x over the clip: min %.2f, max %.2f" % (res.codes[:, res.names.index("gaze_x")].min(),
                                                      res.codes[:, res.names.index("gaze_x")].max()))

# %% [markdown]
# ## 5. The driven avatar
#
# The shipped model (`weights/`) reconstructs a SynthHeads example; the driven codes are mapped onto its expression
# space by dimension name, and the head is turned by the driver's pose about its centre. Side by side: driver
# (with landmarks) and avatar, for a few frames (a CPU renders about a frame a second; `avat3r drive` writes the
# whole video).

# %%
from avat3r.drive.render import _fit, draw_landmarks, driven_frames  # noqa: E402

pipe = avat3r.load_pipeline(device="cpu")
avatar = pipe.reconstruct("../demo/examples/synth_1")
codes = code_for_space(res.codes, res.names, pipe.expression_space)
pick = np.linspace(0, len(codes) - 1, 4).astype(int)
renders = list(driven_frames(avatar, codes[pick], res.poses[pick], size=192))
fig, axes = plt.subplots(2, 4, figsize=(14, 7))
for k, i in enumerate(pick):
    left, lm = _fit(frames[i], 192, res.landmarks[i] if res.found[i] else None)
    axes[0, k].imshow(draw_landmarks(left, lm))
    axes[1, k].imshow(renders[k])
    axes[0, k].set_title(f"frame {i}")
    for ax in axes[:, k]:
        ax.axis("off")
plt.show()

# %% [markdown]
# ## How good is the code? (SynthHeads, where the truth is known)
#
# On a real video there is no true code to compare with. On SynthHeads there is: `avat3r.drive.train.make_samples`
# makes landmarks of a head the regressor never saw (the test split) under random expressions, head poses and
# cameras, exactly as its training data was made. Per dimension: the regressor's mean error against always
# answering "neutral" (the code is sparse, so that trivial answer is already close on most dimensions).
# These landmarks are carried by the rig. The regressor was also trained on dlib's landmarks detected on renders
# of turned heads (`avat3r.drive.rendered`), because dlib does not behave like fixed surface points (eye corners
# and jaw slide to the outline, eye points follow the iris); the second plot scores it on such renders of the same
# unseen identity. Through mp4-encoded video (`bench/drive.py`) the figures are in docs/DRIVE.md.

# %%
from avat3r.data.identity import split_seeds  # noqa: E402
from avat3r.drive.synth import landmark_gaussians  # noqa: E402
from avat3r.drive.train import make_samples  # noqa: E402

seed = int(split_seeds("test")[0])
feats, true, _ = make_samples(seed, landmark_gaussians(seed), 80, np.random.default_rng(0))
pred = reg.predict(feats)
err, zero = np.abs(pred - true).mean(0), np.abs(true).mean(0)
x = np.arange(len(reg.config.names))
plt.figure(figsize=(14, 3.5))
plt.bar(x - 0.2, zero, 0.4, label="always neutral")
plt.bar(x + 0.2, err, 0.4, label="regressor")
plt.xticks(x, reg.config.names, rotation=60, ha="right")
plt.ylabel("mean |error|"), plt.legend(), plt.title(f"SynthHeads identity {seed} (never seen), 80 random expressions")
plt.show()
print(f"mean error {err.mean():.3f} vs {zero.mean():.3f} for always-neutral")

# %%
from avat3r.data.expressions import EXPRESSION_NAMES  # noqa: E402
from avat3r.drive.rendered import rendered_samples, sample_features  # noqa: E402

d = rendered_samples(seed, 16, np.random.default_rng(1))  # 21 renders (5 neutral first), head yaw up to 30 degrees
f_r, c_r, p_r, _ = sample_features(d)
true_r = c_r[:, [EXPRESSION_NAMES.index(n) for n in reg.config.names]]
err_r = np.abs(reg.predict(f_r) - true_r).mean(0)
plt.figure(figsize=(14, 3.5))
plt.bar(x - 0.2, np.abs(true_r).mean(0), 0.4, label="always neutral")
plt.bar(x + 0.2, err_r, 0.4, label="regressor")
plt.xticks(x, reg.config.names, rotation=60, ha="right")
plt.ylabel("mean |error|"), plt.legend()
plt.title(f"the same identity, {len(f_r)} renders with dlib's landmarks, |yaw| up to {np.abs(p_r[:, 0]).max():.0f} degrees")
plt.show()
print(f"mean error {err_r.mean():.3f} vs {np.abs(true_r).mean():.3f} for always-neutral")
