"""Regenerate demo/examples/: SynthHeads capture folders (hold-out identities, 4 views at 256²) and one real
photo (skimage.data.astronaut(), public domain). Keep the folder small (< 2 MB): the app ships it.

    python demo/make_examples.py
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "examples"


def main() -> None:
    sys.path.insert(0, str(HERE.parent))
    import skimage.data
    from PIL import Image

    from avat3r.data.capture_folder import synth

    OUT.mkdir(exist_ok=True)
    for d in OUT.glob("synth_*"):
        shutil.rmtree(d)
    tmp = OUT / "_tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    # three of the 12 hold-out identities (never seen in training), 4 views each at its own expression
    for i, folder in enumerate(synth(tmp, subjects=3, seed=0, views=4, size=256)):
        shutil.move(str(folder), OUT / f"synth_{i + 1}")
    shutil.rmtree(tmp, ignore_errors=True)
    (OUT / "astronaut").mkdir(exist_ok=True)
    Image.fromarray(skimage.data.astronaut()).save(OUT / "astronaut" / "astronaut.jpg", quality=90)
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"wrote {OUT} ({total / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
