"""Front-end camera estimation: accuracy against ground truth and landmark reprojection error on real photos.

    python bench/frontend_pose.py                 # real sets (statue, mvfnet, NeRSemble tiles) + solver check
    python bench/frontend_pose.py --synth 2       # also 2 SynthHeads identities x 7 views (slow on CPU: renders)

Prints small tables; with $OUT set, also writes $OUT/frontend_pose.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from frontend_common import REALDATA, out_dir, relative_rotation_errors, rot_angle_deg, synth_views  # noqa: E402


def solver_check(n: int = 200, noise_px: float = 1.0) -> dict:
    """PnP alone: the template projected by random cameras + Gaussian pixel noise -> rotation error (deg)."""
    import torch

    from avat3r.cameras import Cameras, look_at, spherical_to_cartesian
    from avat3r.frontend.landmark_template import landmark_template
    from avat3r.frontend.pose import intrinsics_from_focal35, solve_pose

    rng = np.random.default_rng(0)
    K = intrinsics_from_focal35(35.0, 1024, 1024)
    errs = []
    for _ in range(n):
        az, el, d = rng.uniform(-60, 60), rng.uniform(-25, 25), rng.uniform(0.4, 1.5)
        w2c = look_at(spherical_to_cartesian(torch.tensor(az), torch.tensor(el), torch.tensor(d))).double().numpy()
        uv, _ = Cameras(K[None], w2c[None], 1024, 1024).project(torch.tensor(landmark_template(), dtype=torch.float32))
        est = solve_pose(uv[0].double().numpy() + rng.normal(0, noise_px, (68, 2)), K)
        errs.append(rot_angle_deg(est.world_to_cam[:3, :3] @ w2c[:3, :3].T))
    return {"n": n, "noise_px": noise_px, "median_deg": float(np.median(errs)), "p95_deg": float(np.percentile(errs, 95))}


def buddha() -> dict:
    """The statue set: 6 photos with a 3x4 P each. Face detection coverage, and relative rotations where >= 2."""
    import cv2

    from avat3r.frontend import FrontendConfig, prepare
    from avat3r.frontend.pose import quarter_turn

    d = REALDATA / "alicevision_dataset_buddha" / "buddha"
    files = sorted(d.glob("*._c.png"))
    if not files:
        return {"skipped": "statue set not found"}
    t = time.time()
    res = prepare(files, size=256, config=FrontendConfig(use_cnn=True))
    dt = time.time() - t
    R_est, R_gt, names = [], [], []
    for v in res.views:
        P = np.loadtxt(d / f"{v.name.split('.')[0]}_P.txt")
        K, R, _ = cv2.decomposeProjectionMatrix(P)[:3]
        # the front end may have turned the photo to find the face: undo that on its camera
        R_est.append((quarter_turn(v.quarter_turns).T @ v.world_to_cam)[:3, :3])
        R_gt.append(R)
        names.append(v.name)
    errs = relative_rotation_errors(R_est, R_gt)
    return {
        "photos": len(files), "faces_found": len(res.views), "found": names,
        "not_found": [f.name for f in res.failures], "pairs": len(errs),
        "median_rel_rot_deg": float(np.median(errs)) if errs else None, "seconds": dt,
        "reprojection_px": [v.reprojection_px for v in res.views],
    }


def reprojection(files: list[Path], label: str) -> dict:
    """Landmark reprojection error (px, and as a fraction of the eye distance) of the PnP fit per photo."""
    from avat3r.frontend import prepare

    files = [f for f in files if f.exists()]
    if not files:
        return {"skipped": f"{label} not found"}
    res = prepare(files, size=256, max_views=len(files))
    rows = []
    rigid = np.r_[27:36, 36, 39, 42, 45]  # nose and eye corners: points that move neither with pose nor expression
    for v in res.views:
        lm = v.landmarks_crop * v.box[2] / 256  # back to photo pixels
        iod = float(np.linalg.norm(lm[42:48].mean(0) - lm[36:42].mean(0)))
        rig = float(np.sqrt(np.mean(v.landmark_residuals_px[rigid] ** 2)))
        rows.append({"name": v.name, "rms_px": v.reprojection_px, "rms_over_eye_dist": v.reprojection_px / iod,
                     "rigid_rms_px": rig, "all68_rms_px": float(np.sqrt(np.mean(v.landmark_residuals_px ** 2))),
                     "azimuth": v.azimuth_deg, "elevation": v.elevation_deg})
    return {"views": rows, "failures": [f.message for f in res.failures],
            "median_rms_px": float(np.median([r["rms_px"] for r in rows])),
            "median_rms_over_eye_dist": float(np.median([r["rms_over_eye_dist"] for r in rows])),
            "median_rigid_rms_px": float(np.median([r["rigid_rms_px"] for r in rows])), "_preview": res.preview}


def synth(n_ids: int, size: int = 384) -> dict:
    """SynthHeads renders over black: relative and absolute rotation error of the estimated cameras, per azimuth."""
    from avat3r.frontend import prepare

    azs = [-60, -40, -20, 0, 20, 40, 60]
    found, total = 0, 0
    per_az: dict[int, list[float]] = {a: [] for a in azs}
    rel_all, rel_near = [], []
    for seed in range(n_ids):
        color, alpha, cams = synth_views(1000 + seed, azs, size=size)
        total += len(azs)
        try:
            res = prepare(list(color), size=256)
        except Exception as e:  # no face found in any view
            print(f"  identity {seed}: {e}".splitlines()[0])
            continue
        idx = [v.source_index for v in res.views]
        found += len(idx)
        R_est = [v.world_to_cam[:3, :3] for v in res.views]
        R_gt = [cams.world_to_cam[i, :3, :3].double().numpy() for i in idx]
        for i, a, b in zip(idx, R_est, R_gt):
            per_az[azs[i]].append(rot_angle_deg(a @ b.T))
        rel_all += relative_rotation_errors(R_est, R_gt)
        near = [k for k, i in enumerate(idx) if abs(azs[i]) <= 20]
        rel_near += relative_rotation_errors([R_est[k] for k in near], [R_gt[k] for k in near])
    return {"identities": n_ids, "views": total, "faces_found": found,
            "median_rel_rot_deg": float(np.median(rel_all)) if rel_all else None,
            "median_rel_rot_deg_within_20": float(np.median(rel_near)) if rel_near else None,
            "median_abs_rot_deg_by_azimuth": {str(a): (float(np.median(v)) if v else None) for a, v in per_az.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--synth", type=int, default=0, help="SynthHeads identities to render and test (0 = none)")
    args = ap.parse_args()
    results = {"machine": "see the report", "solver": solver_check()}
    print("PnP solver alone (template + 1 px noise, 200 random poses): median %.2f deg, p95 %.2f deg"
          % (results["solver"]["median_deg"], results["solver"]["p95_deg"]))
    b = buddha()
    results["statue"] = b
    if "skipped" in b:
        print("statue:", b["skipped"])
    else:
        print(f"statue (alicevision buddha): face found in {b['faces_found']}/{b['photos']} photos {b['found']}; "
              f"relative-rotation pairs: {b['pairs']}; median error: {b['median_rel_rot_deg']}")
    mv = reprojection([REALDATA / "Fanziapril_mvfnet/data/imgs" / f for f in ("front.jpg", "left.jpg", "right.jpg")], "mvfnet")
    ne = reprojection(sorted((REALDATA / "tobias-kirschstein_nersemble-data/static/derived_tiles_from_camera_overview").glob("*.png")), "nersemble")
    for name, r in (("mvfnet (224 px)", mv), ("NeRSemble tiles (200x291 px)", ne)):
        if "skipped" in r:
            print(name, r["skipped"])
            continue
        print(f"{name}: {len(r['views'])} views, median landmark reprojection {r['median_rms_px']:.2f} px weighted "
              f"({100 * r['median_rms_over_eye_dist']:.1f}% of the eye distance), {r['median_rigid_rms_px']:.2f} px on "
              f"nose + eye corners; failures: {len(r['failures'])}")
        print("   view                 weighted px  all-68 px  rigid px   az    el")
        for v in r["views"]:
            print(f"   {v['name'][:20]:20s} {v['rms_px']:11.2f} {v['all68_rms_px']:10.2f} {v['rigid_rms_px']:9.2f} "
                  f"{v['azimuth']:+5.0f} {v['elevation']:+5.0f}")
    results["mvfnet"] = {k: v for k, v in mv.items() if k != "_preview"}
    results["nersemble"] = {k: v for k, v in ne.items() if k != "_preview"}
    if args.synth:
        s = synth(args.synth)
        results["synthheads"] = s
        f = lambda x: "-" if x is None else f"{x:.1f}"  # noqa: E731
        print(f"SynthHeads ({s['identities']} identities, azimuths -60..60, elevation 5): faces found "
              f"{s['faces_found']}/{s['views']}; median relative rotation error {f(s['median_rel_rot_deg'])} deg over all "
              f"pairs, {f(s['median_rel_rot_deg_within_20'])} deg among views within +-20 deg")
        print("   azimuth  median absolute rotation error (head-centric frame), deg")
        for a, e in s["median_abs_rot_deg_by_azimuth"].items():
            print(f"   {int(a):+7d}  {f(e)}")
    od = out_dir()
    if od:
        (od / "frontend_pose.json").write_text(json.dumps(results, indent=1, default=float))
        from avat3r.io.images import save_image

        for name, r in (("mvfnet", mv), ("nersemble", ne)):
            if "_preview" in r:
                save_image(od / f"frontend_preview_{name}.png", r["_preview"])


if __name__ == "__main__":
    main()
