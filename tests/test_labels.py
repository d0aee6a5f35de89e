"""distfer.pseudo.labels against brute-force loop references and hand-made tie cases."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from distfer.errors import DataError
from distfer.pseudo.labels import (
    centroid_labels,
    class_histogram,
    confidence_labels,
    purity_labels,
    softmax,
    teacher_predictions,
)

C = 7


def brute_purity(cluster, logits, k, drop_outliers=False):
    """The method's semantics written as plain loops over clusters x classes."""
    preds = [int(np.argmax(row)) for row in logits]  # first max wins
    label_of, purity_of, soft_of = {}, {}, {}
    for c in range(k):
        members = [i for i in range(len(cluster)) if cluster[i] == c]
        best, best_score, soft = -1, 0.0, [0.0] * C
        for cls in range(C):
            score = sum(1 for i in members if preds[i] == cls) / len(members) if members else 0.0
            soft[cls] = score
            if score > best_score:  # strict: ties keep the lower class id
                best, best_score = cls, score
        label_of[c], purity_of[c], soft_of[c] = best, best_score, soft
    labels = [label_of[c] for c in cluster]
    conf = [purity_of[c] for c in cluster]
    if drop_outliers:
        conf = [0.0 if preds[i] != labels[i] else conf[i] for i in range(len(cluster))]
    return np.array(labels), np.array(conf), np.array([soft_of[c] for c in cluster])


@st.composite
def clustered(draw):
    n = draw(st.integers(1, 60))
    k = draw(st.integers(1, 12))
    cluster = draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n))
    # small integer logits make argmax ties common
    logits = draw(st.lists(st.lists(st.integers(-2, 2), min_size=C, max_size=C), min_size=n, max_size=n))
    return np.array(cluster), np.array(logits, dtype=np.float32), k


@settings(max_examples=100, deadline=None)
@given(clustered(), st.booleans(), st.booleans())
def test_purity_matches_brute_force(data, drop, soft):
    cluster, logits, k = data
    res = purity_labels(cluster, teacher_predictions(logits), k, soft=soft, drop_outliers=drop)
    labels, conf, soft_ref = brute_purity(cluster, logits, k, drop_outliers=drop)
    np.testing.assert_array_equal(res.labels, labels)
    np.testing.assert_allclose(res.confidence, conf, rtol=1e-6)
    if soft:
        np.testing.assert_allclose(res.soft, soft_ref, rtol=1e-6)
    else:
        np.testing.assert_array_equal(res.soft.argmax(1), labels)
        np.testing.assert_allclose(res.soft.sum(1), 1.0)
    np.testing.assert_array_equal(res.histogram.sum(), len(cluster))


def test_ties_go_to_lowest_class_id():
    # cluster 0: two votes for class 4, two for class 1 -> label 1, purity 0.5
    # cluster 1: one vote each for 6, 2, 3 -> label 2, purity 1/3
    preds = np.array([4, 1, 4, 1, 6, 2, 3])
    cluster = np.array([0, 0, 0, 0, 1, 1, 1])
    res = purity_labels(cluster, preds, 2)
    np.testing.assert_array_equal(res.labels, [1, 1, 1, 1, 2, 2, 2])
    np.testing.assert_allclose(res.confidence, [0.5] * 4 + [1 / 3] * 3, rtol=1e-6)
    # teacher argmax ties too: [1, 1, 0, ...] -> class 0
    logits = np.zeros((1, C), np.float32)
    logits[0, [3, 5]] = 2.0
    assert teacher_predictions(logits)[0] == 3


