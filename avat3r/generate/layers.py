"""StyleGAN2 building blocks as EG3D uses them (Karras et al. 2020, "Analyzing and Improving the Image Quality of
StyleGAN"; EG3D's ``training/networks_stylegan2.py``), written in plain PyTorch.

Parameter and buffer names follow EG3D one for one (``weight``, ``bias``, ``affine.*``, ``noise_const``,
``noise_strength``, ``resample_filter``, ``const``, ``w_avg``), so an official state dict maps onto these modules
without renaming. The custom CUDA ops of EG3D (upfirdn2d, bias_act, fused modconv) are replaced by their
reference formulas: equal up to float rounding, on any device.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "setup_filter", "upfirdn2d", "upsample2d", "conv2d_resample", "bias_act", "normalize_2nd_moment",
    "modulated_conv2d", "FullyConnectedLayer", "Conv2dLayer", "MappingNetwork", "SynthesisLayer", "ToRGBLayer",
    "SynthesisBlock", "SynthesisNetwork",
]

_ACT_GAIN = {"linear": 1.0, "relu": math.sqrt(2), "lrelu": math.sqrt(2)}


# ---- resampling and activation (reference versions of EG3D's custom ops) ------------------------------------
def setup_filter(taps: Sequence[float] = (1, 3, 3, 1)) -> torch.Tensor:
    """Separable low-pass taps -> normalised 2D FIR filter [k, k] (sums to 1)."""
    f = torch.as_tensor(taps, dtype=torch.float32)
    f = torch.outer(f, f)
    return f / f.sum()


def upfirdn2d(x: torch.Tensor, f: torch.Tensor, up: int = 1, down: int = 1, pad=(0, 0, 0, 0), gain: float = 1.0) -> torch.Tensor:
    """Upsample by zero insertion, pad (px0, px1, py0, py1; negative crops), convolve with f [k, k], subsample.

    x [B, C, H, W] -> [B, C, H', W']. The filter is applied as a true convolution (flipped), like EG3D's default.
    """
    B, C, H, W = x.shape
    px0, px1, py0, py1 = pad
    if up > 1:
        x = x.reshape(B, C, H, 1, W, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(B, C, H * up, W * up)
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0): x.shape[2] - max(-py1, 0), max(-px0, 0): x.shape[3] - max(-px1, 0)]
    f = (f * gain).to(x.dtype).flip([0, 1])
    return _FIR(x, f)[:, :, ::down, ::down]


def _dw(f: torch.Tensor, C: int) -> torch.Tensor:
    return f[None, None].expand(C, 1, *f.shape).contiguous()


class _FIRValid(torch.autograd.Function):
    """'valid' correlation of every channel with f [k, k] (depthwise conv). Its gradient is _FIRFull (the adjoint)
    and vice versa, so every derivative order stays a depthwise *forward* conv: PyTorch's own double backward of a
    grouped conv (R1's gradient penalty) runs one conv per group (1,848 convolutions for one discriminator R1 step,
    profiled on the CPU, 2026-12-01)."""

    @staticmethod
    def forward(ctx, x, f):
        ctx.save_for_backward(f)
        return F.conv2d(x, _dw(f.to(x.dtype), x.shape[1]), groups=x.shape[1])

    @staticmethod
    def backward(ctx, g):
        (f,) = ctx.saved_tensors
        return _FIRFull.apply(g, f), None


class _FIRFull(torch.autograd.Function):
    """'full' convolution with f (zero padding k-1, flipped filter): the adjoint of _FIRValid."""

    @staticmethod
    def forward(ctx, x, f):
        ctx.save_for_backward(f)
        kh, kw = f.shape
        x = F.pad(x, [kw - 1, kw - 1, kh - 1, kh - 1])
        return F.conv2d(x, _dw(f.flip([0, 1]).to(x.dtype), x.shape[1]), groups=x.shape[1])

    @staticmethod
    def backward(ctx, g):
        (f,) = ctx.saved_tensors
        return _FIRValid.apply(g, f), None


def _fir_function(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Depthwise 'valid' correlation with f, differentiable to any order through _FIRValid/_FIRFull (the default)."""
    return _FIRValid.apply(x, f)


