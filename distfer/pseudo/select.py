"""Pure per-class selection of pseudo-labelled samples, iterated re-clustering, and their stats.

``fraction:rho`` keeps, in each class ``k`` with ``n_k`` samples labelled ``k``, the
``floor(rho * n_k)`` most confident samples, ties broken by higher cluster purity, then by lower
sample index. ``threshold:tau`` keeps every sample with confidence >= tau. ``min_per_class``
tops a class up to that many (its best-ranked samples) when selection would leave it short;
a class emptied by selection raises a :class:`UserWarning` either way.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from distfer.classes import CLASSES, NUM_CLASSES
from distfer.config import parse_select_spec
from distfer.pseudo.labels import PseudoLabels

__all__ = ["PseudoLabelStats", "iterative_select", "select", "selection_stats"]

PURITY_BINS = np.round(np.linspace(0.0, 1.0, 11), 2)


def select(
    labels: np.ndarray,
    confidence: np.ndarray,
    spec: str,
    *,
    purity: np.ndarray | None = None,
    index: np.ndarray | None = None,
    min_per_class: int = 0,
) -> np.ndarray:
    """Per-class selection (vectorised: one lexsort, no loop over classes x samples).

    Args:
        labels: int [N] pseudo-labels 0..6; confidence: float [N].
        spec: ``fraction:RHO`` or ``threshold:TAU``.
        purity: float [N] cluster purity (first tie-breaker; omitted = all equal).
        index: int64 [N] stable sample ids (second tie-breaker; default ``arange(N)``).
        min_per_class: keep at least ``min(min_per_class, n_k)`` samples of every class.

    Returns:
        bool [N] selection mask.

    Raises:
        ConfigError: bad spec.
    """
    kind, value = parse_select_spec(spec)
    labels = np.asarray(labels, dtype=np.int64)
    confidence = np.asarray(confidence, dtype=np.float64)
    n = len(labels)
    purity = np.zeros(n) if purity is None else np.asarray(purity, dtype=np.float64)
    index = np.arange(n, dtype=np.int64) if index is None else np.asarray(index, dtype=np.int64)
    # rank of each sample inside its class: sort by class, -confidence, -purity, index
    order = np.lexsort((index, -purity, -confidence, labels))
    n_k = np.bincount(labels, minlength=NUM_CLASSES)
    start = np.concatenate([[0], np.cumsum(n_k)[:-1]])
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - start[labels[order]]
    if kind == "fraction":
        quota = np.floor(value * n_k.astype(np.float64)).astype(np.int64)
        keep = rank < quota[labels]
    else:
        keep = confidence >= value
    kept = np.bincount(labels[keep], minlength=NUM_CLASSES)
    short = (n_k > 0) & (kept == 0)
    for k in np.flatnonzero(short):
        fix = (f"min_per_class={min_per_class} keeps its {min(min_per_class, int(n_k[k]))} best"
               if min_per_class > 0 else "set min_per_class to keep some")
        warnings.warn(
            f"selection {spec!r} keeps no sample of class {CLASSES[k]} ({n_k[k]} labelled); {fix}",
            UserWarning, stacklevel=2,
        )
    if min_per_class > 0:
        keep |= rank < np.minimum(min_per_class, n_k)[labels]
    return keep


@dataclasses.dataclass(frozen=True)
class PseudoLabelStats:
    """Summary of one pseudo-labelling run (JSON-ready through :meth:`to_dict`)."""

    num_samples: int
    num_clusters: int
    mode: str
    select: str
    rounds: int
    purity_bins: list[float]
    purity_histogram: list[int]
    per_class_before: dict[str, int]
    per_class_after: dict[str, int]
    selected: int
    selected_fraction: float
    accuracy_all: float | None
    accuracy_selected: float | None
    labelled_known: int
    inertia: float | None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def selection_stats(
    result: PseudoLabels,
    selected: np.ndarray,
    *,
    mode: str,
    spec: str,
    rounds: int = 1,
    true_labels: np.ndarray | None = None,
    inertia: float | None = None,
) -> PseudoLabelStats:
    """Stats of a result: purity histogram over clusters, per-class counts, accuracy vs truth.

    ``true_labels`` (int [N], -1 = unknown) are used only for reporting accuracy.
    """
    hist = result.histogram
    sizes = hist.sum(axis=1)
    purity = hist.max(axis=1)[sizes > 0] / sizes[sizes > 0] if len(hist) else np.zeros(0)
    ph = np.histogram(purity, bins=PURITY_BINS)[0]
    before = np.bincount(result.labels, minlength=NUM_CLASSES)
    after = np.bincount(result.labels[selected], minlength=NUM_CLASSES)
    acc_all = acc_sel = None
    known = 0
    if true_labels is not None:
        true_labels = np.asarray(true_labels, dtype=np.int64)
        mask = true_labels >= 0
        known = int(mask.sum())
        if known:
            hit = result.labels == true_labels
            acc_all = float(hit[mask].mean())
            sm = mask & selected
            acc_sel = float(hit[sm].mean()) if sm.any() else None
    n = len(result.labels)
    return PseudoLabelStats(
        num_samples=n, num_clusters=int((sizes > 0).sum()), mode=mode, select=spec, rounds=rounds,
        purity_bins=[float(b) for b in PURITY_BINS], purity_histogram=[int(c) for c in ph],
        per_class_before=dict(zip(CLASSES, map(int, before))),
        per_class_after=dict(zip(CLASSES, map(int, after))),
        selected=int(selected.sum()), selected_fraction=float(selected.mean()) if n else 0.0,
        accuracy_all=acc_all, accuracy_selected=acc_sel, labelled_known=known, inertia=inertia,
    )


def iterative_select(
    n: int,
    label_round: Callable[[np.ndarray, int], PseudoLabels],
    spec: str,
    *,
    rounds: int = 1,
    index: np.ndarray | None = None,
    min_per_class: int = 0,
    cluster_offset: int = 0,
) -> tuple[PseudoLabels, np.ndarray]:
    """``rounds`` times: label the not-yet-selected samples, then select among them.

    Round ``t`` calls ``label_round(rows, t)`` with the int64 positions of the samples not yet
    selected and gets their :class:`PseudoLabels`; the per-class selection runs on those rows
    only. A sample keeps the labels of the round that selected it; never-selected samples keep
    those of the last round. Cluster ids of round ``t`` are shifted by ``t * cluster_offset``
    so they stay unique across rounds.

    Returns:
        ``(merged PseudoLabels [N] with the histograms of all rounds stacked, selected bool [N])``.
    """
    index = np.arange(n, dtype=np.int64) if index is None else np.asarray(index, dtype=np.int64)
    selected = np.zeros(n, dtype=bool)
    merged: dict[str, np.ndarray] = {}
    hists = []
    for t in range(rounds):
        rows = np.flatnonzero(~selected)
        if len(rows) == 0:
            break
        res = label_round(rows, t)
        keep = select(res.labels, res.confidence, spec, purity=res.purity, index=index[rows],
                      min_per_class=min_per_class)
        cluster = np.where(res.cluster >= 0, res.cluster + t * cluster_offset, -1)
        for name, value in (("labels", res.labels), ("confidence", res.confidence), ("soft", res.soft),
                            ("cluster", cluster), ("purity", res.purity), ("predictions", res.predictions)):
            if name not in merged:
                merged[name] = np.zeros((n, *value.shape[1:]), dtype=value.dtype)
            merged[name][rows] = value
        hists.append(res.histogram)
        selected[rows[keep]] = True
    return PseudoLabels(histogram=np.concatenate(hists), **merged), selected
