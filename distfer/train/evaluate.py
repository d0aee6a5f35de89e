"""Classification metrics (pure: numpy in, dict out), computed with scikit-learn.

Labels ``-1`` (unknown) are left out. Classes absent from ``y_true`` get a per-class
accuracy of NaN (written ``null`` in JSON) and are left out of the macro-F1 average, which
runs over the classes present in ``y_true``, the convention of the FER literature.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from distfer.classes import CLASSES, NUM_CLASSES
from distfer.errors import DataError


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, *, num_classes: int = NUM_CLASSES
) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class accuracy and the confusion matrix.

    Args:
        y_true: int ``[N]`` true class ids in ``0..num_classes-1`` (``-1`` rows are dropped).
        y_pred: int ``[N]`` predicted class ids.
        num_classes: size of the label space.

    Returns:
        ``{"accuracy": float, "macro_f1": float, "mean_class_accuracy": float,
        "per_class_accuracy": {name: float | nan}, "confusion_matrix": list[list[int]]
        (rows = true, columns = predicted), "support": {name: int}, "n": int}``.

    Raises:
        DataError: shapes differ, or no labelled rows remain.
    """
    y_true = np.asarray(y_true, dtype=np.int64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.int64).ravel()
    if y_true.shape != y_pred.shape:
        raise DataError(f"y_true has {y_true.size} labels but y_pred has {y_pred.size}")
    keep = y_true >= 0
    y_true, y_pred = y_true[keep], y_pred[keep]
    if y_true.size == 0:
        raise DataError("no labelled samples to evaluate (every label is -1 / unknown)")
    labels = np.arange(num_classes)
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    support = cm.sum(1)
    present = labels[support > 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(support > 0, np.diag(cm) / np.maximum(support, 1), np.nan)
    names = CLASSES if num_classes == NUM_CLASSES else tuple(str(i) for i in labels)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
        "mean_class_accuracy": float(np.nanmean(per_class)),
        "per_class_accuracy": {n: float(a) for n, a in zip(names, per_class)},
        "confusion_matrix": cm.astype(int).tolist(),
        "support": {n: int(s) for n, s in zip(names, support)},
        "n": int(y_true.size),
    }
