"""Seeded Lloyd k-means in pure numpy + faiss, split into the steps a sharded run reuses.

One iteration is ``assign`` (faiss exhaustive L2 search, BLAS under the hood) ->
``partial_sums`` (per-cluster sums, counts, inertia of one block of rows) -> ``update`` (new
centroids from the reduced sums, empty clusters split off big ones). :func:`kmeans` runs them
on one array; :mod:`distfer.clustering.index` runs the same functions across Ray actors and
reduces the partial sums, so a one-shard run is bit-identical to :func:`kmeans`.

Initial centroids are ``K`` distinct rows drawn from the global row order (explicit seed), or
k-means++ (D^2) seeding on a sample of ``10 K`` such rows. Unlike ``faiss.Kmeans`` the Lloyd
iterations never silently subsample.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import faiss
import numpy as np
import scipy.sparse as sp

from distfer.errors import DataError

__all__ = [
    "KMeansResult",
    "assign",
    "check_finite",
    "init_centroids",
    "init_positions",
    "init_sample_positions",
    "kmeans",
    "partial_sums",
    "prepare_features",
    "update",
]

#: relative perturbation used when an empty cluster takes half of a big one (as faiss does)
SPLIT_EPS = 1.0 / 1024.0


@dataclasses.dataclass(frozen=True)
class KMeansResult:
    """Result of a k-means run.

    Attributes:
        centroids: float32 [K, d], after the last update.
        assignments: int64 [N], nearest final centroid of each row (empty for sharded runs
            that do not gather them).
        inertia: sum of squared distances of the rows to their final centroid.
        iteration_inertia: float64 [niter], inertia at each iteration's assignment step.
        splits: number of empty clusters re-seeded over the whole run.
    """

    centroids: np.ndarray
    assignments: np.ndarray
    inertia: float
    iteration_inertia: np.ndarray
    splits: int


def check_finite(x: np.ndarray, what: str) -> None:
    """Raise DataError when ``x`` holds NaN or inf, giving their count and the first row.

    Args:
        x: array [N, ...].
        what: name of the input (file or column) for the message.
    """
    bad = ~np.isfinite(x)
    if bad.ndim > 1:
        bad = bad.reshape(len(x), -1).any(axis=1)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{what}: {int(bad.sum())} row(s) hold NaN or inf values (first at row {first}); "
            "re-run the embedding stage or drop those rows"
        )


def prepare_features(x: np.ndarray, method: str = "append_one") -> np.ndarray:
    """Prepare features for clustering.

    Args:
        x: float [N, d].
        method: ``append_one`` (append a constant 1, then L2-normalise each row: the method's
            reference preparation), ``l2`` (L2-normalise) or ``none``.

    Returns:
        float32 [N, d + 1] for ``append_one``, else float32 [N, d] (C-contiguous).
    """
    x = np.asarray(x, dtype=np.float32)
    if method == "none":
        return np.ascontiguousarray(x)
    if method == "append_one":
        x = np.concatenate([x, np.ones((len(x), 1), dtype=np.float32)], axis=1)
    elif method != "l2":
        raise DataError(f"unknown feature preparation {method!r}; choose append_one, l2 or none")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.maximum(norms, np.float32(1e-12)))


def init_positions(n: int, k: int, seed: int) -> np.ndarray:
    """``k`` distinct row positions in ``0..n-1`` (int64 [k]), the initial centroids."""
    if k > n:
        raise DataError(f"cannot make {k} clusters from {n} samples; use at most {n} clusters")
    return np.random.default_rng(seed).choice(n, size=k, replace=False).astype(np.int64)


def init_sample_positions(n: int, k: int, seed: int, init: str = "random", oversample: int = 10) -> np.ndarray:
    """Row positions (int64) whose vectors seed the centroids: ``k`` distinct rows for
    ``random``; ``min(n, oversample * k)`` distinct rows for ``kmeans++`` (which then picks
    ``k`` of them, see :func:`init_centroids`)."""
    if k > n:
        raise DataError(f"cannot make {k} clusters from {n} samples; use at most {n} clusters")
    if init == "random":
        return init_positions(n, k, seed)
    if init != "kmeans++":
        raise DataError(f"unknown k-means init {init!r}; choose random or kmeans++")
    return init_positions(n, min(n, oversample * k), seed)


def init_centroids(sample: np.ndarray, k: int, seed: int, init: str = "random") -> np.ndarray:
    """Initial centroids float32 [k, d] from the rows at :func:`init_sample_positions`.

    ``random`` takes the sample as is; ``kmeans++`` runs D^2 seeding (Arthur & Vassilvitskii,
    2007) on the sample, seeded by ``seed``: O(k * len(sample) * d), fine for the sample sizes
    used here.
    """
    sample = np.ascontiguousarray(sample, dtype=np.float32)
    if init == "random":
        return sample.copy()
    rng = np.random.default_rng([seed, 104729])
    x = sample.astype(np.float64)
    sq = (x * x).sum(1)
    chosen = [int(rng.integers(len(x)))]
    closest = np.maximum(sq - 2 * x @ x[chosen[0]] + sq[chosen[0]], 0.0)
    for _ in range(1, k):
        total = closest.sum()
        j = int(rng.choice(len(x), p=closest / total)) if total > 0 else int(rng.integers(len(x)))
        chosen.append(j)
        np.minimum(closest, np.maximum(sq - 2 * x @ x[j] + sq[j], 0.0), out=closest)
    return sample[np.asarray(chosen)].copy()


def _flat_index(d: int, device: str) -> faiss.Index:
    index = faiss.IndexFlatL2(d)
    use_gpu = device == "gpu" or (device == "auto" and faiss.get_num_gpus() > 0)
    if use_gpu:
        if faiss.get_num_gpus() == 0:
            raise DataError("device 'gpu' was asked for, but faiss sees no GPU; use device 'auto' or 'cpu'")
        index = faiss.index_cpu_to_all_gpus(index)
    return index


def assign(x: np.ndarray, centroids: np.ndarray, device: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Nearest centroid of each row.

    Args:
        x: float32 [N, d]; centroids: float32 [K, d].
        device: ``auto`` (faiss GPU when faiss sees one), ``cpu`` or ``gpu``.

    Returns:
        ``(labels int64 [N], squared distances float32 [N])``; ties go to the lowest id.
    """
    index = _flat_index(centroids.shape[1], device)
    index.add(np.ascontiguousarray(centroids, dtype=np.float32))
    dist, labels = index.search(np.ascontiguousarray(x, dtype=np.float32), 1)
    return labels[:, 0].astype(np.int64), np.maximum(dist[:, 0], 0.0)


