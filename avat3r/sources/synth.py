"""A SynthHeads procedural head (seed) rendered from 4 dome cameras, with masks and per-view expressions.

Seed S gives the same head as ``avat3r synth --seed S`` (its subject_00): the S-th hold-out identity."""

from __future__ import annotations

from functools import lru_cache

from ..errors import InputError
from ..limits import MAX_VIEWS
from .base import Source, SourceResult


class SynthSource(Source):
    name = "synth"
    label = "SynthHeads procedural head (seed)"
    takes = "seed"
    help = "a procedural SynthHeads head rendered from 4 cameras (--seed S, as `avat3r synth --seed S`)"
    order = 40

    def to_capture(self, inp, *, size=256, max_views=MAX_VIEWS, cameras=None, masks=None, progress=None,
                   views: int = 4, split: str = "test", **options) -> SourceResult:
        from ..data.identity import split_seeds

        try:
            seed = int(inp)
        except (TypeError, ValueError):
            raise InputError(f"the synth source takes an integer seed, got {inp!r}") from None
        if isinstance(inp, bool) or not 0 <= seed < 2**31 or int(inp) != inp:
            raise InputError(f"the seed must be a whole number in [0, 2^31), got {inp!r}")
        if cameras is not None or masks is not None:
            raise InputError("cameras and masks cannot be given with a SynthHeads seed (it renders its own)")
        views = max(1, min(int(views), max_views))
        seeds = split_seeds(split)
        ident = int(seeds[seed % len(seeds)])
        if progress is not None:
            progress(0.0, f"rendering SynthHeads head {ident} (seed {seed})")
        cap = _render(ident, views, size, seed)
        cap = type(cap)(cap.images.copy(), cap.cameras, list(cap.names), cap.masks.copy(), cap.expressions.copy(),
                        {**cap.meta, "split": split})
        return SourceResult(cap, [f"SynthHeads head (seed {seed}, identity {ident}): {views} views of {size}x{size} px "
                                  "with cameras, masks and expressions"])


@lru_cache(maxsize=4)
def _render(ident: int, views: int, size: int, seed: int):
    """Rendering a head takes seconds on a CPU: the last few are kept (the caller gets copies)."""
    from ..data.capture_folder import synth_capture

    return synth_capture(ident, views, size, seed=seed)


SOURCE = SynthSource()
