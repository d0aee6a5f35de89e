"""The expression classifier: normalisation + encoder (features) + linear head.

Inputs are float images in [0, 1], ``[N, 3, H, W]``; the model normalises them itself with
the mean/std stored in its checkpoint, so every caller (training, embedding, evaluation)
feeds the same thing. ``forward`` returns logits ``[N, C]``, :meth:`FERModel.features`
returns the encoder features ``[N, D]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm as _weight_norm

from distfer.classes import NUM_CLASSES
from distfer.models.backbones import build_backbone

#: ImageNet statistics, the normalisation of torchvision ResNets and distfer's default.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


class FERModel(nn.Module):
    """Encoder + classifier head with built-in input normalisation.

    Args:
        arch: backbone registry name (see :func:`distfer.models.available`).
        num_classes: number of output classes (7 canonical expressions by default).
        weight_norm: put weight normalisation on the head (as in SHOT/CluP).
        input_size: image side the model expects; other sizes are resized in :meth:`prepare`.
        mean, std: per-channel normalisation applied to [0, 1] inputs.
    """

    def __init__(
        self,
        arch: str,
        num_classes: int = NUM_CLASSES,
        *,
        weight_norm: bool = False,
        input_size: int = 32,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        super().__init__()
        self.arch, self.num_classes, self.input_size = arch, num_classes, input_size
        self.use_weight_norm = weight_norm
        self.mean_values, self.std_values = tuple(map(float, mean)), tuple(map(float, std))
        self.register_buffer("mean", torch.tensor(self.mean_values).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(self.std_values).view(1, 3, 1, 1), persistent=False)
        self.encoder = build_backbone(arch)
        self.feature_dim: int = self.encoder.feature_dim
        self.head = self.new_head()

    def new_head(self) -> nn.Module:
        """A freshly initialised head ``[N, D] -> [N, C]`` (weight-normalised if configured)."""
        head = nn.Linear(self.feature_dim, self.num_classes)
        return _weight_norm(head) if self.use_weight_norm else head

    def reset_head(self) -> None:
        """Replace the head with a fresh one on the same device (adaptation starts from this)."""
        device = next(self.encoder.parameters()).device
        self.head = self.new_head().to(device)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """``(x - mean) / std`` for float [0, 1] images ``[N, 3, H, W]`` (no resizing)."""
        return (x - self.mean) / self.std

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Resize ``[N, 3, H, W]`` float [0, 1] images to ``input_size`` if needed, then normalise."""
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            x = nn.functional.interpolate(
                x, size=(self.input_size, self.input_size), mode="bilinear", antialias=True,
                align_corners=False,
            )
        return self.normalize(x)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder features ``[N, D]`` of float [0, 1] images ``[N, 3, H, W]``."""
        return self.encoder(self.prepare(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[N, C]`` of float [0, 1] images ``[N, 3, H, W]``."""
        return self.head(self.features(x))

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits [N, C], features [N, D])`` in one pass."""
        f = self.features(x)
        return self.head(f), f
