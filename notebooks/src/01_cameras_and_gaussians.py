# Source of notebooks/01_cameras_and_gaussians.ipynb (build with `python notebooks/_build.py`).

# %% [markdown]
# # 01 · Cameras, Gaussians and the renderer
#
# **What this notebook teaches**
#
# 1. The *head-centric world frame* every part of Avat3r works in (metres, +y up, +z out of the face).
# 2. *OpenCV pinhole cameras* (`avat3r.cameras.Cameras`): intrinsics `K`, `world_to_cam`, projection.
# 3. *Plücker rays*, the per-pixel camera encoding the network receives (the paper's $I^{pluck}$, eq. 4), shown as images.
# 4. *3D Gaussians* (`avat3r.gaussians.Gaussians`) and how the pure-PyTorch CPU rasterizer (`avat3r.render.render`) draws them
#    (and gsplat, when a CUDA GPU is present).
# 5. The standard 3DGS `.ply` layout the project exports (`avat3r.io.ply`).
#
# Everything here uses the package's own code; nothing is re-implemented in the notebook.
# Runs on a CPU in well under a minute.

# %%
import math
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from avat3r.cameras import (
    Cameras,
    intrinsics_from_fov,
    look_at,
    orbit_cameras,
    pixel_rays,
    plucker_rays,
    spherical_to_cartesian,
)
from avat3r.gaussians import Gaussians
from avat3r.render import render
from avat3r.render.scenes import HEAD_RADII, head_like_scene

torch.manual_seed(0)
torch.set_num_threads(2)
plt.rcParams["figure.dpi"] = 80

# %% [markdown]
# ## 1. The head-centric world frame
#
# The origin is the centre of the head (midway between the ears, at eye height); units are **metres**.
#
# | axis | points towards | in a frontal photo |
# | --- | --- | --- |
# | +x | the subject's left ear | image right |
# | +y | the top of the head | image up |
# | +z | out of the face | towards the camera |
#
# So a frontal camera sits at `(0, 0, +d)` and looks down `-z`. `spherical_to_cartesian(azimuth, elevation, radius)`
# places cameras on a sphere around the head: azimuth 0 is frontal, positive azimuth moves towards +x.
# `orbit_cameras` builds a turntable of them. Below: the axes, an ellipsoid the size of a head
# (`HEAD_RADII`), and 8 turntable cameras with their viewing directions.

# %%
cams = orbit_cameras(8, radius=0.6, elevation_deg=10.0, fov_deg=24.0, size=64)
centers = cams.centers  # [8, 3]
forward = cams.cam_to_world[:, :3, 2]  # the camera's +z axis (OpenCV: looking direction) in world coordinates

fig = plt.figure(figsize=(6, 6))
ax = fig.add_subplot(projection="3d")
u, v = np.mgrid[0:2 * np.pi:24j, 0:np.pi:12j]
rx, ry, rz = HEAD_RADII
ax.plot_wireframe(rx * np.cos(u) * np.sin(v), ry * np.cos(v), rz * np.sin(u) * np.sin(v), color="0.7", lw=0.5)
for axis, col, name in zip(np.eye(3) * 0.2, "rgb", "xyz"):
    ax.quiver(0, 0, 0, *axis, color=col, lw=2)
    ax.text(*(axis * 1.15), f"+{name}", color=col)
c, f = centers.numpy(), forward.numpy()
ax.scatter(*c.T, color="k")
ax.quiver(*c.T, *(0.15 * f).T, color="m")
for i, ci in enumerate(c):
    ax.text(*ci, f" {i}", fontsize=8)
ax.set_xlim(-0.65, 0.65); ax.set_ylim(-0.65, 0.65); ax.set_zlim(-0.65, 0.65); ax.set_box_aspect((1, 1, 1))
ax.set_xlabel("x (m)"); ax.set_ylabel("y (m)"); ax.set_zlabel("z (m)")
ax.view_init(elev=25, azim=-60, vertical_axis="y")
ax.set_title("head-centric frame, turntable cameras (magenta: viewing direction)")
plt.show()
print("camera 0 centre:", centers[0].numpy().round(3), "(azimuth 0 = frontal, slightly raised)")

