"""Front-end masks (GrabCut seeded by the posed head): IoU against known masks on composited photos.

    python bench/frontend_mask.py               # real green-screen video frames over real backgrounds
    python bench/frontend_mask.py --synth 2     # also SynthHeads renders over real backgrounds (slow on CPU)

Ground truth: (a) frames of a real green-screen video (LivePortrait d0.mp4), chroma-keyed, composited over
windows of real office photos; (b) SynthHeads renders (alpha from the renderer) composited the same way.
IoU is measured in the front end's head-centric crop (the ground-truth mask is cropped with the same box),
over the whole crop and above the chin-to-shoulder line (the head itself, where torso handling does not count).
With $OUT set, writes $OUT/frontend_mask.json and a few example composites.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from frontend_common import REALDATA, background_photos, out_dir, synth_views  # noqa: E402


def chroma_key(frame: np.ndarray) -> np.ndarray:
    """[H, W, 3] float green-screen frame -> foreground mask [H, W] float (1 = person)."""
    import cv2

    r, g, b = frame[..., 0], frame[..., 1], frame[..., 2]
    green = (g - np.maximum(r, b)) > 0.08
    m = (~green).astype(np.uint8)
    m = cv2.morphologyEx(m, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    return m.astype(np.float32)


def iou(a: np.ndarray, b: np.ndarray, region: np.ndarray | None = None) -> float:
    a, b = a > 0.5, b > 0.5
    if region is not None:
        a, b = a & region, b & region
    u = (a | b).sum()
    return float((a & b).sum() / u) if u else 1.0


def evaluate(images, gt_masks, label: str, examples: list) -> dict:
    """Run the front end on each composite alone; IoU of its mask vs the ground truth cropped the same way."""
    from avat3r.frontend import prepare
    from avat3r.frontend.crop import crop_square

    full, head, missed = [], [], 0
    for img, gt in zip(images, gt_masks):
        try:
            res = prepare([img], size=256)
        except Exception:
            missed += 1
            continue
        v = res.views[0]
        g = crop_square(gt[..., None], v.box, 256)[0][..., 0]
        m = res.capture.masks[0]
        cam = res.capture.cameras
        import torch

        uv, _ = cam.project(torch.tensor([[0.0, -0.15, 0.0]]))  # below the chin: neck / shoulders start
        region = np.zeros((256, 256), bool)
        region[: int(np.clip(uv[0, 0, 1].item(), 0, 256))] = True
        full.append(iou(m, g))
        head.append(iou(m, g, region))
        if len(examples) < 6:
            examples.append(np.concatenate([res.raw_crops[0], np.repeat(g[..., None], 3, -1),
                                            np.repeat(m[..., None], 3, -1)], 1))
    return {"set": label, "n": len(images), "no_face": missed,
            "mean_iou": float(np.mean(full)) if full else None, "median_iou": float(np.median(full)) if full else None,
            "mean_iou_head": float(np.mean(head)) if head else None}


def greenscreen(n_frames: int = 6, n_bg: int = 4) -> tuple[list, list]:
    import imageio.v2 as imageio

    p = REALDATA / "KwaiVGI_LivePortrait/assets/examples/driving/d0.mp4"
    if not p.exists():
        return [], []
    frames = [f for i, f in enumerate(imageio.get_reader(p, format="FFMPEG")) if i % 13 == 0][:n_frames]
    bgs = background_photos(512, n_bg, seed=1)
    imgs, gts = [], []
    for i, f in enumerate(frames):
        f = f[..., :3].astype(np.float32) / 255
        m = chroma_key(f)
        for bg in bgs[i % 2:: 2]:
            imgs.append(f * m[..., None] + bg * (1 - m[..., None]))
            gts.append(m)
    return imgs, gts


def synth(n_ids: int, size: int = 384) -> tuple[list, list]:
    azs = [-60, -40, -20, 0, 20, 40, 60]
    bgs = background_photos(size, 7, seed=2)
    imgs, gts = [], []
    for seed in range(n_ids):
        color, alpha, _ = synth_views(1000 + seed, azs, size=size)
        for v in range(len(azs)):
            a = alpha[v][..., None]
            imgs.append(np.clip(color[v] + bgs[v] * (1 - a), 0, 1))  # the render is premultiplied over black
            gts.append(alpha[v])
    return imgs, gts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--synth", type=int, default=0, help="SynthHeads identities (0 = none)")
    args = ap.parse_args()
    examples: list = []
    results = []
    imgs, gts = greenscreen()
    if imgs:
        results.append(evaluate(imgs, gts, "green-screen video frames over office photos", examples))
    if args.synth:
        imgs, gts = synth(args.synth)
        results.append(evaluate(imgs, gts, "SynthHeads over office photos", examples))
    print(f"{'set':48s} {'n':>3s} {'no face':>7s} {'mean IoU':>8s} {'median':>7s} {'head IoU':>8s}")
    for r in results:
        f = lambda x: "   -" if x is None else f"{x:.3f}"  # noqa: E731
        print(f"{r['set']:48s} {r['n']:3d} {r['no_face']:7d} {f(r['mean_iou']):>8s} {f(r['median_iou']):>7s} {f(r['mean_iou_head']):>8s}")
    od = out_dir()
    if od:
        (od / "frontend_mask.json").write_text(json.dumps(results, indent=1))
        if examples:
            from avat3r.io.images import save_image

            save_image(od / "frontend_mask_examples.png", np.concatenate(examples, 0))


if __name__ == "__main__":
    main()
