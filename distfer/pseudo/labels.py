"""Pure pseudo-labelling rules: cluster purity (CluP), soft purity, per-sample confidence, SHOT centroids.

All functions take numpy arrays and return a :class:`PseudoLabels`; nothing here clusters,
reads files or touches Ray. Semantics follow the method's reference code:

* teacher prediction ``t_i = argmax_k logits[i, k]`` (ties -> lowest class id);
* in-cluster histogram ``p[c, k]`` = share of cluster ``c``'s samples with ``t_i = k``;
  cluster label ``argmax_k p[c, k]`` (ties -> lowest class id), purity ``max_k p[c, k]``;
* each sample takes its cluster's label, its confidence is its cluster's purity;
  ``drop_outliers`` zeroes the confidence where ``t_i`` differs from the cluster label.

``soft`` is the training target: one-hot of the label, except for ``soft-purity`` where it is
``p[c(i), :]``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from distfer.classes import NUM_CLASSES
from distfer.clustering.kmeans import prepare_features
from distfer.errors import DataError

__all__ = [
    "PseudoLabels",
    "centroid_labels",
    "class_histogram",
    "confidence_labels",
    "purity_labels",
    "softmax",
    "teacher_predictions",
]


@dataclasses.dataclass(frozen=True)
class PseudoLabels:
    """Per-sample pseudo-labels (all arrays have length N).

    Attributes:
        labels: int64 [N], class ids 0..6.
        confidence: float32 [N], in [0, 1].
        soft: float32 [N, 7], the soft training target (rows sum to 1).
        cluster: int64 [N], cluster id (-1 for modes that do not cluster).
        purity: float32 [N], purity of the sample's cluster (tie-breaker of selection; equals
            ``confidence`` for modes that do not cluster).
        predictions: int64 [N], the teacher's argmax class.
        histogram: int64 [K, 7] in-cluster teacher-prediction counts (``[0, 7]`` if no clusters).
    """

    labels: np.ndarray
    confidence: np.ndarray
    soft: np.ndarray
    cluster: np.ndarray
    purity: np.ndarray
    predictions: np.ndarray
    histogram: np.ndarray

    def take(self, rows: np.ndarray) -> PseudoLabels:
        """The same result restricted to ``rows`` (int positions or bool mask); histogram kept."""
        return dataclasses.replace(
            self, **{f: getattr(self, f)[rows] for f in
                     ("labels", "confidence", "soft", "cluster", "purity", "predictions")}
        )


def _check_logits(logits: np.ndarray) -> np.ndarray:
    logits = np.asarray(logits, dtype=np.float32)
    if logits.ndim != 2 or logits.shape[1] != NUM_CLASSES:
        raise DataError(
            f"logits must have shape [N, {NUM_CLASSES}] (one column per class), got {logits.shape}; "
            "pass the source model's outputs over the 7 canonical classes"
        )
    return logits


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, float32 [N, C]."""
    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return (z / z.sum(axis=1, keepdims=True)).astype(np.float32)


def teacher_predictions(logits: np.ndarray) -> np.ndarray:
    """Argmax class of each row (int64 [N]); ties go to the lowest class id."""
    return np.argmax(_check_logits(logits), axis=1).astype(np.int64)


def class_histogram(cluster: np.ndarray, predictions: np.ndarray, k: int) -> np.ndarray:
    """Counts of teacher predictions per cluster, int64 [K, 7] (one bincount, no loops)."""
    cluster = np.asarray(cluster, dtype=np.int64)
    flat = cluster * NUM_CLASSES + np.asarray(predictions, dtype=np.int64)
    return np.bincount(flat, minlength=k * NUM_CLASSES).reshape(k, NUM_CLASSES)


def _one_hot(labels: np.ndarray) -> np.ndarray:
    return np.eye(NUM_CLASSES, dtype=np.float32)[labels]


