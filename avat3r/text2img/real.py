"""The real text-to-image path: a local turbo-class diffusers snapshot (SD-Turbo, SDXL-Turbo) when one is present.

``AutoPipelineForText2Image.from_pretrained(dir, local_files_only=True)``: nothing is ever downloaded; a missing or
broken snapshot is a CheckpointError that says where to put one. The prompt goes into a portrait template (one
person, head and shoulders, facing the camera, plain background); the image is cropped square around the largest
face (dlib, the front end's detector) so the rest of the route sees a head-centred photo.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import CheckpointError

PORTRAIT_TEMPLATE = ("a studio portrait photo of one person, {prompt}, head and shoulders, facing the camera, "
                     "plain light grey background, soft even light, sharp focus")
FACE_CROP_SCALE = 2.4  # crop side / face width: the whole head with hair and some neck


def load_text2img(path, device=None):
    """A local diffusers text-to-image snapshot -> its pipeline (float16 on CUDA, float32 on CPU), or CheckpointError."""
    from diffusers import AutoPipelineForText2Image
    from diffusers.utils import logging as dlog

    p = Path(path)
    if not (p / "model_index.json").is_file():
        raise CheckpointError(f"no diffusers snapshot at {p} (model_index.json missing); put a local copy of e.g. "
                              "stabilityai/sd-turbo there or set $AVAT3R_TEXT2IMG (nothing is downloaded)")
    dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dlog.set_verbosity_error()
    dlog.disable_progress_bar()
    try:
        pipe = AutoPipelineForText2Image.from_pretrained(str(p), local_files_only=True,
                                                         dtype=torch.float16 if dev.type == "cuda" else torch.float32)
    except (OSError, ValueError, KeyError, RuntimeError, ImportError) as e:
        raise CheckpointError(f"{p}: the text-to-image snapshot could not be loaded offline "
                              f"({type(e).__name__}: {str(e)[:300]}); check that every component folder is complete") from None
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(dev)


def portrait_prompt(prompt: str) -> str:
    return PORTRAIT_TEMPLATE.format(prompt=prompt.strip().rstrip(".,"))


@torch.inference_mode()
def turbo_portrait(pipe, prompt: str, *, seed: int = 0, steps: int = 2, guidance: float = 0.0, size: int | None = None
                   ) -> np.ndarray:
    """prompt -> [H, W, 3] float32 in [0, 1] (turbo models: 1-4 steps, no guidance)."""
    gen = torch.Generator("cpu").manual_seed(int(seed))
    kw = {} if size is None else {"height": int(size), "width": int(size)}
    out = pipe(portrait_prompt(prompt), num_inference_steps=int(steps), guidance_scale=float(guidance), generator=gen,
               output_type="np", **kw)
    return np.clip(np.asarray(out.images[0], np.float32), 0, 1)


def face_crop(image: np.ndarray, scale: float = FACE_CROP_SCALE) -> tuple[np.ndarray, str]:
    """[H, W, 3] -> (square crop centred on the largest face, what was done). No face found: the centre square."""
    from ..frontend.crop import crop_square
    from ..frontend.faces import FaceDetector, faces_available

    h, w = image.shape[:2]
    faces = []
    if faces_available():
        faces, _ = FaceDetector(try_rotations=False).detect(image)
    if not faces:
        s = min(h, w)
        box = np.array([(w - s) / 2, (h - s) / 2, s, s], float)
        crop, _ = crop_square(image, box, s)
        return crop, "no face found in the generated image: kept its centre square"
    f = max(faces, key=lambda f: f.width)
    cx, cy = (f.box[0] + f.box[2]) / 2, (f.box[1] + f.box[3]) / 2
    side = scale * f.width
    crop, _ = crop_square(image, np.array([cx - side / 2, cy - side / 2, side, side]), min(512, max(64, int(side))))
    return crop, f"cropped a {int(side)} px square around the face ({f.detector} detector)"
