"""Batch augmentations: identities, exact flips, ranges, shapes, determinism."""

from __future__ import annotations

import torch

from distfer.config import AugmentConfig, PretrainConfig
from distfer.data.augment import (
    color_jitter,
    multi_crop,
    random_resized_crop,
    supervised_augment,
    to_float,
)

NONE = AugmentConfig(hflip=0, rotate=0, translate=0, scale_min=1, scale_max=1, brightness=0, contrast=0, saturation=0)


def test_to_float_layouts():
    u = torch.randint(0, 256, (2, 8, 8, 3), dtype=torch.uint8)
    f = to_float(u)
    assert f.shape == (2, 3, 8, 8) and f.dtype == torch.float32
    assert torch.allclose(f[1, 2], u[1, :, :, 2].float() / 255)


def test_identity_and_flip_are_exact():
    x = torch.rand(5, 3, 16, 16)
    assert torch.allclose(supervised_augment(x, NONE), x, atol=1e-6)
    assert torch.allclose(supervised_augment(x, NONE.replace(hflip=1.0)), x.flip(-1), atol=1e-6)
    full = random_resized_crop(x, 16, (1.0, 1.0), ratio=(1.0, 1.0), hflip=0.0)
    assert torch.allclose(full, x, atol=1e-6)


def test_ranges_shapes_and_seeded_determinism():
    x = torch.rand(8, 3, 32, 32)
    a = supervised_augment(x, AugmentConfig(), torch.Generator().manual_seed(1))
    b = supervised_augment(x, AugmentConfig(), torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == x.shape and 0 <= a.min() and a.max() <= 1
    assert not torch.allclose(a, x)
    g, lo = multi_crop(x, PretrainConfig(store="s", out="o", local_crops=3), torch.Generator().manual_seed(0))
    assert [v.shape[-1] for v in g] == [32, 32] and [v.shape[-1] for v in lo] == [16, 16, 16]
    assert not torch.allclose(g[0], g[1])  # two different views


def test_color_jitter_keeps_grey_images_grey_under_saturation():
    x = torch.rand(4, 1, 8, 8).expand(4, 3, 8, 8).contiguous()
    y = color_jitter(x, 0.0, 0.0, 0.5, torch.Generator().manual_seed(0))
    assert torch.allclose(y[:, 0], y[:, 1], atol=1e-6) and torch.allclose(y[:, 1], y[:, 2], atol=1e-6)
