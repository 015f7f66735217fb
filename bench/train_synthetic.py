"""A synthetic training dataset for the training benchmarks: a textured sphere 'head' seen by orbit cameras.

It has the sample layout of ``avat3r.data.batch.collate`` at any resolution (paper: 4 inputs at 512², 8
supervision views at 667²) and costs nothing to load, so a benchmark measures the training step alone.
``num_samples`` distinct samples (deterministic by index) are generated once and cached.
"""

from __future__ import annotations

import numpy as np
import torch

from avat3r.cameras import Cameras, intrinsics_from_fov, look_at, pixel_rays, spherical_to_cartesian


def _cams(az, el, size: int, fov: float = 18.0) -> Cameras:
    eyes = spherical_to_cartesian(torch.as_tensor(az, dtype=torch.float32), torch.as_tensor(el, dtype=torch.float32),
                                  torch.ones(len(az)))
    K = intrinsics_from_fov(fov, size).expand(len(az), 3, 3)
    return Cameras(K, look_at(eyes), size, size)


class SyntheticHeads(torch.utils.data.Dataset):
    def __init__(self, num_samples: int = 4, input_size: int = 512, target_size: int = 667, num_inputs: int = 4,
                 num_targets: int = 8, expression_dim: int = 256, feature_dim: int = 0, feature_size: int = 64,
                 radius: float = 0.12, length: int = 10**6):
        self.n, self.s, self.t, self.V, self.T = num_samples, input_size, target_size, num_inputs, num_targets
        self.C, self.fd, self.fs, self.r, self.length = expression_dim, feature_dim, feature_size, radius, length
        self.cache: dict[int, dict] = {}

    def __len__(self) -> int:
        return self.length

    def _sphere(self, cams: Cameras, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        o, d = pixel_rays(cams)
        b = (o * d).sum(-1)
        disc = b * b - ((o * o).sum(-1) - self.r**2)
        hit = disc > 0
        pos = torch.where(hit[..., None], o + (-b - disc.clamp_min(0).sqrt())[..., None] * d, torch.zeros_like(o))
        # a smooth colour field on the sphere so that renderings have structure
        f = torch.as_tensor(rng.uniform(10, 40, 3), dtype=torch.float32)
        col = 0.5 + 0.4 * torch.sin(pos * f)
        img = torch.where(hit[..., None], col, torch.zeros_like(col))
        return img.numpy(), pos.numpy(), hit.float().numpy()

    def __getitem__(self, i: int) -> dict:
        k = i % self.n
        if k not in self.cache:
            rng = np.random.default_rng(k)
            icams = _cams(rng.uniform(-70, 70, self.V), rng.uniform(-15, 15, self.V), self.s)
            tcams = _cams(rng.uniform(-90, 90, self.T), rng.uniform(-20, 20, self.T), self.t)
            img, pos, conf = self._sphere(icams, rng)
            timg, _, _ = self._sphere(tcams, rng)
            s = dict(input_images=img, input_cameras=icams, input_positions=pos, input_confidence=conf,
                     target_images=timg, target_cameras=tcams,
                     target_expression=rng.standard_normal(self.C).astype(np.float32) * 0.5)
            if self.fd:
                s["input_features"] = rng.standard_normal((self.V, self.fd, self.fs, self.fs)).astype(np.float32)
            self.cache[k] = s
        return self.cache[k]
