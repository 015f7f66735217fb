"""Single-photo lift vs native V = 1 (issue 17): SynthHeads hold-out single images at novel views, real portraits,
and the time from a photo to an animated avatar.

    python bench/lift.py [--generator weights/gghead] [--encoder weights/lift] [--identities 6] [--portraits 8]
                         [--steps 6] [--pti-steps 0] [--device cpu|cuda] [--out bench_out/lift] [--json out.json]

SynthHeads: each hold-out identity (``split_seeds("test")``, neutral) is rendered from one input view (azimuth
``--input-azimuth``, elevation 5) at the model's size with its mask; both modes reconstruct from that one posed
view (the true camera: this measures the lift, not the front end): "native" (V = 1), "lift" (the four lifted
views), "lift+photo" (those and the input view); all are scored at azimuth +-30 and +-60
(elevation 5) against the true render: PSNR inside the true head mask (images on black). "gghead" scores the
lifted generator head itself at the same views (no Avat3r).
Real portraits (../shared/realdata): front end -> both modes -> the photo's own view re-rendered, PSNR inside the
front end's mask; ``portraits.png`` holds one row per photo: crop | the generator's fit | lift -30, 0, +30 | lift+photo -30, +30 |
native -30, +30 (degrees from the photo's own azimuth).
Timing: photo file -> animated avatar (front end, lift, reconstruct, one expression rendered), per stage.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

REALDATA = Path(os.environ.get("AVAT3R_REALDATA", Path(__file__).resolve().parents[2] / "shared" / "realdata"))
PORTRAITS = [
    "scikit-image_scikit-image/skimage/data/astronaut.png",
    "cleardusk_3DDFA_V2/examples/inputs/JianzhuGuo.jpg",
    "felixtaubner_cap4d/examples/input/lincoln/images/cam0/abraham_lincoln.png",
    "KwaiVGI_LivePortrait/assets/examples/source/s6.jpg",
    "Fanziapril_mvfnet/data/imgs/left.jpg",
    "Fanziapril_mvfnet/data/imgs/front.jpg",
    "alicevision_dataset_buddha/buddha/00060._c.png",
    "tobias-kirschstein_nersemble-data/static/derived_tiles_from_camera_overview/cam_222200037.png",
]
NOVEL = (-60.0, -30.0, 30.0, 60.0)


def masked_psnr(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> float:
    """PSNR (dB) over the pixels where mask > 0.5; images [H, W, 3] in [0, 1]."""
    m = mask > 0.5
    mse = float(((pred - gt) ** 2)[m].mean()) if m.any() else float("nan")
    return 10 * np.log10(1.0 / max(mse, 1e-10))


def _f(img_u8: np.ndarray) -> np.ndarray:
    return img_u8.astype(np.float32) / 255.0


def synth_views(ident: int, size: int, input_azimuth: float, device):
    """Hold-out head ``ident`` -> (input view Capture, {azimuth: (gt image, gt mask, camera)})."""
    from avat3r.cameras import orbit_camera
    from avat3r.capture import Capture
    from avat3r.data.synthheads import build_head
    from avat3r.render import render

    g = build_head(int(ident), device=device)
    out = {}
    for az in (input_azimuth, *NOVEL):
        cam = orbit_camera(az, 5.0, size)
        r = render(g, cam.to(device), background=(0.0, 0.0, 0.0))
        out[az] = (r.color[0].clamp(0, 1).cpu().numpy(), r.alpha[0, ..., 0].clamp(0, 1).cpu().numpy(), cam)
    img, mask, cam = out.pop(input_azimuth)
    view = Capture(img[None].astype(np.float32), cam, [f"synth{ident}"], mask[None].astype(np.float32))
    return view, out


def _three_avatars(pipe, G, enc, cfg, view):
    """One inversion, three reconstructions -> ({mode: Avatar}, LiftResult, seconds per mode)."""
    from avat3r.lift.route import lift_photo

    secs = {}
    t = time.perf_counter()
    avatars = {"native": pipe.reconstruct(view)}
    secs["native"] = time.perf_counter() - t
    t = time.perf_counter()
    cap, lr, _, _ = lift_photo(view, size=pipe.image_size, generator=G, encoder=enc, config=cfg, with_photo=True)
    t_lift = time.perf_counter() - t
    t = time.perf_counter()
    avatars["lift"] = pipe.reconstruct(cap.subset([0, 1, 2, 3]))
    secs["lift"] = t_lift + time.perf_counter() - t
    t = time.perf_counter()
    avatars["lift+photo"] = pipe.reconstruct(cap)
    secs["lift+photo"] = t_lift + time.perf_counter() - t
    return avatars, lr, secs


def _summary(rows: list[dict]) -> dict:
    keys = [k for k in rows[0] if isinstance(rows[0][k], float)]
    mean = {k: round(float(np.mean([r[k] for r in rows if k in r])), 2) for k in keys}
    for mode in ("native", "lift", "lift+photo", "gghead"):
        if f"{mode}_+30" in mean:
            mean[f"{mode}_30"] = round((mean[f"{mode}_-30"] + mean[f"{mode}_+30"]) / 2, 2)
            mean[f"{mode}_60"] = round((mean[f"{mode}_-60"] + mean[f"{mode}_+60"]) / 2, 2)
    return mean


def run_synth(pipe, G, enc, cfg, n: int, input_azimuth: float, log) -> dict:
    from avat3r.data.identity import split_seeds

    rows = []
    for ident in list(split_seeds("test"))[:n]:
        view, gts = synth_views(ident, pipe.image_size, input_azimuth, pipe.device)
        row = {"identity": int(ident)}
        avatars, lr, secs = _three_avatars(pipe, G, enc, cfg, view)
        for mode, avatar in avatars.items():
            row[f"{mode}_s"] = round(secs[mode], 2)
            for az, (gt, m, cam) in gts.items():
                row[f"{mode}_{az:+.0f}"] = masked_psnr(_f(avatar.render(cam)), gt, m)
        with torch.no_grad():
            for az, (gt, m, cam) in gts.items():
                rgb, _ = lr.G.render(lr.out, cam, index=0, background=(0.0, 0.0, 0.0))
                row[f"gghead_{az:+.0f}"] = masked_psnr(rgb[0].clamp(0, 1).cpu().numpy(), gt, m)
        rows.append(row)
        log(json.dumps({k: (round(v, 2) if isinstance(v, float) else v) for k, v in row.items()}))
    return {"rows": rows, "mean": _summary(rows)}


def run_portraits(pipe, G, enc, cfg, paths, out_dir: Path, log, native_only: bool = False) -> dict:
    from avat3r.cameras import orbit_camera
    from avat3r.errors import Avat3rError
    from avat3r.frontend.pose import azimuth_elevation
    from avat3r.io.images import save_image
    from avat3r.lift.route import photo_view
    from avat3r.pipeline import _resize_square

    size = pipe.image_size
    rows, grid = [], []
    for p in paths:
        name = Path(p).name
        try:
            res = photo_view(str(p), size)
        except Avat3rError as e:
            rows.append({"photo": name, "refused": str(e).splitlines()[0]})
            log(f"{name}: refused: {str(e).splitlines()[0]}")
            continue
        view = res.capture
        cam = view.cameras[:1]
        az0, el0 = azimuth_elevation(cam.world_to_cam[0].double().numpy())
        row = {"photo": name, "azimuth": round(az0, 1), "elevation": round(el0, 1)}
        if native_only:
            avatars, tiles, plan = {"native": pipe.reconstruct(view)}, [view.images[0]], (("native", (-30.0, 0.0, 30.0)),)
        else:
            avatars, lr, _ = _three_avatars(pipe, G, enc, cfg, view)
            tiles = [view.images[0], _resize_square(lr.render_after, size)]
            plan = (("lift", (-30.0, 0.0, 30.0)), ("lift+photo", (-30.0, 30.0)), ("native", (-30.0, 30.0)))
        for mode, avatar in avatars.items():
            row[f"{mode}_front"] = masked_psnr(_f(avatar.render(cam)), view.images[0], view.masks[0])
        for mode, angles in plan:
            tiles += [_f(avatars[mode].render(orbit_camera(az0 + a, 5.0, size))) for a in angles]
        rows.append(row)
        grid.append(np.concatenate(tiles, 1))
        log(json.dumps({k: (round(v, 2) if isinstance(v, float) else v) for k, v in row.items()}))
    if grid:
        save_image(out_dir / "portraits.png", np.concatenate(grid, 0))
    ok = [r for r in rows if "native_front" in r]
    keys = [k for k in ("lift_front", "lift+photo_front", "native_front") if ok and k in ok[0]]
    mean = {k: round(float(np.mean([r[k] for r in ok])), 2) for k in keys}
    return {"rows": rows, "mean": mean}


def run_timing(pipe, G, enc, cfg, photo) -> dict:
    """Photo file -> animated avatar (one 'smile' frame rendered), stages in seconds (second run; the first warms up)."""
    from avat3r.lift.route import DEFAULT_MODE, photo_avatar

    stages = {}
    mode = DEFAULT_MODE if DEFAULT_MODE != "native" else "lift"  # the lift the user gets
    for _ in range(2):
        marks = []
        t0 = time.perf_counter()
        c0 = time.process_time()
        avatar, _, lr, _ = photo_avatar(str(photo), pipe, mode=mode, generator=G, encoder=enc, config=cfg,
                                        progress=lambda f, m: marks.append((time.perf_counter() - t0, f, m)))
        t1 = time.perf_counter()
        avatar.render((20.0, 5.0), "smile")
        t2 = time.perf_counter()
        stages = {"mode": mode, "total_s": round(t2 - t0, 2), "photo_to_avatar_s": round(t1 - t0, 2), "animate_render_s": round(t2 - t1, 2),
                  "cpu_process_s": round(time.process_time() - c0, 2),
                  "lift_stages_s": {k: round(v, 2) for k, v in lr.seconds.items()},
                  "progress_updates": len(marks)}
        first_lift = next((t for t, f, m in marks if "encoder" in m), None)
        recon = next((t for t, f, m in marks if m.startswith("Avat3r")), None)
        stages["front_end_and_load_s"] = round(first_lift, 2) if first_lift is not None else None
        stages["until_reconstruct_s"] = round(recon, 2) if recon is not None else None
    return stages


def main(argv=None) -> dict:
    from avat3r.lift.config import InvertConfig
    from avat3r.lift.route import load_lift_models
    from avat3r.pipeline import load_pipeline

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--generator", default=None)
    p.add_argument("--encoder", default=None)
    p.add_argument("--weights", default=None)
    p.add_argument("--no-encoder", action="store_true", help="start from the average head (encoder ablation)")
    p.add_argument("--identities", type=int, default=6)
    p.add_argument("--portraits", type=int, default=len(PORTRAITS))
    p.add_argument("--input-azimuth", type=float, default=0.0)
    p.add_argument("--steps", type=int, default=None, help="default: InvertConfig.for_device")
    p.add_argument("--pti-steps", type=int, default=None)
    p.add_argument("--correct", type=float, default=InvertConfig.correct)
    p.add_argument("--shift-all", type=float, default=None, help="correct_shift_all (default: InvertConfig's)")
    p.add_argument("--device", default=None)
    p.add_argument("--out", default="bench_out/lift")
    p.add_argument("--json", default=None)
    p.add_argument("--no-timing", action="store_true")
    p.add_argument("--native-only", action="store_true", help="portraits: native V = 1 only (no generator needed)")
    a = p.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    dev = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    pipe = load_pipeline(a.weights, device=dev)
    G, enc = (None, None) if a.native_only else load_lift_models(a.generator, a.encoder, device=dev)
    if a.no_encoder:
        enc = None
    cfg = InvertConfig.for_device(dev)
    cfg.steps = cfg.steps if a.steps is None else a.steps
    cfg.pti_steps = cfg.pti_steps if a.pti_steps is None else a.pti_steps
    cfg.correct = a.correct
    cfg.correct_shift_all = cfg.correct_shift_all if a.shift_all is None else a.shift_all

    def log(msg):
        print(msg, flush=True)

    res = {"machine": {"device": dev, "gpu": torch.cuda.get_device_name(0) if dev.startswith("cuda") else None,
                       "cpu_threads": torch.get_num_threads(), "platform": platform.platform()},
           "generator": None if G is None else G.config.preset, "encoder": enc is not None, "invert": dict(vars(cfg)),
           "input_azimuth": a.input_azimuth}
    def save():  # after every section: a run cut short by a time limit still leaves what it measured
        if a.json:
            Path(a.json).write_text(json.dumps(res, indent=2) + "\n")

    if a.identities > 0 and not a.native_only:
        res["synthheads"] = run_synth(pipe, G, enc, cfg, a.identities, a.input_azimuth, log)
        log("synthheads mean: " + json.dumps(res["synthheads"]["mean"]))
        save()
    paths = [REALDATA / q for q in PORTRAITS[: a.portraits] if (REALDATA / q).exists()]
    from avat3r.errors import InputError

    try:  # real photos need the front end's face detector (dlib): a machine without it keeps the SynthHeads rows
        if paths and not a.no_timing and not a.native_only:
            res["timing"] = run_timing(pipe, G, enc, cfg, paths[0])
            log("timing: " + json.dumps(res["timing"]))
            save()
        if paths:
            res["portraits"] = run_portraits(pipe, G, enc, cfg, paths, out, log, a.native_only)
            log("portraits mean: " + json.dumps(res["portraits"]["mean"]))
            save()
    except InputError as e:
        res["photos_skipped"] = str(e)
        log(f"real photos skipped: {e}")
        save()
    return res


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