# %% [markdown]
# ## 2. OpenCV pinhole cameras
#
# A `Cameras` holds `N` cameras: `K [N,3,3]` in pixels, `world_to_cam [N,4,4]` (x right, **y down**, z forward),
# `width`, `height`. `look_at(eye)` builds `world_to_cam` for a camera at `eye` looking at the origin with +y up.
# The frontal camera's rotation is `diag(1, -1, -1)`. Projecting a few landmarks on the head shows the convention:
# the subject's left ear (+x) lands on the **right** of the image, the top of the head (+y) at the **top** (small v).

# %%
size = 96
K = intrinsics_from_fov(24.0, size)  # horizontal field of view 24 degrees, principal point at the centre
front = Cameras(K, look_at(torch.tensor([0.0, 0.0, 0.6])), size, size)
print("K =\n", K.numpy().round(1))
print("world_to_cam =\n", front.world_to_cam[0].numpy().round(3))

points = {"centre": (0, 0, 0), "nose tip": (0, 0, HEAD_RADII[2]), "left ear (+x)": (HEAD_RADII[0], 0, 0),
          "top of head (+y)": (0, HEAD_RADII[1], 0), "chin": (0, -0.08, 0.05)}
uv, depth = front.project(torch.tensor(list(points.values()), dtype=torch.float32))
for (name, p), (uu, vv), z in zip(points.items(), uv[0].tolist(), depth[0].tolist()):
    print(f"{name:>17} {p} -> pixel (u={uu:5.1f}, v={vv:5.1f}), camera depth {z:.3f} m")

# %% [markdown]
# Cropping and resizing an image changes `K` with it (`Cameras.crop`, `.resize`, `.crop_resize`); the front end
# uses this to cut the head-centric square out of a photo (paper supp. C). The projected pixel moves with the crop:

# %%
crop = front.crop_resize(torch.tensor([24.0, 24.0, 48.0, 48.0]), 96)  # (x0, y0, w, h), then back to 96 px
print("K after crop + resize:\n", crop.K[0].numpy().round(1))
print("nose tip now projects to", crop.project(torch.tensor([[0.0, 0.0, HEAD_RADII[2]]]))[0][0, 0].numpy().round(1))

# %% [markdown]
# ## 3. Plücker rays (the network's camera input)
#
# Every pixel gets the 6-vector $(d, o \times d)$: the unit ray direction $d$ in world coordinates and the ray's
# *moment* $o \times d$ ($o$ the camera centre). Two pixels on the same 3D line get the same code, whichever camera
# they come from, which is why the paper stacks these with the image and position map as the per-pixel input
# (eq. 4). Below, for three cameras, the direction and the moment are mapped to colours
# (each channel `0.5 + 0.5 * value / max|value|`).

# %%
views = Cameras.cat([front, *[Cameras(K, look_at(spherical_to_cartesian(a, 10.0, 0.6)), size, size) for a in (-60.0, 60.0)]])
rays = plucker_rays(views)  # [3, 6, H, W]
print("plucker_rays:", tuple(rays.shape), "-> channels 0-2: direction d, 3-5: moment o x d")

def to_rgb(x):  # [3, H, W] -> HxWx3 in [0, 1] for display
    x = x.permute(1, 2, 0)
    return (0.5 + 0.5 * x / x.abs().amax().clamp(min=1e-8)).numpy()

fig, axes = plt.subplots(2, 3, figsize=(8, 5.5))
for i, name in enumerate(["frontal", "azimuth -60", "azimuth +60"]):
    axes[0, i].imshow(to_rgb(rays[i, :3])); axes[0, i].set_title(f"{name}: direction d")
    axes[1, i].imshow(to_rgb(rays[i, 3:])); axes[1, i].set_title(f"{name}: moment o×d")
for a in axes.flat:
    a.axis("off")
plt.tight_layout(); plt.show()