def _fir_batched(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """The filter as ONE single-channel conv over B*C images (no groups). Measured on the H200: its R1 step took
    6.1 s (B 64, fp32): far slower. Kept for bench/gghead_nets.py's comparison."""
    B, C, H, W = x.shape
    return F.conv2d(x.reshape(B * C, 1, H, W), f[None, None]).reshape(B, C, H - f.shape[0] + 1, W - f.shape[1] + 1)


def _fir_depthwise(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """The filter as a plain depthwise (grouped) conv: the earlier form, kept for bench/gghead_nets.py's comparison."""
    C = x.shape[1]
    return F.conv2d(x, f[None, None].repeat(C, 1, 1, 1), groups=C)


_FIR = _fir_function


def upsample2d(x: torch.Tensor, f: torch.Tensor, up: int = 2) -> torch.Tensor:
    """[B, C, H, W] -> [B, C, up*H, up*W], filtered (the skip path's image upsampling)."""
    k = f.shape[-1]
    p = ((k + up - 1) // 2, (k - up) // 2)
    return upfirdn2d(x, f, up=up, pad=(p[0], p[1], p[0], p[1]), gain=up * up)


def downsample2d(x: torch.Tensor, f: torch.Tensor, down: int = 2) -> torch.Tensor:
    """[B, C, H, W] -> [B, C, H/down, W/down], filtered."""
    k = f.shape[-1]
    p = ((k - down + 1) // 2, (k - down) // 2)
    return upfirdn2d(x, f, down=down, pad=(p[0], p[1], p[0], p[1]))


def conv2d_resample(x: torch.Tensor, w: torch.Tensor, f: torch.Tensor | None = None, up: int = 1, down: int = 1,
                    padding: int = 0, groups: int = 1, flip_weight: bool = True) -> torch.Tensor:
    """Convolution with optional 2x up- or downsampling, padding applied once (EG3D's ``conv2d_resample``).

    x [B, I, H, W], w [O, I/groups, kh, kw]; flip_weight=True is correlation (F.conv2d), False convolution.
    """
    O, Ig, kh, kw = w.shape
    fk = f.shape[-1] if f is not None else 1
    p0 = p1 = padding
    if up > 1:
        p0 += (fk + up - 1) // 2
        p1 += (fk - up) // 2
    if down > 1:
        p0 += (fk - down + 1) // 2
        p1 += (fk - down) // 2
    if up > 1 and not (kh == 1 and kw == 1):
        # transposed strided convolution, then the low-pass filter; conv_transpose2d already applies the kernel
        # flipped relative to conv2d, so flip_weight=False (convolution) needs no explicit flip here
        if flip_weight:
            w = w.flip([2, 3])
        if groups == 1:
            wt = w.transpose(0, 1)
        else:
            wt = w.reshape(groups, O // groups, Ig, kh, kw).transpose(1, 2).reshape(groups * Ig, O // groups, kh, kw)
        q0 = p0 - (kw - 1)
        q1 = p1 - (kw - up)
        pt = max(min(-q0, -q1), 0)
        x = F.conv_transpose2d(x, wt, stride=up, padding=pt, groups=groups)
        return upfirdn2d(x, f, pad=(q0 + pt, q1 + pt, q0 + pt, q1 + pt), gain=up * up)
    if not flip_weight and (kh > 1 or kw > 1):
        w = w.flip([2, 3])
    if kh == 1 and kw == 1 and up > 1 and down == 1:
        x = F.conv2d(x, w, groups=groups)
        return upfirdn2d(x, f, up=up, pad=(p0, p1, p0, p1), gain=up * up)
    if down > 1 and up == 1:
        x = upfirdn2d(x, f, pad=(p0, p1, p0, p1))
        return F.conv2d(x, w, stride=down, groups=groups)
    return F.conv2d(x, w, padding=p0, groups=groups)


def bias_act(x: torch.Tensor, b: torch.Tensor | None = None, act: str = "linear", gain: float | None = None,
             clamp: float | None = None, dim: int = 1) -> torch.Tensor:
    """x + b (broadcast along dim), activation, times gain (default: the activation's), clamp to +-clamp."""
    if b is not None:
        x = x + b.reshape([-1 if i == dim else 1 for i in range(x.ndim)])
    if act == "lrelu":
        x = F.leaky_relu(x, 0.2)
    elif act == "relu":
        x = F.relu(x)
    elif act != "linear":
        raise ValueError(f"unknown activation {act!r}")
    gain = _ACT_GAIN[act] if gain is None else gain
    if gain != 1:
        x = x * gain
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, noise: torch.Tensor | None = None,
                     up: int = 1, padding: int = 0, resample_filter: torch.Tensor | None = None,
                     demodulate: bool = True, flip_weight: bool = True, fused: bool = True) -> torch.Tensor:
    """StyleGAN2's modulated convolution. x [B, I, H, W], weight [O, I, k, k], styles [B, I] -> [B, O, H', W'] (+ noise).

    fused=True: one grouped conv with per-sample weights (EG3D's inference path). fused=False: scale the input by
    the styles, one shared-weight conv, scale the output by the demodulation coefficients (EG3D's training path):
    the same formula, but a dense conv that cuDNN runs far faster for large batches (and in bf16/channels_last).
    """
    B = x.shape[0]
    O, I, kh, kw = weight.shape
    if not fused:
        x = x * styles.to(x.dtype).reshape(B, -1, 1, 1)
        x = conv2d_resample(x, weight.to(x.dtype), f=resample_filter, up=up, padding=padding, flip_weight=flip_weight)
        if demodulate:
            d = ((weight.unsqueeze(0) * styles.reshape(B, 1, -1, 1, 1)).square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()
            x = x * d.to(x.dtype).reshape(B, -1, 1, 1)
        return x + noise.to(x.dtype) if noise is not None else x
    w = weight.unsqueeze(0) * styles.reshape(B, 1, -1, 1, 1)  # [B, O, I, k, k]
    if demodulate:
        w = w * (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt().reshape(B, -1, 1, 1, 1)
    x = x.reshape(1, -1, *x.shape[2:])
    w = w.reshape(-1, I, kh, kw)
    x = conv2d_resample(x, w.to(x.dtype), f=resample_filter, up=up, padding=padding, groups=B, flip_weight=flip_weight)
    x = x.reshape(B, -1, *x.shape[2:])
    if noise is not None:
        x = x + noise
    return x


# ---- layers -------------------------------------------------------------------------------------------------
class FullyConnectedLayer(nn.Module):
    """Equalised-learning-rate linear layer: y = act(x W^T * lr/sqrt(in) + b * lr)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, activation: str = "linear",
                 lr_multiplier: float = 1.0, bias_init: float = 0.0):
        super().__init__()
        self.in_features, self.out_features, self.activation = in_features, out_features, activation
        self.weight = nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / np.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, in] -> [B, out]
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act(x.matmul(w.t()), b, act=self.activation)


class Conv2dLayer(nn.Module):
    """Equalised-learning-rate convolution with optional 2x resampling (discriminator blocks)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True, activation: str = "linear",
                 up: int = 1, down: int = 1, resample_filter=(1, 3, 3, 1), conv_clamp: float | None = None):
        super().__init__()
        self.activation, self.up, self.down, self.conv_clamp = activation, up, down, conv_clamp
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.weight_gain = 1 / np.sqrt(in_channels * kernel_size**2)
        self.act_gain = _ACT_GAIN[activation]
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = nn.Parameter(torch.zeros([out_channels])) if bias else None

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        w = self.weight * self.weight_gain
        x = conv2d_resample(x, w.to(x.dtype), f=self.resample_filter, up=self.up, down=self.down,
                            padding=self.padding, flip_weight=(self.up == 1))
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        b = self.bias.to(x.dtype) if self.bias is not None else None
        return bias_act(x, b, act=self.activation, gain=self.act_gain * gain, clamp=clamp)


class MappingNetwork(nn.Module):
    """z [B, z_dim] (+ label c [B, c_dim]) -> w broadcast to [B, num_ws, w_dim]; w_avg tracks the mean w (truncation)."""

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_ws: int | None, num_layers: int = 8,
                 embed_features: int | None = None, layer_features: int | None = None, activation: str = "lrelu",
                 lr_multiplier: float = 0.01, w_avg_beta: float = 0.998):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws, self.num_layers = z_dim, c_dim, w_dim, num_ws, num_layers
        self.w_avg_beta = w_avg_beta
        embed_features = w_dim if embed_features is None else embed_features
        if c_dim == 0:
            embed_features = 0
        layer_features = w_dim if layer_features is None else layer_features
        feats = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]
        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for i in range(num_layers):
            setattr(self, f"fc{i}", FullyConnectedLayer(feats[i], feats[i + 1], activation=activation, lr_multiplier=lr_multiplier))
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(self, z: torch.Tensor | None, c: torch.Tensor | None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, update_emas: bool = False) -> torch.Tensor:
        x = None
        if self.z_dim > 0:
            x = normalize_2nd_moment(z.to(torch.float32))
        if self.c_dim > 0:
            y = normalize_2nd_moment(self.embed(c.to(torch.float32)))
            x = torch.cat([x, y], dim=1) if x is not None else y
        for i in range(self.num_layers):
            x = getattr(self, f"fc{i}")(x)
        if update_emas and self.w_avg_beta is not None:
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        if self.num_ws is not None:
            x = x.unsqueeze(1).repeat([1, self.num_ws, 1])
        if truncation_psi != 1:
            if self.num_ws is None or truncation_cutoff is None:
                x = self.w_avg.lerp(x, truncation_psi)
            else:
                x = torch.cat([self.w_avg.lerp(x[:, :truncation_cutoff], truncation_psi), x[:, truncation_cutoff:]], 1)
        return x


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv (optionally 2x up), per-pixel noise, bias, leaky ReLU, clamp."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, kernel_size: int = 3, up: int = 1,
                 use_noise: bool = True, activation: str = "lrelu", resample_filter=(1, 3, 3, 1), conv_clamp: float | None = None):
        super().__init__()
        self.in_channels, self.out_channels, self.resolution, self.up = in_channels, out_channels, resolution, up
        self.use_noise, self.activation, self.conv_clamp = use_noise, activation, conv_clamp
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.act_gain = _ACT_GAIN[activation]
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "const", gain: float = 1.0) -> torch.Tensor:
        styles = self.affine(w)
        noise = None
        if self.use_noise and noise_mode == "random":
            noise = torch.randn([x.shape[0], 1, self.resolution, self.resolution], device=x.device) * self.noise_strength
        elif self.use_noise and noise_mode == "const":
            noise = self.noise_const * self.noise_strength
        x = modulated_conv2d(x, self.weight, styles, noise=noise, up=self.up, padding=self.padding,
                             resample_filter=self.resample_filter, flip_weight=(self.up == 1), fused=not self.training)
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias.to(x.dtype), act=self.activation, gain=self.act_gain * gain, clamp=clamp)


