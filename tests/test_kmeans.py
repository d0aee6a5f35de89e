"""distfer.clustering.kmeans against a plain numpy Lloyd reference and scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs

from distfer.clustering import kmeans as km
from distfer.errors import DataError


def numpy_lloyd(x, init, niter):
    """Reference Lloyd: dense distances, argmin, mean per cluster (no empty clusters expected)."""
    c = init.astype(np.float64)
    x64 = x.astype(np.float64)
    for _ in range(niter):
        d = ((x64[:, None, :] - c[None]) ** 2).sum(-1)
        lab = d.argmin(1)
        c = np.stack([x64[lab == j].mean(0) for j in range(len(c))])
    d = ((x64[:, None, :] - c[None]) ** 2).sum(-1)
    return c, d.argmin(1), d.min(1).sum()


@pytest.fixture(scope="module")
def blobs():
    x, y = make_blobs(n_samples=1500, centers=12, n_features=8, cluster_std=1.5, random_state=0)
    return x.astype(np.float32), y


def test_matches_numpy_reference(blobs):
    x, _ = blobs
    res = km.kmeans(x, 12, niter=8, seed=1)
    init = x[km.init_positions(len(x), 12, 1)]
    c, lab, inertia = numpy_lloyd(x, init, 8)
    assert res.splits == 0
    np.testing.assert_allclose(res.centroids, c, rtol=1e-4, atol=1e-4)
    assert (res.assignments == lab).mean() > 0.999
    assert res.inertia == pytest.approx(inertia, rel=1e-4)
    assert len(res.iteration_inertia) == 8 and np.all(np.diff(res.iteration_inertia) <= 1e-3 * inertia)


def test_seeded_and_close_to_sklearn(blobs):
    x, _ = blobs
    a = km.kmeans(x, 12, niter=20, seed=5)
    b = km.kmeans(x, 12, niter=20, seed=5)
    np.testing.assert_array_equal(a.centroids, b.centroids)
    ref = KMeans(n_clusters=12, n_init=3, random_state=0).fit(x)
    best = min(km.kmeans(x, 12, niter=20, seed=s, init="kmeans++").inertia for s in range(3))
    assert best <= ref.inertia_ * 1.01
    pp = km.kmeans(x, 12, niter=20, seed=0, init="kmeans++")
    np.testing.assert_array_equal(pp.centroids, km.kmeans(x, 12, niter=20, seed=0, init="kmeans++").centroids)


def test_sklearn_same_init_same_result(blobs):
    x, _ = blobs
    init = x[km.init_positions(len(x), 12, 2)]
    ours = km.kmeans(x, 12, niter=10, seed=2)
    ref = KMeans(n_clusters=12, init=init, n_init=1, max_iter=10, tol=0, algorithm="lloyd").fit(x)
    assert ours.inertia == pytest.approx(ref.inertia_, rel=1e-3)


def test_empty_cluster_is_split():
    # 3 distinct points, each repeated; 5 clusters seeded on duplicates -> empties get re-seeded
    x = np.repeat(np.array([[0, 0], [10, 0], [0, 10]], np.float32), 20, axis=0)
    x += np.random.default_rng(0).normal(scale=0.01, size=x.shape).astype(np.float32)
    res = km.kmeans(x, 5, niter=5, seed=0)
    assert np.isfinite(res.centroids).all()
    assert len(np.unique(res.assignments)) >= 3
    cent, n_split = km.update(np.ones((3, 2)), np.array([0, 4, 0]), seed=0, iteration=0)
    assert n_split == 2 and np.isfinite(cent).all() and len(np.unique(cent.round(6), axis=0)) == 3


def test_spherical_and_prepare():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 6)).astype(np.float32)
    p = km.prepare_features(x, "append_one")
    assert p.shape == (300, 7)
    np.testing.assert_allclose(np.linalg.norm(p, axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(p[:, -1], 1 / np.sqrt((x**2).sum(1) + 1), rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(km.prepare_features(x, "l2"), axis=1), 1, rtol=1e-5)
    res = km.kmeans(p, 9, niter=5, seed=0, spherical=True)
    np.testing.assert_allclose(np.linalg.norm(res.centroids, axis=1), 1, rtol=1e-5)


def test_bad_inputs():
    x = np.zeros((5, 3), np.float32)
    with pytest.raises(DataError, match="cannot make 6 clusters from 5 samples"):
        km.kmeans(x, 6)
    x[2, 1] = np.nan
    x[4, 0] = np.inf
    with pytest.raises(DataError, match=r"2 row\(s\) hold NaN or inf values \(first at row 2\)"):
        km.kmeans(x, 2)
    with pytest.raises(DataError, match="unknown feature preparation"):
        km.prepare_features(x, "zscore")
