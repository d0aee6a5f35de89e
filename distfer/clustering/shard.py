"""The state and answers of one index shard, as a plain class (Ray wraps it in ``index.py``).

A shard reads its own Parquet embedding files, keeps ids, teacher predictions and true labels,
prepares feature columns on first use, and answers with partial results only: per-cluster
sums/counts/inertia for a Lloyd step, a few rows for the initial centroids, and per-sample
cluster ids with a K x 7 class histogram. Everything is a pure function of its files and the
call's arguments, so a restarted shard gives identical answers.
"""

from __future__ import annotations

import os
import resource
from typing import Any

import numpy as np

from distfer.clustering import kmeans as km
from distfer.clustering.embeddings import feature_matrix, feature_sources, read_columns
from distfer.pseudo.labels import class_histogram

__all__ = ["ShardData"]


class ShardData:
    """One shard's rows. ``exclude`` arguments are int64 sample ids left out of a request,
    identified by ``token`` (their content hash; "" = none)."""

    def __init__(self, files: list[str], threads: int | None = None, device: str = "auto") -> None:
        if threads:
            import faiss

            faiss.omp_set_num_threads(int(threads))
        self._files = files
        self._device = device
        base = read_columns(files, ["index", "logits"], optional=["label"])
        self._index = base["index"].astype(np.int64)
        self._pred = np.argmax(base["logits"], axis=1).astype(np.int64)
        self._label = base["label"].astype(np.int64) if "label" in base else np.full(len(self._index), -1)
        self._x: dict[tuple[str, str], np.ndarray] = {}
        self._subset: tuple[tuple[str, str, str], np.ndarray, np.ndarray] | None = None  # last subset only

    def _features(self, column: str, prep: str, token: str, exclude: np.ndarray | None) -> tuple[np.ndarray, Any]:
        key = (column, prep)
        if key not in self._x:
            x = feature_matrix(read_columns(self._files, feature_sources(column)), column)
            km.check_finite(x, f"embedding shard {self._files[0]} column {column!r}")
            self._x[key] = km.prepare_features(x, prep)
        if not token:
            return self._x[key], slice(None)
        if self._subset is None or self._subset[0] != (column, prep, token):
            mask = ~np.isin(self._index, exclude)
            self._subset = ((column, prep, token), self._x[key][mask], mask)
        return self._subset[1], self._subset[2]

    def info(self) -> dict[str, Any]:
        import psutil

        peak = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
        return {"rows": len(self._index), "files": self._files, "pid": os.getpid(),
                "rss": psutil.Process().memory_info().rss, "peak_rss": peak,
                "columns": [f"{c}/{p}" for c, p in self._x]}

    def count(self, column: str, prep: str, token: str, exclude: np.ndarray | None) -> tuple[int, int]:
        """``(included rows, prepared dimension)``."""
        x, _ = self._features(column, prep, token, exclude)
        return x.shape[0], x.shape[1]

    def rows(self, column: str, prep: str, token: str, exclude: np.ndarray | None, pos: np.ndarray) -> np.ndarray:
        """Prepared vectors at local positions ``pos`` among the included rows."""
        return self._features(column, prep, token, exclude)[0][pos]

    def step(self, column: str, prep: str, token: str, exclude: np.ndarray | None,
             centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """One Lloyd assignment: ``(sums float64 [K, d], counts int64 [K], inertia)``."""
        x, _ = self._features(column, prep, token, exclude)
        labels, dist = km.assign(x, centroids, self._device)
        return km.partial_sums(x, labels, dist, len(centroids))

    def table(self, column: str, prep: str, token: str, exclude: np.ndarray | None,
              centroids: np.ndarray) -> dict[str, Any]:
        """Per-sample ``index, cluster, predictions, labels``, the inertia and a K x 7 histogram."""
        x, sel = self._features(column, prep, token, exclude)
        labels, dist = km.assign(x, centroids, self._device)
        pred = self._pred[sel]
        return {"index": self._index[sel], "cluster": labels, "predictions": pred,
                "labels": self._label[sel], "inertia": float(dist.astype(np.float64).sum()),
                "histogram": class_histogram(labels, pred, len(centroids))}
