"""Batch augmentations as tensor ops: supervised (flip/affine/colour) and SwAV multi-crop.

All functions take float images ``[N, 3, H, W]`` in [0, 1] on any device and draw one random
transform per image from ``generator`` (a ``torch.Generator`` on the same device, or None for
the global RNG). One ``grid_sample`` per batch does flip + rotation + scale + shift (or the
crop of multi-crop), which on a CPU is far faster than per-image PIL transforms.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from distfer.config import AugmentConfig, PretrainConfig


def _uniform(n: int, low: float, high: float, like: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, device=like.device, generator=g)


def _warp(x: torch.Tensor, theta: torch.Tensor, size: int) -> torch.Tensor:
    """Sample ``[N, 3, size, size]`` from ``x`` through affine maps ``theta [N, 2, 3]``."""
    grid = F.affine_grid(theta.to(x.dtype), [x.shape[0], 3, size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``[N, H, W, 3]`` (store layout) or ``[N, 3, H, W]`` -> float ``[N, 3, H, W]`` in [0, 1]."""
    if images.ndim == 4 and images.shape[-1] == 3 and images.shape[1] != 3:
        images = images.permute(0, 3, 1, 2)
    return images.float().div_(255.0) if images.dtype == torch.uint8 else images.float()


def color_jitter(
    x: torch.Tensor, brightness: float, contrast: float, saturation: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Per-image brightness, contrast and saturation factors drawn from ``[1-s, 1+s]``."""
    n = x.shape[0]
    if brightness > 0:
        x = x * _uniform(n, 1 - brightness, 1 + brightness, x, generator).view(n, 1, 1, 1)
    gray_w = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    if contrast > 0:
        mean = (x * gray_w).sum(1, keepdim=True).mean((2, 3), keepdim=True)
        c = _uniform(n, 1 - contrast, 1 + contrast, x, generator).view(n, 1, 1, 1)
        x = (x - mean) * c + mean
    if saturation > 0:
        gray = (x * gray_w).sum(1, keepdim=True)
        s = _uniform(n, 1 - saturation, 1 + saturation, x, generator).view(n, 1, 1, 1)
        x = (x - gray) * s + gray
    return x.clamp_(0.0, 1.0)


def random_grayscale(x: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Turn each image grey with probability ``p``."""
    if p <= 0:
        return x
    gray_w = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    gray = (x * gray_w).sum(1, keepdim=True).expand_as(x)
    pick = (torch.rand(x.shape[0], device=x.device, generator=generator) < p).view(-1, 1, 1, 1)
    return torch.where(pick, gray, x)


def supervised_augment(
    x: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Random flip, rotation, scale, shift and colour jitter of a batch ``[N, 3, H, W]``."""
    n, size = x.shape[0], x.shape[-1]
    angle = _uniform(n, -cfg.rotate, cfg.rotate, x, generator) * (math.pi / 180)
    scale = _uniform(n, cfg.scale_min, cfg.scale_max, x, generator)
    flip = torch.where(torch.rand(n, device=x.device, generator=generator) < cfg.hflip, -1.0, 1.0)
    shift = _uniform(2 * n, -2 * cfg.translate, 2 * cfg.translate, x, generator).view(n, 2)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos * flip, -sin, shift[:, 0]], 1), torch.stack([sin * flip, cos, shift[:, 1]], 1)], 1
    )
    x = _warp(x, theta, size)
    return color_jitter(x, cfg.brightness, cfg.contrast, cfg.saturation, generator)


def random_resized_crop(
    x: torch.Tensor, size: int, scale: tuple[float, float], generator: torch.Generator | None = None,
    ratio: tuple[float, float] = (3 / 4, 4 / 3), hflip: float = 0.5,
) -> torch.Tensor:
    """Crop a random box of area fraction in ``scale`` from each image, resize to ``size``, flip."""
    n = x.shape[0]
    area = _uniform(n, scale[0], scale[1], x, generator)
    log_r = _uniform(n, math.log(ratio[0]), math.log(ratio[1]), x, generator)
    r = torch.exp(log_r)
    w = torch.sqrt(area * r).clamp(max=1.0)  # half-widths in [-1, 1] coordinates
    h = torch.sqrt(area / r).clamp(max=1.0)
    cx = (1 - w) * (2 * torch.rand(n, device=x.device, generator=generator) - 1)
    cy = (1 - h) * (2 * torch.rand(n, device=x.device, generator=generator) - 1)
    flip = torch.where(torch.rand(n, device=x.device, generator=generator) < hflip, -1.0, 1.0)
    zero = torch.zeros_like(w)
    theta = torch.stack([torch.stack([w * flip, zero, cx], 1), torch.stack([zero, h, cy], 1)], 1)
    return _warp(x, theta, size)


def multi_crop(
    x: torch.Tensor, cfg: PretrainConfig, generator: torch.Generator | None = None
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """SwAV multi-crop views of a batch: ``(global crops, local crops)``.

    Returns:
        ``cfg.global_crops`` tensors ``[N, 3, G, G]`` and ``cfg.local_crops`` tensors
        ``[N, 3, L, L]`` (G = ``global_size`` or the input size, L = ``local_size`` or G // 2),
        each randomly cropped, flipped, colour-jittered and sometimes greyed.
    """
    g_size = cfg.global_size or x.shape[-1]
    l_size = cfg.local_size or max(4, g_size // 2)
    s = cfg.color_strength

    def view(size: int, scale: tuple[float, ...]) -> torch.Tensor:
        v = random_resized_crop(x, size, (scale[0], scale[1]), generator)
        v = color_jitter(v, 0.8 * s, 0.8 * s, 0.8 * s, generator)
        return random_grayscale(v, 0.2, generator)

    return (
        [view(g_size, cfg.global_scale) for _ in range(cfg.global_crops)],
        [view(l_size, cfg.local_scale) for _ in range(cfg.local_crops)],
    )