class ToRGBLayer(nn.Module):
    """Modulated 1x1 conv without demodulation: features -> output channels (here: Gaussian attribute channels)."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, kernel_size: int = 1, conv_clamp: float | None = None):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / np.sqrt(in_channels * kernel_size**2)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused=not self.training)
        return bias_act(x, self.bias.to(x.dtype), clamp=self.conv_clamp)


class SynthesisBlock(nn.Module):
    """One resolution of the 'skip' synthesis network: (const | 2x-up conv0) -> conv1 -> torgb added to the upsampled image."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int,
                 resample_filter=(1, 3, 3, 1), conv_clamp: float | None = None, use_noise: bool = True):
        super().__init__()
        self.in_channels, self.resolution, self.img_channels = in_channels, resolution, img_channels
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.num_conv, self.num_torgb = 0, 1
        kw = dict(w_dim=w_dim, resolution=resolution, conv_clamp=conv_clamp, use_noise=use_noise)
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, up=2, resample_filter=resample_filter, **kw)
            self.num_conv += 1
        self.conv1 = SynthesisLayer(out_channels, out_channels, **kw)
        self.num_conv += 1
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp)

    def forward(self, x, img, ws: torch.Tensor, noise_mode: str = "const"):
        """ws [B, num_conv + 1, w_dim]; x [B, C, R/2, R/2] (None for the first block); img [B, img_channels, R/2, R/2]."""
        w = ws.unbind(1)
        if self.in_channels == 0:
            x = self.const.unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
            x = self.conv1(x, w[0], noise_mode=noise_mode)
        else:
            x = self.conv0(x, w[0], noise_mode=noise_mode)
            x = self.conv1(x, w[1], noise_mode=noise_mode)
        if img is not None:
            img = upsample2d(img, self.resample_filter)
        y = self.torgb(x, w[self.num_conv]).to(torch.float32)
        img = img + y if img is not None else y
        return x, img