def purity_labels(
    cluster: np.ndarray,
    predictions: np.ndarray,
    k: int,
    *,
    soft: bool = False,
    drop_outliers: bool = False,
    histogram: np.ndarray | None = None,
) -> PseudoLabels:
    """Cluster-level pseudo-labels from cluster ids and teacher predictions.

    Args:
        cluster: int [N] cluster id of each sample, in 0..k-1.
        predictions: int [N] teacher argmax class (see :func:`teacher_predictions`).
        k: number of clusters.
        soft: ``soft-purity``: the soft target is the cluster's histogram ``p[c, :]``.
        drop_outliers: confidence 0 where the teacher disagrees with the cluster label.
        histogram: optional int [K, 7] counts already reduced elsewhere (e.g. from index
            shards); must equal :func:`class_histogram` of the inputs.

    Returns:
        :class:`PseudoLabels`.

    Raises:
        DataError: lengths differ or ids are out of range.
    """
    cluster = np.asarray(cluster, dtype=np.int64)
    predictions = np.asarray(predictions, dtype=np.int64)
    if cluster.shape != predictions.shape or cluster.ndim != 1:
        raise DataError(f"cluster ids {cluster.shape} and predictions {predictions.shape} differ in length")
    if len(cluster) and (cluster.min() < 0 or cluster.max() >= k):
        raise DataError(f"cluster ids must lie in 0..{k - 1}; got {cluster.min()}..{cluster.max()}")
    hist = class_histogram(cluster, predictions, k) if histogram is None else np.asarray(histogram)
    sizes = hist.sum(axis=1, keepdims=True)
    p = (hist / np.maximum(sizes, 1)).astype(np.float32)  # [K, 7]; empty clusters -> zeros
    cluster_label = np.argmax(p, axis=1)  # first maximum: ties -> lowest class id
    cluster_purity = p.max(axis=1)
    labels = cluster_label[cluster]
    purity = cluster_purity[cluster]
    confidence = purity.copy()
    if drop_outliers:
        confidence[predictions != labels] = 0.0
    target = p[cluster] if soft else _one_hot(labels)
    return PseudoLabels(labels, confidence, target, cluster, purity, predictions, hist)


def confidence_labels(logits: np.ndarray) -> PseudoLabels:
    """Per-sample baseline: label = softmax argmax, confidence = softmax max."""
    prob = softmax(_check_logits(logits))
    labels = np.argmax(prob, axis=1).astype(np.int64)
    conf = prob.max(axis=1)
    n = len(labels)
    return PseudoLabels(labels, conf, _one_hot(labels), np.full(n, -1, np.int64), conf.copy(),
                        labels.copy(), np.zeros((0, NUM_CLASSES), np.int64))


def _cosine_distance(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    xn = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    cn = c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
    return 1.0 - xn @ cn.T


def centroid_labels(
    features: np.ndarray, logits: np.ndarray, *, cycles: int = 0, prep: str = "append_one"
) -> PseudoLabels:
    """SHOT baseline: softmax-weighted class centroids, cosine nearest centroid.

    The confidence is the softmax over negative cosine distances to the first (softmax-weighted)
    centroids, as in the reference code; ``cycles`` refinements then recompute the centroids
    from the hard labels and re-assign (they move the labels, not the confidence).

    Args:
        features: float [N, d]; logits: float [N, 7].
        cycles: refinement cycles (>= 0).
        prep: feature preparation (see :func:`~distfer.clustering.kmeans.prepare_features`).

    Returns:
        :class:`PseudoLabels` with ``cluster`` = -1.
    """
    logits = _check_logits(logits)
    if len(features) != len(logits):
        raise DataError(f"features have {len(features)} rows but logits {len(logits)}; they must match")
    x = prepare_features(features, prep).astype(np.float64)
    prob = softmax(logits).astype(np.float64)
    eps = 1e-8
    cent = (prob.T @ x) / (eps + prob.sum(axis=0)[:, None])
    dist = _cosine_distance(x, cent)
    labels = dist.argmin(axis=1)
    conf = softmax(-dist).max(axis=1)
    for _ in range(cycles):
        aff = np.eye(NUM_CLASSES)[labels]
        cent = (aff.T @ x) / (eps + aff.sum(axis=0)[:, None])
        labels = _cosine_distance(x, cent).argmin(axis=1)
    labels = labels.astype(np.int64)
    n = len(labels)
    return PseudoLabels(labels, conf, _one_hot(labels), np.full(n, -1, np.int64), conf.copy(),
                        np.argmax(logits, axis=1).astype(np.int64), np.zeros((0, NUM_CLASSES), np.int64))
