"""A video of one head -> frames chosen for head-pose diversity -> the front end -> Capture."""

from __future__ import annotations

from ..errors import InputError
from ..io.paths import VIDEO_SUFFIXES
from ..limits import MAX_VIEWS
from .base import Source, SourceResult
from .files import as_items, is_video


class VideoSource(Source):
    name = "video"
    label = "Video (a clip turning the head; frames with different poses are picked)"
    takes = "files"
    help = "a video of one head (mp4, mov, webm, gif): frames with the most different head poses are used"
    suffixes = VIDEO_SUFFIXES
    order = 20

    def accepts(self, inp) -> bool:
        items = as_items(inp)
        return len(items) == 1 and is_video(items[0])

    def to_capture(self, inp, *, size=256, max_views=MAX_VIEWS, cameras=None, masks=None, progress=None,
                   frontend=None, **options) -> SourceResult:
        from ..frontend import prepare

        items = as_items(inp)
        if len(items) != 1 or not is_video(items[0]):
            raise InputError(f"give one video file ({', '.join(VIDEO_SUFFIXES)}); for several views use photos")
        if cameras is not None or masks is not None:
            raise InputError("cameras and masks cannot be given with a video (frames are chosen automatically); give the "
                             "frames as images with their cameras, or a capture folder")
        res = prepare(items[0], size=size, max_views=max_views, config=frontend)
        return SourceResult(res.capture, list(res.report), res.preview)


SOURCE = VideoSource()
