"""What every "make an avatar" route writes last: the avatar's .ply, a turntable and an expression clip
(``avat3r generate``, ``avat3r lift``, ``avat3r generate --prompt``)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

__all__ = ["write_avatar_files"]


def write_avatar_files(avatar, out: Path, *, frames: int = 24, video_size: int = 256, fps: float = 24.0,
                       expressions: Sequence[str] = ("neutral", "smile", "surprise"), frames_per_step: int = 8,
                       tick: Callable[[float, str], None] | None = None, span: tuple[float, float] = (0.5, 0.9)
                       ) -> dict[str, Path]:
    """avatar -> out/avatar.ply, out/turntable.mp4 (frames > 0), out/expressions.mp4 (expressions given).
    tick(fraction, message) is called within ``span`` of the caller's progress. Returns the paths by name."""
    from ..io.video import write_video
    from ..pipeline import expression_sequence

    tick = tick or (lambda f, m: None)
    lo, hi = span
    out = Path(out)
    paths = {"avatar_ply": avatar.save_ply(out / "avatar.ply")}
    if frames > 0:
        tick(lo, "turntable")
        paths["turntable"] = write_video(out / "turntable.mp4", avatar.turntable(frames, video_size), fps=fps)
    if expressions:
        tick(lo + 0.5 * (hi - lo), "expression clip")
        codes = expression_sequence(avatar.expression_space, list(expressions), frames_per_step)
        paths["expressions"] = write_video(out / "expressions.mp4", avatar.animation(codes, size=video_size), fps=fps)
    return paths
