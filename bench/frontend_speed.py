"""Front-end speed per photo: load + detect + landmarks + pose + crop + mask (+ preview), warm models.

    python bench/frontend_speed.py

Photos: the astronaut portrait (skimage) scaled to 1024x1024 and saved as JPEG, and the same portrait placed in a
40-megapixel (7744x5164) JPEG. Stage times come from running the stages one by one on the same photo.
With $OUT set, writes $OUT/frontend_speed.json.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from frontend_common import background_photos, out_dir  # noqa: E402


def _best(fn, reps: int = 3) -> float:
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return min(ts)


def main() -> None:
    import cv2
    from PIL import Image
    from skimage import data

    from avat3r.cameras import Cameras
    from avat3r.frontend import prepare
    from avat3r.frontend.crop import crop_square, head_crop_box
    from avat3r.frontend.faces import FaceDetector
    from avat3r.frontend.load import load_photo
    from avat3r.frontend.mask import head_mask
    from avat3r.frontend.pose import intrinsics_from_focal35, solve_pose

    tmp = Path(tempfile.mkdtemp())
    astro = data.astronaut()
    p1024 = tmp / "portrait_1024.jpg"
    Image.fromarray(cv2.resize(astro, (1024, 1024), interpolation=cv2.INTER_CUBIC)).save(p1024, quality=92)
    big = (background_photos(5164, 1, seed=3)[0] * 255).astype(np.uint8)
    big = cv2.resize(big, (7744, 5164))
    big[1500:3548, 2800:4848] = cv2.resize(astro, (2048, 2048), interpolation=cv2.INTER_CUBIC)
    p40 = tmp / "photo_40mp.jpg"
    Image.fromarray(big).save(p40, quality=90)
    del big

    t = time.perf_counter()
    det = FaceDetector()
    t_models = time.perf_counter() - t
    prepare([p1024], size=256)  # warm-up (imports, caches)
    rows = []
    for path, size in ((p1024, 256), (p1024, 512), (p40, 256), (p40, 512)):
        photo = load_photo(path, "photo")
        img = photo.image
        faces, _ = det.detect(img)
        K = intrinsics_from_focal35(35.0, img.shape[1], img.shape[0])
        pose = solve_pose(faces[0].landmarks, K)
        box = head_crop_box(K, pose.world_to_cam)
        crop, valid = crop_square(img, box, size)
        cam = Cameras(K[None], pose.world_to_cam[None], img.shape[1], img.shape[0]).crop_resize(box[None], size)
        lm = (faces[0].landmarks - box[:2]) * size / box[2]
        st = {
            "load": _best(lambda: load_photo(path, "photo")),
            "detect+landmarks": _best(lambda: det.detect(img)),
            "pose": _best(lambda: solve_pose(faces[0].landmarks, K)),
            "crop": _best(lambda: crop_square(img, box, size)),
            "mask": _best(lambda: head_mask(crop, cam.K[0].double().numpy(), pose.world_to_cam, lm, valid)),
            "prepare() total": _best(lambda: prepare([path], size=size), 2),
        }
        rows.append({"photo": path.name, "pixels": f"{img.shape[1]}x{img.shape[0]}", "size": size, **st})
    print(f"2 CPU threads: torch={os.environ.get('OMP_NUM_THREADS', 'default')}; face models load once in {t_models:.2f} s")
    keys = ["load", "detect+landmarks", "pose", "crop", "mask", "prepare() total"]
    print(f"{'photo':18s} {'pixels':>10s} {'crop':>5s} " + " ".join(f"{k:>16s}" for k in keys))
    for r in rows:
        print(f"{r['photo']:18s} {r['pixels']:>10s} {r['size']:5d} " + " ".join(f"{r[k]:16.3f}" for k in keys))
    od = out_dir()
    if od:
        (od / "frontend_speed.json").write_text(json.dumps({"model_load_s": t_models, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
