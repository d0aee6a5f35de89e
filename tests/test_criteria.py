"""Unsupervised selection criteria against brute-force references."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import spearmanr

from distfer.tune import criteria


def _snd_brute(probs: np.ndarray, tau: float) -> float:
    n = len(probs)
    f = [[v / math.sqrt(sum(u * u for u in p)) for v in p] for p in probs.tolist()]
    total = 0.0
    for i in range(n):
        sims = [sum(a * b for a, b in zip(f[i], f[j])) / tau for j in range(n) if j != i]
        m = max(sims)
        ex = [math.exp(s - m) for s in sims]
        z = sum(ex)
        total += -sum((e / z) * math.log(e / z) for e in ex if e > 0)
    return total / n


@pytest.mark.parametrize("chunk", [1, 3, 2048])
def test_snd_matches_brute_force(chunk):
    rng = np.random.default_rng(0)
    probs = criteria.softmax(rng.normal(size=(23, 7)) * 3)
    got = criteria.snd(probs, temperature=0.05, chunk=chunk)
    assert got == pytest.approx(_snd_brute(probs, 0.05), rel=1e-9)


def test_snd_prefers_clustered_predictions():
    rng = np.random.default_rng(1)
    # predictions that form tight groups vs uniformly scattered ones
    centers = np.eye(7)[rng.integers(0, 7, size=200)]
    tight = 0.9 * centers + 0.1 * rng.dirichlet(np.ones(7), size=200)
    scattered = rng.dirichlet(np.ones(7), size=200)
    assert criteria.snd(tight) > criteria.snd(scattered)


def test_entropy_and_im_brute_force():
    rng = np.random.default_rng(2)
    p = rng.dirichlet(np.ones(5), size=40)
    ent = np.mean([-sum(v * math.log(v) for v in row) for row in p])
    assert criteria.neg_entropy(p) == pytest.approx(-ent)
    m = p.mean(0)
    assert criteria.information_maximization(p) == pytest.approx(-(m * np.log(m)).sum() - ent)
    # a collapsed prediction is worse for IM than a confident balanced one
    collapsed = np.tile(np.eye(5)[0] * 0.96 + 0.01, (40, 1))
    balanced = np.eye(5)[np.arange(40) % 5] * 0.96 + 0.01
    assert criteria.information_maximization(balanced) > criteria.information_maximization(collapsed)


@pytest.mark.parametrize("seed", range(5))
def test_spearman_matches_scipy_with_ties(seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 5, size=17).astype(float)  # many ties
    b = a + rng.normal(size=17)
    assert criteria.spearman(a, b) == pytest.approx(spearmanr(a, b).statistic)


def test_spearman_degenerate():
    assert math.isnan(criteria.spearman([1.0], [2.0]))
    assert math.isnan(criteria.spearman([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="lengths differ"):
        criteria.spearman([1, 2], [1, 2, 3])


def test_bad_inputs():
    with pytest.raises(ValueError, match="temperature"):
        criteria.snd(np.full((3, 3), 1 / 3), temperature=0)
    with pytest.raises(ValueError, match="NaN"):
        criteria.snd(np.array([[np.nan, 1.0], [0.5, 0.5]]))
    with pytest.raises(ValueError, match="shape"):
        criteria.neg_entropy(np.ones(4))
    with pytest.raises(ValueError, match="choose one of"):
        criteria.get("accuracy")
    assert criteria.get("snd") is criteria.snd


def test_sample_mask_is_a_seeded_subset_independent_of_row_order():
    ids = np.arange(1000, 1500)
    m = criteria.sample_mask(ids, 100, seed=3)
    assert m.sum() == 100 and m.dtype == bool
    perm = np.random.default_rng(0).permutation(len(ids))
    shuffled = criteria.sample_mask(ids[perm], 100, seed=3)
    assert set(ids[perm][shuffled]) == set(ids[m])  # same images whatever the row order
    assert set(ids[criteria.sample_mask(ids, 100, seed=4)]) != set(ids[m])
    assert criteria.sample_mask(ids, None, 0).all() and criteria.sample_mask(ids, 500, 0).all()


def test_criterion_samples_is_validated():
    from distfer.config import SweepConfig
    from distfer.errors import ConfigError

    assert SweepConfig(criterion_samples=None).criterion_samples is None
    with pytest.raises(ConfigError, match="criterion_samples"):
        SweepConfig(criterion_samples=1)
