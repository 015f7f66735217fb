"""Sample quality of GGHead generators: KID on the features of an identity CNN trained here (avat3r.generate.quality).

    python bench/gghead_kid.py --pool POOL --heldout HELD --generator weights/gghead [--generator other] [--json out.json]

POOL: SynthHeads identities the feature net learns to tell apart (and the generator was trained on); HELD: other
identities (``python -m avat3r.generate.train build-pool --start-seed 900000``). Prints one JSON object: the
references real vs real (POOL views vs HELD views: the floor) and the untrained generator (the ceiling), and the
KID of every generator against HELD. KID values are raw MMD^2 of 256-d features (not x1000) and comparable only
within one run of this script (one feature net). The training run computes the same numbers at every snapshot
(``python -m avat3r.generate.train --heldout HELD --snapshot-s S``). A GPU with gsplat makes it take seconds; on
the CPU use small --n / --views / --feature-steps.
"""

from __future__ import annotations

import argparse
import json

import torch


def run(pool: str, heldout: str, generators: list[str], device: str, n: int = 2000, views: int = 32,
        feature_steps: int = 1500) -> dict:
    from avat3r.generate.hub import load_generator
    from avat3r.generate.quality import KIDProbe
    from avat3r.generate.train import HeadPool, RealBank, TrainConfig

    dev = torch.device(device)
    Gs = [load_generator(g, device=dev, cache=False) for g in generators]
    cfg = Gs[0].config
    tc = TrainConfig(preset=cfg.preset, views_per_head=views)
    heads = HeadPool(pool, dev)
    heads.refresh()
    bank = RealBank(cfg.image_resolution, cfg.background, cfg.world_scale, tc, dev)
    bank.add(heads.heads)
    probe = KIDProbe(heldout, tc, dev, n=n, views_per_head=views, feature_steps=feature_steps)
    res = {"device": str(dev), "gpu": torch.cuda.get_device_name(0) if dev.type == "cuda" else None,
           "train_heads": bank.n_heads, "n": n, **probe.prepare(Gs[0], bank), "generators": {}}
    for path, G in zip(generators, Gs):
        k = probe(G, {}, None, bank)
        res["generators"][path] = {"kid": k["kid"], "kid_std": k["kid_std"]}
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pool", required=True)
    ap.add_argument("--heldout", required=True)
    ap.add_argument("--generator", action="append", required=True)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--n", type=int, default=2000, help="images per KID set")
    ap.add_argument("--views", type=int, default=32, help="views rendered per identity")
    ap.add_argument("--feature-steps", type=int, default=1500)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    res = run(a.pool, a.heldout, a.generator, a.device, a.n, a.views, a.feature_steps)
    print(json.dumps(res))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
