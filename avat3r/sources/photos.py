"""Photos of one head (paths, PIL images, HxWx3 arrays, or a folder of photos) -> the front end -> Capture.

With cameras for images of one size (a posed capture given as arrays), nothing is cropped: that is a capture."""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from ..io.paths import IMAGE_SUFFIXES
from ..limits import MAX_INPUT_FILES, MAX_VIEWS
from .base import Source, SourceResult
from .files import as_items, is_capture_folder, is_path, is_video, is_zip


def photo_list(inp) -> list:
    """Photos as a list; a folder (without cameras.json) -> its image files, sorted."""
    items = as_items(inp)
    if len(items) == 1 and is_path(items[0]) and Path(items[0]).is_dir():
        folder = Path(items[0])
        files = sorted(q for q in folder.iterdir() if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise InputError(f"{folder}: the folder has no images ({', '.join(IMAGE_SUFFIXES[:3])}, ...) and no "
                             "cameras.json; give photos or a capture folder")
        return files
    return items


class PhotoSource(Source):
    name = "photos"
    label = f"Photos (1-{MAX_VIEWS} of one head; 4 from different sides work best)"
    takes = "files"
    help = "photos of one head: cameras estimated from face landmarks, head cropped and masked"
    suffixes = IMAGE_SUFFIXES
    order = 10

    def accepts(self, inp) -> bool:
        import numpy as np

        items = as_items(inp)
        kinds = all(is_path(x) or isinstance(x, (np.ndarray, bytes)) or hasattr(x, "mode") for x in items)
        return bool(items) and kinds and not any(is_video(x) or is_zip(x) or is_capture_folder(x) for x in items)

    def to_capture(self, inp, *, size=256, max_views=MAX_VIEWS, cameras=None, masks=None, progress=None,
                   frontend=None, **options) -> SourceResult:
        from ..frontend import prepare

        items = photo_list(inp)
        if not items:
            raise InputError(f"no images given; give 1 to {max_views} photos of the same head, a video or a capture folder")
        if len(items) > MAX_INPUT_FILES:
            raise InputError(f"{len(items)} photos given; at most {MAX_INPUT_FILES} are considered (the network uses "
                             f"up to {max_views}): keep the photos of the head from different sides")
        if len(items) == 1 and is_path(items[0]) and not Path(items[0]).exists():
            raise InputError(f"{items[0]}: no such file")
        mlist = None if masks is None else as_items(masks)
        if cameras is not None:
            posed = _posed_capture(items, cameras, mlist)
            if posed is not None:
                return posed
        res = prepare(items, size=size, cameras=cameras, masks=mlist, max_views=max_views, config=frontend)
        return SourceResult(res.capture, list(res.report), res.preview)


def _posed_capture(items: list, cameras, masks) -> SourceResult | None:
    """Photos of one size with one camera each are a posed capture: used as they are (no crop; the pipeline only
    fits them to the model's size). None when their sizes differ (the front end crops them to one size)."""
    import numpy as np

    from ..capture import Capture, check_cameras, load_mask
    from ..frontend.load import view_names
    from ..io.images import load_image

    names = view_names(items)
    if len(cameras) != len(items):
        raise InputError(f"got {len(items)} images but {len(cameras)} cameras; give one camera per image, in order")
    images = [load_image(x, f"photo {i + 1} ({names[i]})", background=0.0) for i, x in enumerate(items)]
    if len({im.shape for im in images}) > 1:
        return None
    check_cameras(cameras, [im.shape[:2] for im in images], names, where="cameras")
    m = None
    if masks is not None:
        if len(masks) != len(items):
            raise InputError(f"got {len(masks)} masks for {len(items)} images; give one mask per image")
        if any(x is None for x in masks):
            raise InputError("give a mask for every image, or none (they are computed then)")
        m = np.stack([load_mask(x, f"mask {i + 1}", images[i].shape[:2]) for i, x in enumerate(masks)])
    h, w = images[0].shape[:2]
    cap = Capture(np.stack(images).astype(np.float32), cameras, names, m)
    return SourceResult(cap, [f"{len(cap)} photos of {w}x{h} px with given cameras{' and masks' if m is not None else ''}: "
                              "used as a posed capture (not cropped)"])


SOURCE = PhotoSource()
