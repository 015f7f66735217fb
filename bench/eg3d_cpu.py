"""CPU cost of the paper's own lift stack at its real sizes (docs/LIFT.md, "EG3D + GOAE"), with RANDOM weights (the
cost does not depend on them; no real EG3D / GOAE weights are installed here):

    OMP_NUM_THREADS=1 python bench/eg3d_cpu.py [--photo PATH] [--threads 1] [--json out.json]

EG3D's FFHQ 512 generator (EG3DConfig() defaults: 8XDC super-resolution, 48 + 48 samples, neural rendering
128^2), GOAE's encoder (Swin-V2 2-2-18-2) and AFA: the front end on one photo, then ``lift_photo_eg3d`` (GOAE w+,
AFA-corrected triplanes, the four views rendered and super-resolved to 512^2, resized to 256, head masks), with
the seconds per stage (wall and process CPU time).
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

DEFAULT_PHOTO = "../shared/realdata/Fanziapril_mvfnet/data/imgs/left.jpg"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--photo", default=DEFAULT_PHOTO)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from avat3r.lift.official.eg3d import EG3DConfig, EG3DGenerator
    from avat3r.lift.official.goae import GOAE, GOAEConfig
    from avat3r.lift.official.route import lift_photo_eg3d
    from avat3r.lift.route import photo_view

    out = {"machine": f"{platform.processor() or platform.machine()}, {a.threads} torch thread(s)", "weights": "random"}

    def timed(name, fn):
        w, c = time.time(), time.process_time()
        r = fn()
        out[name] = {"wall_s": round(time.time() - w, 1), "cpu_s": round(time.process_time() - c, 1)}
        print(name, out[name], flush=True)
        return r

    torch.manual_seed(0)
    view = timed("front_end", lambda: photo_view(a.photo, 256).capture)
    G = timed("build_eg3d", lambda: EG3DGenerator(EG3DConfig()).eval().requires_grad_(False))
    enc = timed("build_goae", lambda: GOAE(GOAEConfig()).eval().requires_grad_(False))
    ws = G.backbone.mapping.w_avg.expand(1, G.num_ws, -1)
    from avat3r.lift.official.route import eg3d_orbit

    c = eg3d_orbit([20.0], [0.0], G.config)
    with torch.no_grad():
        planes = timed("triplanes", lambda: G.planes(ws))
        timed("one_view_render_and_sr", lambda: G.synthesis(ws, c, planes=planes))
        timed("goae_encoder", lambda: enc.encode(torch.zeros(1, 3, 512, 512), G.backbone.mapping.w_avg))
    cap, lr, rep = timed("route_total", lambda: lift_photo_eg3d(view, 256, G, enc, steps=0))
    out["route_stages_wall_s"] = {k: round(v, 1) for k, v in lr.seconds.items()}
    out["report"] = rep
    print(json.dumps(out, indent=1))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
