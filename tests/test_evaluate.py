"""Metrics against scikit-learn on known predictions."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from distfer.errors import DataError
from distfer.train.evaluate import classification_metrics


def test_matches_sklearn_on_random_predictions():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 7, 200)
    p = np.where(rng.random(200) < 0.6, y, rng.integers(0, 7, 200))
    m = classification_metrics(y, p)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, p))
    assert m["macro_f1"] == pytest.approx(f1_score(y, p, average="macro"))
    cm = confusion_matrix(y, p, labels=range(7))
    assert m["confusion_matrix"] == cm.tolist()
    per = [m["per_class_accuracy"][c] for c in ("Surprise", "Fear", "Disgust", "Happiness", "Sadness", "Anger", "Neutral")]
    assert per == pytest.approx(list(cm.diagonal() / cm.sum(1)))
    assert m["n"] == 200 and sum(m["support"].values()) == 200


def test_known_small_case_unknown_rows_and_absent_classes():
    y = np.array([0, 0, 1, 1, 3, -1])
    p = np.array([0, 1, 1, 1, 0, 5])
    m = classification_metrics(y, p)
    assert m["n"] == 5 and m["accuracy"] == pytest.approx(3 / 5)
    assert m["per_class_accuracy"]["Surprise"] == 0.5 and m["per_class_accuracy"]["Fear"] == 1.0
    assert np.isnan(m["per_class_accuracy"]["Disgust"])  # absent from y_true
    # macro-F1 over the classes present in y_true (0, 1, 3)
    assert m["macro_f1"] == pytest.approx(f1_score(y[:5], p[:5], labels=[0, 1, 3], average="macro"))
    assert m["mean_class_accuracy"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)


def test_errors():
    with pytest.raises(DataError, match="no labelled samples"):
        classification_metrics(np.array([-1, -1]), np.array([0, 1]))
    with pytest.raises(DataError, match="has 2 labels but y_pred has 3"):
        classification_metrics(np.array([0, 1]), np.array([0, 1, 2]))
