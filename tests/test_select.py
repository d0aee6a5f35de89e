"""distfer.pseudo.select against a brute-force per-class loop, tie cases, bad specs, warnings."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from distfer.config import ConfigError, PseudoLabelConfig, parse_select_spec
from distfer.pseudo.labels import purity_labels
from distfer.pseudo.select import iterative_select, select, selection_stats

C = 7


def brute_select(labels, conf, purity, index, kind, value, min_per_class):
    keep = set()
    for k in range(C):
        members = [i for i in range(len(labels)) if labels[i] == k]
        members.sort(key=lambda i: (-conf[i], -purity[i], index[i]))
        if kind == "fraction":
            chosen = members[: math.floor(value * len(members))]
        else:
            chosen = [i for i in members if conf[i] >= value]
        if len(chosen) < min(min_per_class, len(members)):
            chosen = list(dict.fromkeys(chosen + members[:min_per_class]))
        keep.update(chosen)
    return np.array([i in keep for i in range(len(labels))])


@st.composite
def scored(draw):
    n = draw(st.integers(0, 80))
    labels = draw(st.lists(st.integers(0, C - 1), min_size=n, max_size=n))
    # coarse confidences / purities: many ties
    conf = draw(st.lists(st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]), min_size=n, max_size=n))
    pur = draw(st.lists(st.sampled_from([0.3, 0.6, 0.9]), min_size=n, max_size=n))
    index = draw(st.permutations(list(range(1000, 1000 + n))))
    return np.array(labels, int), np.array(conf), np.array(pur), np.array(index, np.int64)


@settings(max_examples=100, deadline=None)
@given(scored(), st.sampled_from(["fraction:0.1", "fraction:0.5", "fraction:1", "threshold:0.5",
                                  "threshold:0", "threshold:1"]), st.integers(0, 3))
def test_select_matches_brute_force(data, spec, mpc):
    labels, conf, pur, index = data
    kind, value = parse_select_spec(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = select(labels, conf, spec, purity=pur, index=index, min_per_class=mpc)
    np.testing.assert_array_equal(got, brute_select(labels, conf, pur, index, kind, value, mpc))


def test_fraction_ties_broken_by_purity_then_index():
    labels = np.zeros(6, int)
    conf = np.array([0.0, 0.8, 0.8, 0.8, 0.8, 0.1])  # drop_outliers zeroed sample 0
    purity = np.array([0.9, 0.8, 0.8, 0.9, 0.8, 0.1])
    index = np.array([5, 4, 3, 2, 1, 0])
    # floor(0.5 * 6) = 3: sample 3 (purity 0.9), then of 1, 2, 4 the lowest ids 1 (-> row 4), 3 (-> row 2)
    got = select(labels, conf, "fraction:0.5", purity=purity, index=index)
    np.testing.assert_array_equal(np.flatnonzero(got), [2, 3, 4])


def test_floor_per_class():
    labels = np.array([0] * 19 + [1] * 10 + [2] * 9)
    with pytest.warns(UserWarning, match="class Disgust"):
        got = select(labels, np.ones(len(labels)), "fraction:0.1")
    assert np.bincount(labels[got], minlength=3).tolist() == [1, 1, 0]


def test_emptied_class_warns_and_min_per_class_applies():
    labels = np.array([0] * 20 + [3] * 5)
    conf = np.linspace(0, 1, 25)
    with pytest.warns(UserWarning, match="no sample of class Happiness"):
        got = select(labels, conf, "fraction:0.1")
    assert got[labels == 3].sum() == 0
    with pytest.warns(UserWarning, match="min_per_class=2 keeps its 2 best"):
        got = select(labels, conf, "fraction:0.1", min_per_class=2)
    assert np.flatnonzero(got & (labels == 3)).tolist() == [23, 24]
    with pytest.warns(UserWarning):
        got = select(labels, conf, "threshold:0.99", min_per_class=1)
    assert got[labels == 0].sum() == 1 and got[labels == 3].sum() == 1


@pytest.mark.parametrize("spec,msg", [
    ("fraction:0", r"rho=0.0 must be in \(0, 1\]"), ("fraction:1.5", "rho=1.5"),
    ("threshold:-0.1", r"tau=-0.1 must be in \[0, 1\]"), ("threshold:1.01", "tau=1.01"),
    ("top:5", "not understood"), ("fraction", "not understood"), ("fraction:abc", "not a number"),
])
def test_bad_specs(spec, msg):
    with pytest.raises(ConfigError, match=msg):
        parse_select_spec(spec)
    with pytest.raises(ConfigError, match=msg):
        PseudoLabelConfig(select=spec)


def test_bad_config_values():
    with pytest.raises(ConfigError, match="choose one of"):
        PseudoLabelConfig.from_dict({"mode": "majority"})
    with pytest.raises(ConfigError, match="at least as many clusters as classes"):
        PseudoLabelConfig(clusters=6)
    with pytest.raises(ConfigError, match="unknown config key"):
        PseudoLabelConfig.from_dict({"cluster": 10})


def test_iterative_select_relabels_only_unselected():
    rng = np.random.default_rng(0)
    n = 200
    preds = rng.integers(0, C, n)
    calls = []

    def label_round(rows, t):
        calls.append(rows.copy())
        cluster = (rows * (t + 3)) % 10
        return purity_labels(cluster, preds[rows], 10)

    res, sel = iterative_select(n, label_round, "fraction:0.2", rounds=3, cluster_offset=10)
    assert len(calls) == 3 and len(calls[0]) == n
    # round 2 saw exactly the rows round 1 did not select
    first = purity_labels((np.arange(n) * 3) % 10, preds, 10)
    sel1 = select(first.labels, first.confidence, "fraction:0.2", purity=first.purity)
    np.testing.assert_array_equal(calls[1], np.flatnonzero(~sel1))
    np.testing.assert_array_equal(res.labels[sel1], first.labels[sel1])
    assert res.cluster[sel1].max() < 10 and res.cluster[~sel1].min() >= 10
    assert sel.sum() > sel1.sum() and res.histogram.shape == (30, C)


def test_stats():
    preds = np.array([0, 0, 1, 1, 1, 2])
    res = purity_labels(np.array([0, 0, 1, 1, 1, 1]), preds, 2)
    sel = select(res.labels, res.confidence, "fraction:0.5")
    st_ = selection_stats(res, sel, mode="purity", spec="fraction:0.5", true_labels=np.array([0, 1, 1, 1, -1, 2]))
    assert st_.per_class_before["Surprise"] == 2 and st_.per_class_before["Fear"] == 4
    assert st_.selected == 3 and st_.labelled_known == 5
    assert st_.accuracy_all == pytest.approx(3 / 5)
    assert sum(st_.purity_histogram) == 2 and st_.purity_histogram[7] == 1 and st_.purity_histogram[9] == 1