def partial_sums(
    x: np.ndarray, labels: np.ndarray, dist: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """Per-cluster sums of one block of rows.

    Returns:
        ``(sums float64 [K, d], counts int64 [K], inertia float)``.
    """
    n = len(labels)
    onehot = sp.csr_matrix((np.ones(n, dtype=np.float32), (labels, np.arange(n))), shape=(k, n))
    sums = np.asarray(onehot @ x, dtype=np.float64)
    return sums, np.bincount(labels, minlength=k).astype(np.int64), float(dist.astype(np.float64).sum())


def update(
    sums: np.ndarray, counts: np.ndarray, *, seed: int, iteration: int, spherical: bool = False
) -> tuple[np.ndarray, int]:
    """New centroids from reduced sums; each empty cluster takes half of a populous one.

    An empty cluster copies a cluster drawn with probability proportional to ``count - 1``
    (seeded by ``(seed, iteration)``), and the two copies are pushed apart by +-``SPLIT_EPS``.

    Args:
        sums: float64 [K, d]; counts: int64 [K].
        spherical: L2-normalise the centroids.

    Returns:
        ``(centroids float32 [K, d], number of empty clusters split)``.
    """
    counts = counts.astype(np.float64).copy()
    cent = sums / np.maximum(counts, 1.0)[:, None]
    empty = np.flatnonzero(counts == 0)
    if len(empty):
        rng = np.random.default_rng([seed, iteration, 7919])
        sign = np.where(np.arange(cent.shape[1]) % 2 == 0, 1.0, -1.0) * SPLIT_EPS
        for ci in empty:  # a few empty clusters at most; not a loop over clusters x classes
            weight = np.maximum(counts - 1.0, 0.0)
            if weight.sum() <= 0:
                break
            cj = int(rng.choice(len(counts), p=weight / weight.sum()))
            cent[ci] = cent[cj] * (1.0 + sign)
            cent[cj] = cent[cj] * (1.0 - sign)
            counts[ci] = counts[cj] / 2.0
            counts[cj] -= counts[ci]
    if spherical:
        cent /= np.maximum(np.linalg.norm(cent, axis=1, keepdims=True), 1e-12)
    return cent.astype(np.float32), len(empty)


def kmeans(
    x: np.ndarray,
    k: int,
    *,
    niter: int = 20,
    seed: int = 0,
    spherical: bool = False,
    init: str = "random",
    device: str = "auto",
    progress: Callable[[int, float], None] | None = None,
) -> KMeansResult:
    """Lloyd k-means on one array.

    Args:
        x: float32 [N, d] prepared features (see :func:`prepare_features`).
        k: number of clusters (1 <= k <= N).
        niter: Lloyd iterations (assign + update).
        seed: seed of the initial centroids and of empty-cluster splits.
        spherical: L2-normalise centroids after each update.
        init: ``random`` (k distinct rows, as faiss) or ``kmeans++`` (D^2 seeding on a
            sample of 10 k rows).
        device: ``auto``, ``cpu`` or ``gpu`` for the faiss assignment.
        progress: called as ``progress(iteration, inertia)`` after each iteration.

    Returns:
        :class:`KMeansResult` whose assignments/inertia refer to the final centroids.

    Raises:
        DataError: ``k > N``, ``k < 1`` or non-finite features.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    if k < 1:
        raise DataError(f"the number of clusters must be >= 1, got {k}")
    check_finite(x, "features")
    cent = init_centroids(x[init_sample_positions(len(x), k, seed, init)], k, seed, init)
    history, splits = [], 0
    for it in range(niter):
        labels, dist = assign(x, cent, device)
        sums, counts, inertia = partial_sums(x, labels, dist, k)
        history.append(inertia)
        cent, n_split = update(sums, counts, seed=seed, iteration=it, spherical=spherical)
        splits += n_split
        if progress is not None:
            progress(it, inertia)
    labels, dist = assign(x, cent, device)
    return KMeansResult(cent, labels, float(dist.astype(np.float64).sum()), np.asarray(history), splits)