def test_drop_outliers_and_soft_purity_hand_case():
    preds = np.array([0, 0, 2, 5, 5, 5])
    cluster = np.array([0, 0, 0, 1, 1, 1])
    res = purity_labels(cluster, preds, 2, soft=True, drop_outliers=True)
    np.testing.assert_array_equal(res.labels, [0, 0, 0, 5, 5, 5])
    np.testing.assert_allclose(res.confidence, [2 / 3, 2 / 3, 0, 1, 1, 1], rtol=1e-6)
    np.testing.assert_allclose(res.purity, [2 / 3] * 3 + [1] * 3, rtol=1e-6)
    np.testing.assert_allclose(res.soft[0], [2 / 3, 0, 1 / 3, 0, 0, 0, 0], rtol=1e-6)


def test_histogram_and_empty_cluster():
    hist = class_histogram(np.array([0, 0, 2]), np.array([3, 3, 1]), 4)
    assert hist.shape == (4, C) and hist[0, 3] == 2 and hist[2, 1] == 1 and hist[1].sum() == 0
    res = purity_labels(np.array([0, 0, 2]), np.array([3, 3, 1]), 4, histogram=hist)
    np.testing.assert_array_equal(res.labels, [3, 3, 1])


def test_confidence_baseline_is_softmax_max():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(50, C)).astype(np.float32)
    res = confidence_labels(logits)
    e = np.exp(logits - logits.max(1, keepdims=True))
    p = e / e.sum(1, keepdims=True)
    np.testing.assert_array_equal(res.labels, p.argmax(1))
    np.testing.assert_allclose(res.confidence, p.max(1), rtol=1e-5)
    np.testing.assert_allclose(softmax(logits), p, rtol=1e-5)


def brute_centroid(features, logits, cycles):
    """SHOT nearest-centroid, with explicit loops over samples and classes."""
    n = len(features)
    x = np.concatenate([features, np.ones((n, 1))], 1).astype(np.float64)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    p = softmax(logits).astype(np.float64)

    def cos_dist(a, b):
        return 1 - a @ b / (np.linalg.norm(a) * np.linalg.norm(b))

    cent = [sum(p[i, k] * x[i] for i in range(n)) / (1e-8 + p[:, k].sum()) for k in range(C)]
    dist = np.array([[cos_dist(x[i], cent[k]) for k in range(C)] for i in range(n)])
    labels = dist.argmin(1)
    e = np.exp(-dist - (-dist).max(1, keepdims=True))
    conf = (e / e.sum(1, keepdims=True)).max(1)
    for _ in range(cycles):
        cent = []
        for k in range(C):
            members = [x[i] for i in range(n) if labels[i] == k]
            cent.append(sum(members) / (1e-8 + len(members)) if members else np.zeros(x.shape[1]))
        dist = np.array([[cos_dist(x[i], cent[k]) if np.any(cent[k]) else 2.0 for k in range(C)]
                         for i in range(n)])
        labels = dist.argmin(1)
    return labels, conf


@pytest.mark.parametrize("cycles", [0, 2])
def test_centroid_matches_brute_force(cycles):
    rng = np.random.default_rng(cycles)
    # class-structured features so every class keeps members during refinement
    y = np.arange(70) % C
    feats = (rng.normal(size=(70, 5)) + 3 * np.eye(C, 5)[y]).astype(np.float32)
    logits = (rng.normal(size=(70, C)) + 2 * np.eye(C)[y]).astype(np.float32)
    res = centroid_labels(feats, logits, cycles=cycles)
    labels, conf = brute_centroid(feats, logits, cycles)
    np.testing.assert_array_equal(res.labels, labels)
    np.testing.assert_allclose(res.confidence, conf, rtol=1e-5)
    assert (res.cluster == -1).all()


def test_bad_inputs():
    with pytest.raises(DataError, match=r"\[N, 7\]"):
        teacher_predictions(np.zeros((3, 5)))
    with pytest.raises(DataError, match="differ in length"):
        purity_labels(np.zeros(3, int), np.zeros(4, int), 2)
    with pytest.raises(DataError, match="0..1"):
        purity_labels(np.array([0, 2]), np.array([0, 0]), 2)
    with pytest.raises(DataError, match="must match"):
        centroid_labels(np.zeros((3, 2)), np.zeros((4, C)))
