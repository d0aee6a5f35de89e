"""The torch view of a FaceStore split (kept apart so that importing the store skips torch)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset


class FaceDataset(Dataset):
    """A torch map-style dataset over one split of a store, held in memory.

    Items are ``(image, label, index)``: ``image`` is a float tensor [3, H, W] in [0, 1] when
    ``transform`` is None, else ``transform(uint8 array [H, W, 3])``; ``label`` is the
    canonical id (-1 unknown) and ``index`` the store's stable row index.

    Attributes:
        images: uint8 [N, H, W, 3]. labels: int64 [N]. indices: int64 [N].
    """

    def __init__(
        self, images: np.ndarray, labels: np.ndarray, indices: np.ndarray, transform: Callable[[np.ndarray], Any] | None = None
    ) -> None:
        self.images, self.labels, self.indices, self.transform = images, labels, indices, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[Any, int, int]:
        img = self.images[i]
        if self.transform is None:
            out: Any = torch.from_numpy(img).permute(2, 0, 1).float().div_(255.0)
        else:
            out = self.transform(img)
        return out, int(self.labels[i]), int(self.indices[i])
