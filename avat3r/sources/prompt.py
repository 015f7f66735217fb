"""A head from a text prompt: text -> portrait (our small diffusion model, or a local SD-Turbo snapshot) -> the view(s)
Avat3r reconstructs from (the paper's Fig. 7b route). See docs/TEXT2IMG.md and ``avat3r.text2img.route``."""

from __future__ import annotations

from ..errors import InputError
from ..limits import MAX_VIEWS
from .base import Source, SourceResult


class PromptSource(Source):
    name = "prompt"
    label = "From a text prompt (diffusion portrait)"
    takes = "text"
    help = 'a portrait generated from a text prompt (--prompt "long blond hair, smiling" [--seed S]; model: weights/text2img or $AVAT3R_TEXT2IMG)'
    order = 60

    def available(self) -> str | None:
        from ..errors import CheckpointError
        from ..text2img.hub import default_model_dir, model_kind

        try:
            model_kind(default_model_dir())
        except CheckpointError as e:
            return str(e)
        return None

    def to_capture(self, inp, *, size=256, max_views=MAX_VIEWS, cameras=None, masks=None, progress=None,
                   seed: int = 0, steps: int | None = None, guidance: float | None = None, model=None, device=None,
                   **options) -> SourceResult:
        from ..text2img.route import portrait_capture, text_portrait

        if cameras is not None or masks is not None:
            raise InputError("cameras and masks cannot be given with a text prompt (the portrait brings its own)")
        if not isinstance(inp, str):
            raise InputError(f"the prompt source takes text, got {type(inp).__name__}")
        portrait = text_portrait(inp, seed=seed, steps=steps, guidance=guidance, model=model, device=device,
                                 progress=progress)
        cap, report = portrait_capture(portrait, size, progress)
        preview = (portrait.image * 255 + 0.5).clip(0, 255).astype("uint8")
        return SourceResult(cap, report, preview)


SOURCE = PromptSource()
