"""Input sources: every route into an avatar is a *source* that turns its input into a ``Capture``.

    from avat3r.sources import list_sources, get_source, detect_source
    for s in list_sources():                      # the app, the CLI and the notebooks list routes from here
        print(s.name, s.takes, s.label)
    res = get_source("synth").to_capture(3, size=256)      # -> SourceResult(capture, report, preview)
    res = detect_source(["a.jpg", "b.jpg"]).to_capture(["a.jpg", "b.jpg"], size=256)

Built in: ``photos`` (1..n photos -> the front end), ``capture`` (a capture folder, a zip of one, or a Capture
object -> ``read_capture_folder``; nothing is re-cropped), ``video`` (frames chosen for head-pose diversity -> the
front end), ``synth`` (a SynthHeads procedural head from a seed, rendered from 4 dome cameras).

Adding a route (a GAN sample, a GAN inversion of one photo, a text portrait, ...) is one module in this package:

    # avat3r/sources/gghead.py
    from .base import Source, SourceResult

    class GGHeadSource(Source):
        name = "gghead"                            # CLI: --source gghead; unique
        label = "Generated head (GGHead)"          # shown in the app
        takes = "seed"                             # "files" | "seed" | "photo" | "text": which widget / CLI option
        help = "a head sampled from GGHead (--seed S)"
        order = 50                                 # position in listings

        def available(self):                       # None, or why not (e.g. weights missing): listed, not offered
            return None

        def to_capture(self, inp, *, size=256, max_views=8, cameras=None, masks=None, progress=None, **options):
            capture = ...                          # render 4 views with cameras (head-centric world, OpenCV)
            return SourceResult(capture, ["GGHead sample, seed 3"], preview=None)

    SOURCE = GGHeadSource()                        # the registry imports every module here and collects SOURCE

Keep the module light at import (import torch and weights inside ``to_capture``): listing sources must stay fast
(``avat3r --help``). ``Pipeline.reconstruct(inp, source="gghead")`` then runs it; the capture it returns is only
fitted to the model's input size (``PipelineConfig.fit``), views selected and masks computed where missing.
"""

from __future__ import annotations

from .base import Source, SourceResult, detect_source, get_source, list_sources

__all__ = ["Source", "SourceResult", "list_sources", "get_source", "detect_source"]