o, d = pixel_rays(views)
print("|d| = 1 everywhere:", torch.allclose(d.norm(dim=-1), torch.ones(1)),
      "| moment ⟂ direction:", float((rays[:, :3] * rays[:, 3:]).sum(1).abs().max()) < 1e-5)

# %% [markdown]
# ## 4. A few Gaussians, rendered on the CPU
#
# A `Gaussians` set has `means [N,3]`, `quats [N,4]` (wxyz), `scales [N,3]` (activated, metres),
# `opacities [N]` in [0, 1] and `colors [N,3]` (linear RGB). Here: a red blob on +x, a green one on +y, a blue one on +z,
# and a flat white disc in the x-y plane behind them, seen from the front and from the side.
# `render(gaussians, cameras)` returns `color [N,H,W,3]`, `alpha [N,H,W,1]` and the expected `depth [N,H,W,1]`;
# `backend="torch"` is the pure-PyTorch rasterizer (any device, differentiable).

# %%
g = Gaussians(
    means=torch.tensor([[0.06, 0, 0], [0, 0.06, 0], [0, 0, 0.06], [0, 0, -0.03]]),
    quats=torch.tensor([[1.0, 0, 0, 0]] * 4),
    scales=torch.tensor([[0.02, 0.02, 0.02], [0.02, 0.02, 0.02], [0.02, 0.02, 0.02], [0.09, 0.09, 0.002]]),
    opacities=torch.tensor([0.9, 0.9, 0.9, 0.8]),
    colors=torch.tensor([[1.0, 0.1, 0.1], [0.1, 0.9, 0.1], [0.1, 0.2, 1.0], [0.9, 0.9, 0.9]]),
)
two = Cameras.cat([front, Cameras(K, look_at(spherical_to_cartesian(70.0, 15.0, 0.6)), size, size)])
t0 = time.perf_counter()
out = render(g, two, background=(0.1, 0.1, 0.1), backend="torch")
print(f"rendered {len(g)} Gaussians into {len(two)} views of {size}² in {time.perf_counter() - t0:.2f} s")

fig, axes = plt.subplots(2, 3, figsize=(8, 5.5))
for i, name in enumerate(["frontal", "azimuth 70"]):
    axes[i, 0].imshow(out.color[i].clamp(0, 1)); axes[i, 0].set_title(f"{name}: color")
    axes[i, 1].imshow(out.alpha[i, ..., 0], cmap="gray", vmin=0, vmax=1); axes[i, 1].set_title("alpha")
    im = axes[i, 2].imshow(out.depth[i, ..., 0].masked_fill(out.alpha[i, ..., 0] < 0.05, float("nan")), cmap="viridis")
    axes[i, 2].set_title("expected depth (m)"); plt.colorbar(im, ax=axes[i, 2], fraction=0.046)
for a in axes.flat:
    a.axis("off")
plt.tight_layout(); plt.show()

# %% [markdown]
# The renderer is differentiable: gradients flow back to every Gaussian parameter (this is what training uses).

# %%
g_opt = Gaussians(g.means.clone().requires_grad_(), g.quats, g.scales, g.opacities, g.colors.clone().requires_grad_())
loss = render(g_opt, front, backend="torch").color.mean()
loss.backward()
print("d loss / d means:\n", g_opt.means.grad.numpy().round(4))
print("d loss / d colors:\n", g_opt.colors.grad.numpy().round(4))

# %% [markdown]
# ## 5. A head-like set of pixel-aligned Gaussians
#
# Avat3r predicts one Gaussian per input pixel. `avat3r.render.scenes.head_like_scene` builds such a set
# procedurally (an ellipsoid "head" unprojected from 4 source views: flat Gaussians about one pixel wide,
# oriented along the surface). We render a small turntable of it with the CPU rasterizer.

