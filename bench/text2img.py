"""Text -> portrait benchmark: prompt adherence (an attribute classifier trained on SynthHeads renders judges the
generated portraits) and timing (CPU prompt -> portrait, prompt -> animated avatar; GPU prompt -> portrait).

    python bench/text2img.py --pipeline weights/text2img --classifier weights/text2img/classifier --prompts 200
    python bench/text2img.py ... --cpu-timing            # + prompt -> portrait and prompt -> avatar on this CPU
    python bench/text2img.py --prompts 0 --app-timing    # + the app's route over HTTP (portrait, viewer, clip)

Prompts are captions of held-out identities (train seeds >= 900_000, never trained on), so each asks for a few
attributes; adherence = requested attributes the classifier finds / requested attributes. The same requests
scored on unconditional samples (empty prompt) give the base rate a model that ignores the text would reach.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from avat3r.text2img.classifier import AttributeClassifier
from avat3r.text2img.data import GROUP_NAMES
from avat3r.text2img.vocab import EXPRESSION_PRESET, GROUPS, VIEW_AZIMUTH, attributes_of, caption, parse_prompt

HELD_OUT_FIRST_SEED = 900_000


def bench_prompts(n: int = 200, seed: int = 0) -> list[str]:
    """n captions of held-out identities with random expression and view classes (deterministic)."""
    from avat3r.data.identity import sample_identity

    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        ident = sample_identity(HELD_OUT_FIRST_SEED + k)
        attrs = attributes_of(ident, list(EXPRESSION_PRESET)[rng.integers(len(EXPRESSION_PRESET))],
                              list(VIEW_AZIMUTH)[rng.choice(3, p=(0.6, 0.2, 0.2))])
        out.append(caption(attrs, rng, keep=0.6))
    return out


def score(pred: np.ndarray, requests: list[dict]) -> dict:
    """pred [N, G] classes; requests: per prompt {group: class name} -> hits/total overall and per group."""
    hit, tot = {g: 0 for g in GROUP_NAMES}, {g: 0 for g in GROUP_NAMES}
    for row, req in zip(pred, requests):
        for g, c in req.items():
            i = GROUP_NAMES.index(g)
            tot[g] += 1
            hit[g] += int(GROUPS[g][int(row[i])] == c)
    n = sum(tot.values())
    return {"adherence": sum(hit.values()) / max(1, n), "requested": n,
            "per_group": {g: [hit[g], tot[g]] for g in GROUP_NAMES if tot[g]}}


def adherence(pipe, clf, prompts: list[str], steps: int = 20, guidance: float = 3.0, batch: int = 50, seed: int = 0) -> dict:
    """Generate one portrait per prompt and score it; also score unconditional samples (base rate)."""
    from avat3r.text2img.pipeline import to_model

    dev = pipe.unet.device
    requests = [parse_prompt(p) for p in prompts]
    preds, base = [], []
    for i in range(0, len(prompts), batch):
        chunk = prompts[i:i + batch]
        out = pipe(chunk, seed=seed + i, steps=steps, guidance=guidance)
        preds.append(clf.predict(to_model(torch.from_numpy(out.images)).to(dev)).cpu().numpy())
        unc = _unconditional(pipe, len(chunk), seed + i, steps)
        base.append(clf.predict(to_model(torch.from_numpy(unc)).to(dev)).cpu().numpy())
    res = score(np.concatenate(preds), requests)
    res["base_rate_unconditional"] = score(np.concatenate(base), requests)["adherence"]
    res.update(prompts=len(prompts), steps=steps, guidance=guidance)
    return res


@torch.inference_mode()
def _unconditional(pipe, n: int, seed: int, steps: int) -> np.ndarray:
    """n samples with the empty prompt (the CFG 'null' condition), same seeds as the prompted ones."""
    from avat3r.text2img.pipeline import PromptEncoder, to_images

    dev, size = pipe.unet.device, int(pipe.unet.config.sample_size)
    ids, _ = pipe.text_encoder.tokenize([""] * n, dev)
    hid = pipe.text_encoder(ids).to(pipe.unet.dtype)
    x = torch.stack([torch.randn(3, size, size, generator=torch.Generator().manual_seed(seed + b)) for b in range(n)]).to(dev)
    pipe.scheduler.set_timesteps(steps, device=dev)
    for t in pipe.scheduler.timesteps:
        eps = pipe.unet(x, t, encoder_hidden_states=hid, encoder_attention_mask=PromptEncoder.mask(ids)).sample
        x = pipe.scheduler.step(eps, t, x).prev_sample
    return to_images(x)


def time_portrait(pipe, steps: int = 20, repeats: int = 3) -> dict:
    """Seconds for one prompt -> one portrait (best and median of ``repeats``)."""
    dev = pipe.unet.device
    ts = []
    for r in range(repeats + 1):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        pipe("long blond hair, glasses, smiling", seed=r, steps=steps)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        ts.append(time.perf_counter() - t)
    ts = ts[1:]  # the first call warms up
    return {"best_s": round(min(ts), 3), "median_s": round(float(np.median(ts)), 3), "steps": steps, "device": str(dev)}


def time_avatar(model: str, out_dir: str, steps: int = 20) -> dict:
    """Seconds for prompt -> portrait -> Avat3r avatar -> turntable + expression clip (the CLI's route)."""
    from avat3r.text2img.route import generate_from_prompt

    marks = []
    t0 = time.perf_counter()
    paths = generate_from_prompt("long brown hair, smiling", out_dir, seed=0, steps=steps, model=model,
                                 progress=lambda f, m: marks.append((round(time.perf_counter() - t0, 2), m)))
    return {"total_s": round(time.perf_counter() - t0, 2), "outputs": sorted(paths), "progress": marks[::4]}


def time_app(model: str, threads: int, runs: int = 2, steps: int = 20) -> dict:
    """Seconds for the app's "From a text prompt" route over HTTP against ``python app.py`` (the public demo's path:
    portrait, reconstruction, the 3D viewer's .ply and the animated expression clip), cold then warm."""
    import sys

    from avat3r.pipeline import default_weights_dir

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from app_fixtures import AppServer
    from gradio_client import Client

    env = {"OMP_NUM_THREADS": str(threads), "AVAT3R_TEXT2IMG": str(Path(model).resolve()), "AVAT3R_VIDEO_SIZE": "256"}
    times, report = [], ""
    with AppServer(default_weights_dir(), env=env, timeout=240) as srv:
        c = Client(srv.url, verbose=False)
        for r in range(runs + 1):
            t = time.perf_counter()
            out = c.predict("long brown hair, smiling", r, steps, api_name="/generate_from_text")
            times.append(time.perf_counter() - t)
            report = out[3]  # outputs less the session state: portrait, viewer, clip, report, ply
    return {"cold_s": round(times[0], 2), "warm_s": [round(x, 2) for x in times[1:]],
            "app_report": report.splitlines()[-1] if report else ""}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pipeline", default="weights/text2img")
    ap.add_argument("--classifier", default=None, help="default: <pipeline>/classifier")
    ap.add_argument("--prompts", type=int, default=200)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--guidance", type=float, default=3.0)
    ap.add_argument("--device", default=None)
    ap.add_argument("--cpu-timing", action="store_true", help="time prompt -> portrait and -> animated avatar on the CPU")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--app-timing", action="store_true", help="time the app's text route over HTTP (python app.py)")
    ap.add_argument("--out", default=None, help="write the results (.json) here")
    a = ap.parse_args(argv)
    from avat3r.text2img.hub import load_portrait_pipeline

    dev = torch.device(a.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.set_num_threads(a.threads) if dev.type == "cpu" else None
    pipe = load_portrait_pipeline(a.pipeline, device=dev)
    clf = AttributeClassifier.from_pretrained(a.classifier or str(Path(a.pipeline) / "classifier")).to(dev).eval()
    res = {"machine": torch.cuda.get_device_name() if dev.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"}
    if a.prompts > 0:
        res["adherence"] = adherence(pipe, clf, bench_prompts(a.prompts), a.steps, a.guidance)
        print(f"adherence over {a.prompts} prompts: {100 * res['adherence']['adherence']:.1f} % of "
              f"{res['adherence']['requested']} requested attributes (unconditional base rate "
              f"{100 * res['adherence']['base_rate_unconditional']:.1f} %)")
        print("per group (hits, requested):", json.dumps(res["adherence"]["per_group"]))
    res["portrait_time"] = time_portrait(pipe, a.steps)
    print(f"prompt -> portrait on {res['machine']}: {res['portrait_time']}")
    if a.cpu_timing:
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            res["avatar_time"] = time_avatar(a.pipeline, d, a.steps)
        print(f"prompt -> animated avatar: {res['avatar_time']['total_s']} s")
    if a.app_timing:
        res["app_time"] = time_app(a.pipeline, a.threads, steps=a.steps)
        print(f"app: prompt -> animated avatar on screen: {res['app_time']}")
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
