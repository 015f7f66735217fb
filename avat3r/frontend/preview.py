"""The front end's preview: one uint8 image that shows what it did, for the app, notebooks and the CLI.

Layout: one column per view; top row the crop with its landmarks (green) and the head-centric crop's centre,
bottom row the masked head over grey; a last column holds a top view of the estimated cameras around the head
(x right = subject's left, face pointing down the plot, numbers = view order).
"""

from __future__ import annotations

import numpy as np

from ..capture import Capture

__all__ = ["preview_grid", "camera_top_view"]

TILE = 160


def _u8(img: np.ndarray) -> np.ndarray:
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def camera_top_view(centers: np.ndarray, size: int = 2 * TILE, look: np.ndarray | None = None) -> np.ndarray:
    """centers [N, 3] head-centric camera centres (m) -> [size, size, 3] uint8 plot seen from above (+y)."""
    import cv2

    img = np.full((size, size, 3), 255, np.uint8)
    c = size // 2
    r_max = max(float(np.max(np.linalg.norm(centers[:, [0, 2]], axis=1))) if len(centers) else 1.0, 0.2)
    s = 0.42 * size / r_max  # pixels per metre

    def px(x, z):  # plot x = world x, plot down = world +z (the face looks down the plot)
        return int(round(c + x * s)), int(round(c + z * s))

    for rr in (0.25, 0.5, 1.0, 2.0):  # distance rings in metres
        if rr * s < 0.5 * size:
            cv2.circle(img, (c, c), int(rr * s), (225, 225, 225), 1, cv2.LINE_AA)
            cv2.putText(img, f"{rr:g} m", (c + 3, c - int(rr * s) + 11), cv2.FONT_HERSHEY_PLAIN, 0.8, (170, 170, 170), 1)
    head = max(3, int(0.09 * s))
    cv2.ellipse(img, (c, c), (head, int(head * 1.2)), 0, 0, 360, (120, 120, 120), -1, cv2.LINE_AA)
    cv2.circle(img, px(0.0, 0.11 * max(1.0, head / (0.09 * s))), max(2, head // 4), (120, 120, 120), -1, cv2.LINE_AA)  # nose
    for i, p in enumerate(np.asarray(centers)):
        q = px(p[0], p[2])
        cv2.line(img, q, (c, c), (200, 170, 120), 1, cv2.LINE_AA)
        cv2.circle(img, q, 5, (30, 100, 220), -1, cv2.LINE_AA)
        cv2.putText(img, str(i + 1), (q[0] + 6, q[1] - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (20, 20, 20), 1, cv2.LINE_AA)
    cv2.putText(img, "cameras, top view", (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (60, 60, 60), 1, cv2.LINE_AA)
    cv2.putText(img, "x ->  (subject's left)", (6, size - 22), cv2.FONT_HERSHEY_PLAIN, 0.9, (90, 90, 90), 1)
    cv2.putText(img, "face looks down", (6, size - 8), cv2.FONT_HERSHEY_PLAIN, 0.9, (90, 90, 90), 1)
    return img


def preview_grid(capture: Capture, views=None, raw_crops=None) -> np.ndarray:
    """Capture (+ the front end's ViewInfo list and raw crops [V, S, S, 3]) -> preview [H, W, 3] uint8."""
    import cv2

    V = len(capture)
    S = capture.size[0]
    raws = capture.images if raw_crops is None else raw_crops
    tops, bots = [], []
    for v in range(V):
        top = cv2.resize(_u8(raws[v]), (TILE, TILE), interpolation=cv2.INTER_AREA)
        if views is not None and views[v].landmarks_crop is not None:
            for x, y in views[v].landmarks_crop * (TILE / S):
                cv2.circle(top, (int(x), int(y)), 1, (0, 255, 0), -1)
        cv2.putText(top, str(v + 1), (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 2, cv2.LINE_AA)
        cv2.putText(top, str(v + 1), (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        m = np.ones((S, S), np.float32) if capture.masks is None else capture.masks[v]
        cut = raws[v] * m[..., None] + 0.5 * (1 - m[..., None])
        bot = cv2.resize(_u8(cut), (TILE, TILE), interpolation=cv2.INTER_AREA)
        if views is not None:
            cv2.putText(bot, f"az {views[v].azimuth_deg:+.0f}", (4, TILE - 6), cv2.FONT_HERSHEY_PLAIN, 0.9, (20, 20, 20), 1)
        tops.append(top)
        bots.append(bot)
    grid = np.concatenate([np.concatenate(tops, 1), np.concatenate(bots, 1)], 0)
    plot = camera_top_view(capture.cameras.centers.double().numpy(), 2 * TILE)
    return np.ascontiguousarray(np.concatenate([grid, plot], 1))