# %%
head, _ = head_like_scene(n_gaussians=8_000, render_size=80, seed=0)
turn = orbit_cameras(4, radius=0.6, elevation_deg=10.0, fov_deg=24.0, size=80)
t0 = time.perf_counter()
imgs = render(head, turn, background=(1.0, 1.0, 1.0), backend="torch").color
print(f"{len(head)} Gaussians, {len(turn)} views of 80²: {time.perf_counter() - t0:.2f} s on the CPU")
fig, axes = plt.subplots(1, 4, figsize=(9, 2.6))
for a, im, az in zip(axes, imgs, [0, 90, 180, 270]):
    a.imshow(im.clamp(0, 1)); a.set_title(f"azimuth {az}"); a.axis("off")
plt.tight_layout(); plt.show()

# %% [markdown]
# ### gsplat on a GPU (skipped on a CPU)
#
# With CUDA and `gsplat==1.5.3` (`pip install avat3r[gpu]`), `render(..., backend="auto")` uses gsplat's kernels.
# The cell below compares the two backends when it can, and otherwise says why it skips.

# %%
from avat3r.render.gsplat_backend import gsplat_available

if not torch.cuda.is_available():
    print("SKIPPED: no CUDA GPU here (torch.cuda.is_available() is False); the CPU rasterizer above is the path used.")
elif not gsplat_available():
    print("SKIPPED: CUDA is available but gsplat is not installed (pip install gsplat==1.5.3).")
else:
    hg, tc = head.to("cuda"), turn.to("cuda")
    a = render(hg, tc, backend="gsplat", background=(1.0, 1.0, 1.0)).color
    b = render(hg, tc, backend="torch", background=(1.0, 1.0, 1.0)).color
    print(f"gsplat vs torch backend: max abs colour difference {float((a - b).abs().max()):.4f}")

# %% [markdown]
# ## 6. The `.ply` layout
#
# `avat3r.io.ply.save_ply` writes the standard 3D Gaussian Splatting file (Kerbl et al.'s layout): binary
# little-endian, one `vertex` element, no faces, float32 properties
# `x y z nx ny nz f_dc_0..2 opacity scale_0..2 rot_0..3`, with **log** scales, **logit** opacities, colour as the
# spherical-harmonic DC coefficient (`rgb = 0.5 + 0.282095 * f_dc`) and rot a wxyz quaternion. Our world is y-up, so
# y-up viewers (Gradio's `Model3D`) show the head right side up; `orientation="y_down"` flips it for COLMAP-style viewers.

# %%
from avat3r.io.ply import load_ply, read_ply_array, save_ply

tmp = Path(tempfile.mkdtemp())
path = save_ply(tmp / "head.ply", head)
raw = path.read_bytes()
header = raw[: raw.find(b"end_header\n") + len(b"end_header\n")].decode()
print(header)
print(f"file size {len(raw) / 1e3:.0f} kB = header {len(header)} B + {len(head)} vertices x {read_ply_array(path).dtype.itemsize} B")

# %%
arr = read_ply_array(path)
row = arr[0]
print("first vertex as stored:", {k: round(float(row[k]), 4) for k in ("x", "y", "z", "f_dc_0", "opacity", "scale_0", "rot_0")})
print("activated:   colour r =", round(0.5 + 0.282095 * float(row["f_dc_0"]), 4), "vs", round(float(head.colors[0, 0]), 4),
      "| opacity =", round(1 / (1 + math.exp(-float(row["opacity"]))), 4), "vs", round(float(head.opacities[0]), 4),
      "| scale_0 =", round(math.exp(float(row["scale_0"])), 6), "vs", round(float(head.scales[0, 0]), 6))
back = load_ply(path)
print("round trip max error (means, colours):", float((back.means - head.means).abs().max()), float((back.colors - head.colors).abs().max()))

# %% [markdown]
# ## What to try next
#
# - Change `elevation_deg` / `fov_deg` in `orbit_cameras` and watch the turntable and the Plücker images change.
# - Rotate the white disc (set its quaternion with `rotmat_to_quat`) and check the side view.
# - Open `head.ply` from the temporary folder printed above in a splat viewer (or Gradio's `Model3D`), with
#   `orientation="y_up"` and `"y_down"`.
# - Next notebook: **02_synthheads**, the procedural heads the model is trained on.
