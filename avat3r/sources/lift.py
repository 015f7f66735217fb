"""One photo -> 3D GAN inversion into GGHead -> four rendered views (the paper's Sec. 4.5 single-image route), or
the photo alone (``mode="native"``, V = 1). See docs/LIFT.md."""

from __future__ import annotations

from ..errors import InputError
from ..limits import MAX_VIEWS
from .base import Source, SourceResult


class LiftSource(Source):
    name = "lift"
    label = "One photo (lifted to 4 views by GAN inversion)"
    takes = "photo"
    help = ("one photo -> GGHead inversion -> 4 rendered views (--mode lift|lift+photo|native; weights: weights/gghead, "
            "weights/lift; EG3D + GOAE from weights/eg3d when installed)")
    order = 20

    def available(self) -> str | None:
        from ..generate.hub import WEIGHTS_ENV, generator_missing
        from ..lift.official.load import EG3D_ENV, eg3d_missing

        missing = generator_missing()
        if missing is None or eg3d_missing() is None:  # GGHead, or the paper's own EG3D (+ GOAE)
            return None
        return f"{missing} to lift a photo into: install them or set {WEIGHTS_ENV} (or EG3D's checkpoint: {EG3D_ENV})"

    def to_capture(self, inp, *, size=256, max_views=MAX_VIEWS, cameras=None, masks=None, progress=None, frontend=None,
                   mode: str | None = None, generator=None, encoder=None, invert=None, with_photo: bool = False,
                   **options) -> SourceResult:
        from ..lift.route import check_mode, lift_photo, photo_view

        if cameras is not None or masks is not None:
            raise InputError("the single-photo route finds the camera and mask itself; give just the photo")
        mode = check_mode(mode or "lift")  # this source is the lift; DEFAULT_MODE decides for `avat3r lift` and the app
        if mode == "native":
            res = photo_view(inp, size, frontend)
            return SourceResult(res.capture, list(res.report) + ["native mode: the photo goes to Avat3r alone (V = 1)"],
                                res.preview)
        cap, lr, _, report = lift_photo(inp, size=size, generator=generator, encoder=encoder, config=invert,
                                        frontend=frontend, with_photo=with_photo or mode == "lift+photo",
                                        progress=progress)
        if len(cap) > max_views:
            cap = cap.select(max_views)
        preview = (lr.render_after * 255).clip(0, 255).astype("uint8") if lr.render_after is not None else None
        return SourceResult(cap, report, preview)


SOURCE = LiftSource()
