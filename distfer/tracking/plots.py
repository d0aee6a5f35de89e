"""Figures logged as MLflow artifacts: confusion matrix, purity histogram, K x threshold heatmap.

Each function takes plain arrays, writes a PNG atomically and returns its path. matplotlib runs
with the non-interactive Agg backend, so this works on headless cluster nodes.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from distfer.classes import CLASSES
from distfer.fsutil import atomic_write_bytes

__all__ = ["confusion_matrix_png", "purity_histogram_png", "heatmap_png", "curve_png"]


def _figure(figsize: tuple[float, float]):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt, plt.figure(figsize=figsize, dpi=100)


def _save(plt, fig, path: str | Path) -> Path:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def confusion_matrix_png(
    cm: np.ndarray, path: str | Path, *, classes: Sequence[str] = CLASSES, title: str = "Confusion matrix"
) -> Path:
    """Row-normalised confusion matrix with counts in each cell.

    Args:
        cm: counts [C, C], rows = true class, columns = predicted class.
        path: PNG to write.
        classes: C class names.
        title: figure title.
    """
    cm = np.asarray(cm, dtype=np.float64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] != len(classes):
        raise ValueError(f"confusion matrix must be [{len(classes)}, {len(classes)}], got {cm.shape}")
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    plt, fig = _figure((6.4, 5.6))
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center",
                    color="white" if norm[i, j] > 0.5 else "black", fontsize=8)
    return _save(plt, fig, path)


def purity_histogram_png(
    purity: np.ndarray, path: str | Path, *, sizes: np.ndarray | None = None, title: str = "Cluster purity"
) -> Path:
    """Histogram of per-cluster purity (fraction of the cluster's majority pseudo-class).

    Args:
        purity: [K] values in [0, 1].
        path: PNG to write.
        sizes: optional [K] cluster sizes; the histogram is then weighted by samples.
        title: figure title.
    """
    purity = np.asarray(purity, dtype=np.float64).ravel()
    plt, fig = _figure((5.6, 4.0))
    ax = fig.add_subplot(1, 1, 1)
    weights = None if sizes is None else np.asarray(sizes, dtype=np.float64).ravel()
    ax.hist(purity, bins=20, range=(0, 1), weights=weights, color="tab:green", edgecolor="white")
    ax.set_xlabel("purity")
    ax.set_ylabel("samples" if weights is not None else "clusters")
    ax.set_title(f"{title} (K={purity.size})")
    return _save(plt, fig, path)


def heatmap_png(
    rows: Sequence[float],
    cols: Sequence[float],
    values: np.ndarray,
    path: str | Path,
    *,
    row_label: str = "K (clusters)",
    col_label: str = "threshold",
    title: str = "Val accuracy",
) -> Path:
    """Annotated heatmap of ``values`` [len(rows), len(cols)]; NaN cells (not run) stay blank."""
    values = np.asarray(values, dtype=np.float64)
    if values.shape != (len(rows), len(cols)):
        raise ValueError(f"heatmap values must be [{len(rows)}, {len(cols)}], got {values.shape}")
    plt, fig = _figure((1.2 + 1.1 * max(len(cols), 2), 1.2 + 0.7 * max(len(rows), 2)))
    ax = fig.add_subplot(1, 1, 1)
    masked = np.ma.masked_invalid(values)
    im = ax.imshow(masked, cmap="viridis", aspect="auto")
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_xticks(range(len(cols)), [f"{c:g}" for c in cols])
    ax.set_yticks(range(len(rows)), [f"{r:g}" for r in rows])
    ax.set_xlabel(col_label)
    ax.set_ylabel(row_label)
    ax.set_title(title)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            if np.isfinite(values[i, j]):
                ax.text(j, i, f"{values[i, j]:.3f}", ha="center", va="center", color="white", fontsize=8)
    return _save(plt, fig, path)


def curve_png(series: dict[str, Sequence[float]], path: str | Path, *, xlabel: str = "epoch",
              title: str = "") -> Path:
    """Line plot of one or more named series against their step (e.g. an SSL loss curve)."""
    plt, fig = _figure((5.6, 3.6))
    ax = fig.add_subplot(1, 1, 1)
    for name, ys in series.items():
        ax.plot(range(1, len(ys) + 1), list(ys), marker="o", label=name)
    ax.set_xlabel(xlabel)
    ax.legend()
    ax.set_title(title)
    return _save(plt, fig, path)
