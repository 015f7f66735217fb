"""``PortraitDiffusionPipeline``: prompt -> 64x64 SynthHeads-style portrait, a ``diffusers.DiffusionPipeline``.

Components: ``text_encoder`` (PromptEncoder, closed vocabulary), ``unet`` (UNet2DConditionModel, pixel space,
epsilon prediction) and ``scheduler`` (DPM-Solver++ multistep for sampling; training uses a DDPMScheduler with the
same betas). It saves and loads like the real pipelines (``save_pretrained`` / ``from_pretrained``, model_index.json,
one folder a component, safetensors). Sampling uses classifier-free guidance (Ho & Salimans 2022):
eps = eps(empty) + w * (eps(prompt) - eps(empty)); the model was trained with captions dropped 15 % of the time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from diffusers import DiffusionPipeline, DPMSolverMultistepScheduler, UNet2DConditionModel

from ..errors import InputError
from ..limits import MAX_DIFFUSION_STEPS, MAX_GUIDANCE, MAX_SEED
from .model import PromptEncoder


@dataclass
class PortraitOutput:
    """images [B, H, W, 3] float32 in [0, 1]; unknown: per prompt, the words the encoder did not understand;
    steps: when ``return_steps``, the predicted clean image x0 after each step, [S, B, H, W, 3]."""

    images: np.ndarray
    unknown: list[list[str]]
    steps: np.ndarray | None = None
    understood: list[list[str]] = field(default_factory=list)


def check_sampling(steps, guidance, seed) -> tuple[int, float, int]:
    """Sampler settings from a user -> (steps, guidance, seed), or InputError naming the limits."""
    try:
        s, g, sd = int(steps), float(guidance), int(seed)
    except (TypeError, ValueError):
        raise InputError(f"steps, guidance and seed must be numbers, got {steps!r}, {guidance!r}, {seed!r}") from None
    if isinstance(steps, bool) or s != steps or not 1 <= s <= MAX_DIFFUSION_STEPS:
        raise InputError(f"steps must be a whole number in [1, {MAX_DIFFUSION_STEPS}] (limits.MAX_DIFFUSION_STEPS), got {steps!r}")
    if not (0.0 <= g <= MAX_GUIDANCE):
        raise InputError(f"guidance must be in [0, {MAX_GUIDANCE}] (limits.MAX_GUIDANCE), got {guidance!r}")
    if isinstance(seed, bool) or sd != seed or not 0 <= sd <= MAX_SEED:
        raise InputError(f"the seed must be a whole number in [0, {MAX_SEED}], got {seed!r}")
    return s, g, sd


class PortraitDiffusionPipeline(DiffusionPipeline):
    """prompt(s) -> portraits. ``pipe(["long blond hair, smiling"], seed=0, steps=20, guidance=3.0)``."""

    model_cpu_offload_seq = "text_encoder->unet"

    def __init__(self, text_encoder: PromptEncoder, unet: UNet2DConditionModel, scheduler: DPMSolverMultistepScheduler):
        super().__init__()
        self.register_modules(text_encoder=text_encoder, unet=unet, scheduler=scheduler)

    @property
    def vocab(self):
        return self.text_encoder.vocab

    def check_prompt(self, prompt: str) -> list[str]:
        """InputError for an empty, too long, or entirely unknown prompt; else the words it did not understand."""
        self.vocab.check(prompt)
        if not prompt.strip():
            raise InputError("the prompt is empty; describe the head, e.g. 'long blond hair, glasses, smiling' "
                             f"(words this model knows: {self.vocab.vocabulary_help()})")
        _, unknown = self.vocab.encode(prompt)
        if not self.vocab.understood(prompt):
            raise InputError(f"no word of the prompt {prompt!r} is known to this model (not understood: "
                             f"{', '.join(unknown) or 'only filler words'}); it knows: {self.vocab.vocabulary_help()}")
        return unknown

    @torch.inference_mode()
    def __call__(self, prompt: str | list[str], *, seed: int = 0, steps: int = 20, guidance: float = 3.0,
                 return_steps: bool = False, progress: Callable[[float, str], None] | None = None,
                 noise: torch.Tensor | None = None) -> PortraitOutput:
        """One portrait per prompt, image b from torch.Generator(seed + b). noise: optional x_T [B, 3, H, W]."""
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        if not prompts:
            raise InputError("no prompt given")
        steps, guidance, seed = check_sampling(steps, guidance, seed)
        unknown = [self.check_prompt(p) for p in prompts]
        dev = self.unet.device
        dtype = self.unet.dtype
        B, size = len(prompts), int(self.unet.config.sample_size)
        ids, _ = self.text_encoder.tokenize(prompts, dev)
        cfg = guidance != 1.0
        if cfg:
            empty, _ = self.text_encoder.tokenize([""] * B, dev)
            ids = torch.cat([empty, ids])
        hid = self.text_encoder(ids).to(dtype)
        mask = PromptEncoder.mask(ids)
        if noise is None:
            noise = torch.stack([torch.randn(3, size, size, generator=torch.Generator().manual_seed(seed + b))
                                 for b in range(B)])
        x = noise.to(dev, dtype)
        self.scheduler.set_timesteps(steps, device=dev)
        x = x * self.scheduler.init_noise_sigma
        trail = []
        for i, t in enumerate(self.scheduler.timesteps):
            xin = torch.cat([x, x]) if cfg else x
            xin = self.scheduler.scale_model_input(xin, t)
            eps = self.unet(xin, t, encoder_hidden_states=hid, encoder_attention_mask=mask).sample
            if cfg:
                e0, e1 = eps.chunk(2)
                eps = e0 + guidance * (e1 - e0)
            if return_steps:
                trail.append(self._x0(x, eps, t))
            x = self.scheduler.step(eps, t, x).prev_sample
            if progress is not None:
                progress((i + 1) / steps, f"denoising step {i + 1}/{steps}")
        img = to_images(x)
        st = np.stack([to_images(s) for s in trail]) if return_steps else None
        return PortraitOutput(img, unknown, st, [self.vocab.understood(p) for p in prompts])

    def _x0(self, x: torch.Tensor, eps: torch.Tensor, t) -> torch.Tensor:
        """The clean image the model predicts at step t (epsilon parameterisation)."""
        a = self.scheduler.alphas_cumprod.to(x.device)[int(t)]
        return (x - (1 - a).sqrt() * eps) / a.sqrt()


def to_images(x: torch.Tensor) -> np.ndarray:
    """Model space [B, 3, H, W] in [-1, 1] -> [B, H, W, 3] float32 in [0, 1]."""
    return ((x.float().clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).cpu().numpy().astype(np.float32)


def to_model(images: torch.Tensor) -> torch.Tensor:
    """[B, H, W, 3] or [B, 3, H, W] in [0, 1] -> model space [B, 3, H, W] in [-1, 1]."""
    if images.shape[-1] == 3:
        images = images.permute(0, 3, 1, 2)
    return images * 2 - 1
