"""Tiny FaceStores for the training tests, built through ``distfer prepare`` (SFEW layout).

Each class gets a distinct colour and stripe pattern plus noise, so a tiny network learns it
in a few epochs; ``Test/`` holds unlabelled images (label -1).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from distfer.config import PrepareConfig
from distfer.data.store import FaceStore, prepare

SFEW_FOLDERS = ("Surprise", "Fear", "Disgust", "Happy", "Sad", "Angry", "Neutral")  # canonical order


def class_image(rng: np.random.Generator, cls: int, size: int) -> np.ndarray:
    """uint8 [size, size, 3]: a class-specific hue and stripe frequency, plus noise."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    hue = np.array([np.cos(cls), np.sin(cls * 1.7), np.cos(cls * 2.3)]) * 0.4 + 0.5
    stripes = 0.5 + 0.5 * np.sin(2 * np.pi * (cls + 1) * (xx if cls % 2 else yy))
    img = hue[None, None, :] * (0.5 + 0.5 * stripes[..., None]) + rng.normal(0, 0.08, (size, size, 3))
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def make_store(root: Path, *, per_class: int = 6, val_per_class: int = 3, test: int = 8,
               size: int = 16, seed: int = 0) -> FaceStore:
    """Write a tiny SFEW-layout folder under ``root`` and prepare it into a FaceStore."""
    rng = np.random.default_rng(seed)
    raw = root / "raw"
    for split, n in (("Train", per_class), ("Val", val_per_class)):
        for cls, folder in enumerate(SFEW_FOLDERS):
            d = raw / split / folder
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(class_image(rng, cls, size)).save(d / f"{folder}_{i:03d}.png")
    if test:
        (raw / "Test").mkdir(parents=True, exist_ok=True)
        for i in range(test):
            Image.fromarray(class_image(rng, i % 7, size)).save(raw / "Test" / f"t_{i:03d}.png")
    return prepare(PrepareConfig(format="sfew", root=str(raw), out=str(root / "stores"), name="tiny",
                                 size=size, workers=1), quiet=True)
