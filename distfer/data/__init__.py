"""Datasets: on-disk format readers, the FaceStore and the embedded synthetic benchmark.

``FaceStore`` and ``prepare`` are imported lazily so that light users (the decode workers,
``distfer --help``) do not pay for pyarrow and torch.
"""

from __future__ import annotations

from typing import Any

__all__ = ["FaceStore", "FaceDataset", "prepare"]


def __getattr__(name: str) -> Any:
    if name == "FaceDataset":
        from distfer.data.views import FaceDataset

        return FaceDataset
    if name in __all__:
        from distfer.data import store

        return getattr(store, name)
    raise AttributeError(f"module 'distfer.data' has no attribute {name!r}")
