"""Unsupervised model-selection criteria: pick a trial without target labels.

Pure numpy: arrays in, a float out. Every criterion is "higher is better", so a sweep can
maximise any of them; :data:`CRITERIA` maps the names users pass (``--objective snd``) to the
functions.

* **SND**, soft neighbourhood density (Saito, Kim, Teterwak, Sclaroff, Darrell, Saenko,
  "Tune it the Right Way: Unsupervised Validation of Domain Adaptation via Soft Neighborhood
  Density", ICCV 2021): L2-normalise the target softmax outputs, take the pairwise cosine
  similarities without the diagonal, turn each row into a distribution with a softmax at
  temperature ``tau`` (0.05 in the paper) and average the rows' entropies. A model whose
  predictions form dense neighbourhoods (consistent, well-clustered outputs) scores high.
* **neg_entropy**: minus the mean prediction entropy (confident predictions score high).
* **im**, information maximisation (as in SHOT): entropy of the mean prediction minus the mean
  entropy, so collapsed predictions (all one class) are penalised.

:func:`spearman` gives the rank correlation the sweep report uses to judge a criterion
against Val accuracy across trials.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["CRITERIA", "softmax", "snd", "neg_entropy", "information_maximization", "spearman", "get"]

_EPS = 1e-12


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of ``logits`` [N, C] -> probabilities [N, C] float64."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _check_probs(probs: np.ndarray, name: str) -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] < 2 or p.shape[1] < 2:
        raise ValueError(f"{name}: expected probabilities of shape [N>=2, C>=2], got {p.shape}")
    if not np.isfinite(p).all():
        raise ValueError(f"{name}: probabilities contain NaN or inf")
    return p


def snd(probs: np.ndarray, *, temperature: float = 0.05, chunk: int = 2048) -> float:
    """Soft neighbourhood density of target predictions (higher is better).

    Args:
        probs: softmax outputs [N, C] on the target (unlabelled) samples.
        temperature: softmax temperature over similarities (the paper uses 0.05).
        chunk: rows processed at a time, so memory is ``chunk x N`` instead of ``N x N``.

    Returns:
        mean over rows i of ``-sum_j p_ij log p_ij`` with ``p_i = softmax_j!=i(s_ij / tau)``
        and ``s_ij`` the cosine similarity of rows i and j of ``probs``.

    Raises:
        ValueError: bad shape, NaN/inf, or a non-positive temperature.
    """
    if temperature <= 0:
        raise ValueError(f"snd: temperature must be > 0, got {temperature}")
    p = _check_probs(probs, "snd")
    f = p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), _EPS)
    n = f.shape[0]
    total = 0.0
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        s = (f[start:stop] @ f.T) / temperature  # [b, N]
        rows = np.arange(stop - start)
        s[rows, rows + start] = -np.inf  # no self-similarity
        s -= s.max(axis=1, keepdims=True)
        e = np.exp(s)
        q = e / e.sum(axis=1, keepdims=True)
        logq = np.where(q > 0, np.log(np.where(q > 0, q, 1.0)), 0.0)
        total += float(-(q * logq).sum())
    return total / n


def sample_mask(index: np.ndarray, samples: int | None, seed: int) -> np.ndarray:
    """Boolean mask over rows with ids ``index`` [N] keeping a seeded subset of ``samples`` ids.

    The subset depends on the set of ids only, not on their order, so every trial (and the
    source-only row) scores the same images. ``samples`` None or >= N keeps everything.
    """
    index = np.asarray(index)
    if samples is None or len(index) <= samples:
        return np.ones(len(index), dtype=bool)
    chosen = np.random.default_rng(seed).choice(np.sort(index), samples, replace=False)
    return np.isin(index, chosen)


def neg_entropy(probs: np.ndarray) -> float:
    """Minus the mean per-sample entropy of ``probs`` [N, C] (higher = more confident)."""
    p = _check_probs(probs, "neg_entropy")
    return float((p * np.log(np.maximum(p, _EPS))).sum(axis=1).mean())


def information_maximization(probs: np.ndarray) -> float:
    """Entropy of the mean prediction minus the mean entropy (SHOT's IM objective, maximised)."""
    p = _check_probs(probs, "im")
    mean = p.mean(axis=0)
    h_mean = float(-(mean * np.log(np.maximum(mean, _EPS))).sum())
    return h_mean + neg_entropy(p)


def _rank(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their average rank."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.arange(1, len(x) + 1)
    _, inv, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inv, weights=ranks)
    return sums[inv] / counts[inv]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two equal-length vectors (ties get average ranks).

    Returns NaN when fewer than 2 values are given or either vector is constant.

    Raises:
        ValueError: the lengths differ.
    """
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"spearman: lengths differ ({a.size} vs {b.size})")
    if a.size < 2:
        return float("nan")
    ra, rb = _rank(a), _rank(b)
    ra -= ra.mean()
    rb -= rb.mean()
    denom = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    if denom == 0:
        return float("nan")
    return float((ra * rb).sum() / denom)


#: name -> criterion on target softmax outputs [N, C]; all are maximised.
CRITERIA: dict[str, Callable[[np.ndarray], float]] = {
    "snd": snd,
    "neg_entropy": neg_entropy,
    "im": information_maximization,
}


def get(name: str) -> Callable[[np.ndarray], float]:
    """The criterion called ``name``.

    Raises:
        ValueError: unknown name; the message lists the choices.
    """
    try:
        return CRITERIA[name]
    except KeyError:
        raise ValueError(f"unknown selection criterion {name!r}; choose one of {', '.join(CRITERIA)}") from None