class SynthesisNetwork(nn.Module):
    """ws [B, num_ws, w_dim] -> image [B, img_channels, R, R]; blocks b4 ... b{R}, channels min(base / res, max)."""

    def __init__(self, w_dim: int, img_resolution: int, img_channels: int, channel_base: int = 32768,
                 channel_max: int = 512, conv_clamp: float | None = None, use_noise: bool = True,
                 pretrained_resolution: int | None = None):
        super().__init__()
        if img_resolution < 4 or img_resolution & (img_resolution - 1):
            raise ValueError(f"synthesis resolution must be a power of two >= 4, got {img_resolution}")
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        self.block_resolutions = [2**i for i in range(2, int(np.log2(img_resolution)) + 1)]
        ch = {r: min(channel_base // r, channel_max) for r in self.block_resolutions}
        self.num_ws = 0
        for r in self.block_resolutions:
            blk = SynthesisBlock(ch[r // 2] if r > 4 else 0, ch[r], w_dim, r, img_channels, conv_clamp=conv_clamp, use_noise=use_noise)
            self.num_ws += blk.num_conv
            setattr(self, f"b{r}", blk)
        self.num_ws += 1  # the last block's torgb
        if pretrained_resolution is not None and pretrained_resolution < img_resolution:
            # GGHead's progressive growing also counts the torgb of the stage-1 output block; with broadcast w this
            # changes only the number of ws, not the result
            self.num_ws += 1

    def forward(self, ws: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        ws = ws.to(torch.float32)
        x = img = None
        i = 0
        for r in self.block_resolutions:
            blk = getattr(self, f"b{r}")
            x, img = blk(x, img, ws.narrow(1, i, blk.num_conv + blk.num_torgb), noise_mode=noise_mode)
            i += blk.num_conv
        return img
