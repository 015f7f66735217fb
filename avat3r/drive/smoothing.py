"""One-Euro filter (Casiez, Roussel, Vogel, CHI 2012): low-pass whose cut-off rises with speed, so slow motion
is smoothed hard (no jitter) and fast motion passes with little lag. Works on vectors, one filter per value."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["OneEuro"]


class OneEuro:
    """``filter(x [D], t seconds) -> [D]``. min_cutoff Hz: smoothing at rest; beta: how fast the cut-off grows
    with speed; d_cutoff Hz: smoothing of the speed estimate."""

    def __init__(self, min_cutoff: float = 1.5, beta: float = 0.3, d_cutoff: float = 1.0):
        self.min_cutoff, self.beta, self.d_cutoff = float(min_cutoff), float(beta), float(d_cutoff)
        self.x = self.dx = self.t = None

    @staticmethod
    def _alpha(cutoff, dt: float):
        tau = 1.0 / (2 * math.pi * np.asarray(cutoff, np.float64))
        return 1.0 / (1.0 + tau / dt)

    def reset(self) -> None:
        self.x = self.dx = self.t = None

    def __call__(self, x, t: float) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if self.x is None or t <= self.t:
            self.x, self.dx, self.t = x.copy(), np.zeros_like(x), float(t)
            return x.copy()
        dt = float(t) - self.t
        dx = (x - self.x) / dt
        a_d = self._alpha(self.d_cutoff, dt)
        self.dx = a_d * dx + (1 - a_d) * self.dx
        a = self._alpha(self.min_cutoff + self.beta * np.abs(self.dx), dt)
        self.x = a * x + (1 - a) * self.x
        self.t = float(t)
        return self.x.copy()
