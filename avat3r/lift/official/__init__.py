"""The paper's own single-image stack (Sec. 4.5): EG3D's tri-plane generator loaded from its official pickles
(``eg3d``, ``volume``, ``load``) and GOAE's encoder from its state dicts (``goae``), used by the lift route when
their weights are installed (docs/LIFT.md, "EG3D + GOAE"). Nothing is imported from the original code bases."""

from .eg3d import EG3DConfig, EG3DGenerator, eg3d_camera
from .load import EG3D_ENV, eg3d_missing, find_eg3d_checkpoint, load_eg3d

__all__ = ["EG3DConfig", "EG3DGenerator", "eg3d_camera", "EG3D_ENV", "eg3d_missing", "find_eg3d_checkpoint", "load_eg3d"]
