"""Front end: casual photos, a video or a capture folder -> a posed, masked, head-centric ``Capture``, offline.

    from avat3r.frontend import prepare
    res = prepare(["a.jpg", "b.jpg"], size=256)      # or prepare("clip.mp4"), prepare("capture_folder/")
    res.capture          # images [V, S, S, 3], masks [V, S, S], cameras (head-centric, OpenCV)
    res.report           # what was done, one message a line
    res.preview          # [H, W, 3] uint8: crops + landmarks + masks + top view of the cameras
    res.failures         # views that were skipped and why

Photos need the dlib face detector (``dlib-bin`` + ``face-recognition-models``, installed with the package); capture folders with cameras do not.
Nothing is imported until used.
"""

from __future__ import annotations

__all__ = ["prepare", "FrontendConfig", "FrontendResult", "Failure", "ViewInfo", "faces_available", "landmark_template"]


def __getattr__(name):
    if name in ("prepare", "FrontendConfig", "FrontendResult", "Failure", "ViewInfo"):
        from . import prepare_capture as _p

        return getattr(_p, name)
    if name == "faces_available":
        from .faces import faces_available

        return faces_available
    if name == "landmark_template":
        from .landmark_template import landmark_template

        return landmark_template
    raise AttributeError(name)
