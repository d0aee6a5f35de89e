"""The pseudo-label stage: k-means + labelling rule + per-class selection + atomic output.

One implementation behind the Python API (:func:`pseudo_label`, :func:`pseudo_label_sharded`,
:func:`run`), ``distfer pseudo-label`` and the pipeline/sweep. Output: a Parquet table with
``index, cluster, label, confidence, soft[7], selected`` and ``<out>.stats.json`` beside it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from distfer.classes import NUM_CLASSES
from distfer.clustering import kmeans as km
from distfer.config import PseudoLabelConfig
from distfer.errors import DataError
from distfer.fsutil import atomic_write_bytes, atomic_write_text
from distfer.pseudo.labels import (
    PseudoLabels,
    centroid_labels,
    confidence_labels,
    purity_labels,
    teacher_predictions,
)
from distfer.pseudo.select import PseudoLabelStats, iterative_select, select, selection_stats

__all__ = ["PseudoLabelOutput", "pseudo_label", "pseudo_label_sharded", "read_table", "run", "write_table"]


@dataclasses.dataclass(frozen=True)
class PseudoLabelOutput:
    """index int64 [N] (sample ids), the merged :class:`PseudoLabels`, selected bool [N], stats."""

    index: np.ndarray
    result: PseudoLabels
    selected: np.ndarray
    stats: PseudoLabelStats


def _check_inputs(features: np.ndarray | None, logits: np.ndarray, index: np.ndarray | None) -> None:
    logits = np.asarray(logits)
    if logits.ndim != 2 or logits.shape[1] != NUM_CLASSES:
        raise DataError(f"logits must have shape [N, {NUM_CLASSES}], got {logits.shape}; "
                        "pass the teacher's outputs over the 7 canonical classes")
    km.check_finite(logits, "logits")
    if features is not None:
        if np.ndim(features) != 2:
            raise DataError(f"features must be a 2-D array [N, d], got shape {np.shape(features)}")
        if len(features) != len(logits):
            raise DataError(f"features have {len(features)} rows but logits have {len(logits)}; "
                            "they must describe the same samples in the same order")
        km.check_finite(features, "features")
    if index is not None and len(index) != len(logits):
        raise DataError(f"index has {len(index)} entries but logits have {len(logits)} rows")


def pseudo_label(
    features: np.ndarray | None,
    logits: np.ndarray,
    cfg: PseudoLabelConfig,
    *,
    index: np.ndarray | None = None,
    true_labels: np.ndarray | None = None,
    assignments: np.ndarray | None = None,
    progress: bool = False,
) -> PseudoLabelOutput:
    """Pseudo-label in-process.

    Args:
        features: float [N, d] (may be None in ``confidence`` mode, or with ``assignments``
            and ``iter_clusters == 1``).
        logits: float [N, 7] teacher outputs.
        cfg: the stage config.
        index: int64 [N] stable sample ids (default ``arange(N)``).
        true_labels: int [N] (-1 unknown), only reported as accuracy in the stats.
        assignments: int [N] cluster ids; skips k-means in the first round.
        progress: show a progress bar of the k-means iterations (on stderr).

    Raises:
        DataError: shape/length mismatch, NaN/inf, K > N, bad assignments.
    """
    _check_inputs(features, logits, index)
    n = len(logits)
    index = np.arange(n, dtype=np.int64) if index is None else np.asarray(index, dtype=np.int64)
    if cfg.mode == "confidence":
        res = confidence_labels(logits)
        sel = select(res.labels, res.confidence, cfg.select, index=index, min_per_class=cfg.min_per_class)
        return PseudoLabelOutput(index, res, sel, selection_stats(res, sel, mode=cfg.mode, spec=cfg.select,
                                                                  true_labels=true_labels))
    if features is None and (cfg.mode == "centroid" or assignments is None or cfg.iter_clusters > 1):
        raise DataError(f"mode {cfg.mode!r} needs features; pass --features")
    if cfg.mode == "centroid":
        res = centroid_labels(features, logits, cycles=cfg.centroid_cycles, prep=cfg.feature_prep)
        sel = select(res.labels, res.confidence, cfg.select, index=index, min_per_class=cfg.min_per_class)
        return PseudoLabelOutput(index, res, sel, selection_stats(res, sel, mode=cfg.mode, spec=cfg.select,
                                                                  true_labels=true_labels))
    k = cfg.clusters
    if assignments is not None:
        assignments = np.asarray(assignments)
        if assignments.shape != (n,) or not np.issubdtype(assignments.dtype, np.integer):
            raise DataError(f"assignments must be {n} integer cluster ids, got {assignments.dtype} {assignments.shape}")
        if n and assignments.min() < 0:
            raise DataError("assignments hold negative cluster ids; ids must be 0..K-1")
        k = max(k, int(assignments.max()) + 1 if n else 0)
    elif k > n:
        raise DataError(f"cannot make {k} clusters from {n} samples; use at most {n} clusters")
    preds = teacher_predictions(logits)
    x = None if features is None else km.prepare_features(features, cfg.feature_prep)
    inertia: list[float] = []

    def label_round(rows: np.ndarray, t: int) -> PseudoLabels:
        if t == 0 and assignments is not None:
            cluster = assignments[rows].astype(np.int64)
        else:
            if k > len(rows):
                raise DataError(f"round {t + 1}: {len(rows)} samples left for {k} clusters; "
                                "lower iter_clusters or clusters")
            with _progress(progress, f"k-means K={k} round {t + 1}/{cfg.iter_clusters}", cfg.niter) as step:
                r = km.kmeans(x[rows], k, niter=cfg.niter, seed=cfg.seed + t, spherical=cfg.spherical,
                              init=cfg.init, device=cfg.device, progress=step)
            cluster = r.assignments
            inertia.append(r.inertia)
        return purity_labels(cluster, preds[rows], k, soft=cfg.mode == "soft-purity",
                             drop_outliers=cfg.drop_outliers)

    res, sel = iterative_select(n, label_round, cfg.select, rounds=cfg.iter_clusters, index=index,
                                min_per_class=cfg.min_per_class, cluster_offset=k)
    stats = selection_stats(res, sel, mode=cfg.mode, spec=cfg.select, rounds=cfg.iter_clusters,
                            true_labels=true_labels, inertia=inertia[0] if inertia else None)
    return PseudoLabelOutput(index, res, sel, stats)


@contextlib.contextmanager
def _progress(show: bool, what: str, total: int) -> Iterator[Callable[[int, float], None] | None]:
    """A rich progress bar on stderr whose callback takes ``(iteration, inertia)``."""
    if not show:
        yield None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(what, total=total)
        yield lambda it, inertia: bar.update(task, completed=it + 1, description=f"{what} inertia {inertia:.5g}")


def pseudo_label_sharded(sharded: Any, cfg: PseudoLabelConfig) -> PseudoLabelOutput:
    """Pseudo-label from a :class:`~distfer.clustering.index.ShardedIndex` (purity modes).

    The shards run k-means and return per-sample cluster ids, teacher predictions and true
    labels plus K x 7 histograms; no vector reaches this process. Rows come in shard order.
    Later rounds of ``iter_clusters`` exclude the already-selected sample ids (cached).

    Raises:
        DataError: the mode does not cluster.
    """
    if cfg.mode not in ("purity", "soft-purity"):
        raise DataError(f"mode {cfg.mode!r} does not cluster; the sharded index serves purity modes only")
    kw = {"column": cfg.column, "prep": cfg.feature_prep, "niter": cfg.niter, "spherical": cfg.spherical,
          "init": cfg.init}
    first = sharded.result(cfg.clusters, seed=cfg.seed, **kw)
    tab = first["table"]
    n = len(tab["index"])
    ids = tab["index"]

    def label_round(rows: np.ndarray, t: int) -> PseudoLabels:
        if t == 0:
            r = first
        else:
            excluded = np.setdiff1d(ids, ids[rows])
            r = sharded.result(cfg.clusters, seed=cfg.seed + t, exclude=excluded, **kw)
            if not np.array_equal(r["table"]["index"], ids[rows]):
                raise DataError("index shards returned rows in a changed order; restart the index group")
        return purity_labels(r["table"]["cluster"], r["table"]["predictions"], cfg.clusters,
                             soft=cfg.mode == "soft-purity", drop_outliers=cfg.drop_outliers,
                             histogram=r["histogram"])

    res, sel = iterative_select(n, label_round, cfg.select, rounds=cfg.iter_clusters, index=ids,
                                min_per_class=cfg.min_per_class, cluster_offset=cfg.clusters)
    stats = selection_stats(res, sel, mode=cfg.mode, spec=cfg.select, rounds=cfg.iter_clusters,
                            true_labels=tab["labels"], inertia=first["inertia"])
    return PseudoLabelOutput(ids, res, sel, stats)


def write_table(out: str | Path, output: PseudoLabelOutput, cfg: PseudoLabelConfig | None = None) -> Path:
    """Write the pseudo-label table (Parquet) and ``<out stem>.stats.json``, each atomically."""
    out = Path(out).expanduser()
    r = output.result
    soft = pa.FixedSizeListArray.from_arrays(pa.array(r.soft.astype(np.float32).ravel()), NUM_CLASSES)
    table = pa.table({
        "index": pa.array(output.index, pa.int64()),
        "cluster": pa.array(r.cluster, pa.int64()),
        "label": pa.array(r.labels.astype(np.int8), pa.int8()),
        "confidence": pa.array(r.confidence.astype(np.float32), pa.float32()),
        "soft": soft,
        "selected": pa.array(output.selected, pa.bool_()),
    })
    buf = io.BytesIO()
    pq.write_table(table, buf)
    stats_path = out.with_name(out.stem + ".stats.json")
    payload = {"stats": output.stats.to_dict(), "config": None if cfg is None else cfg.to_dict()}
    atomic_write_text(stats_path, json.dumps(payload, indent=2))
    atomic_write_bytes(out, buf.getvalue())
    return out


def read_table(path: str | Path) -> dict[str, np.ndarray]:
    """Read a pseudo-label table: index, cluster, label (int64), confidence, soft [N, 7], selected.

    Raises:
        DataError: missing or unreadable file.
    """
    try:
        t = pq.read_table(Path(path).expanduser())
    except (OSError, pa.ArrowInvalid) as e:
        raise DataError(f"cannot read pseudo-label table {path}: {e}") from None
    out = {c: t.column(c).to_numpy() for c in ("index", "cluster", "label", "confidence", "selected")}
    out["label"] = out["label"].astype(np.int64)
    out["soft"] = t.column("soft").combine_chunks().flatten().to_numpy().reshape(-1, NUM_CLASSES)
    return out


def run(
    cfg: PseudoLabelConfig,
    features: str | Path,
    out: str | Path,
    *,
    logits: str | Path | None = None,
    assignments: str | Path | None = None,
    index_name: str | None = None,
    progress: bool = False,
) -> PseudoLabelOutput:
    """Load inputs, pseudo-label (in-process, or over ``cfg.shards`` Ray index actors), write.

    Args:
        cfg: stage config.
        features: ``.npy`` [N, d] or a Parquet embedding directory.
        out: output ``.parquet`` path (stats JSON goes beside it).
        logits: ``.npy`` [N, 7] (Parquet inputs carry their own ``logits`` column).
        assignments: ``.npy`` int [N] cluster ids (skips k-means).
        index_name: name of a shared (detached, kept) actor group when ``cfg.shards > 0``
            (default: a fresh group, shut down afterwards).
        progress: show k-means progress on stderr.

    Raises:
        DataError: bad inputs (see :func:`pseudo_label`), or shards asked for with ``.npy`` inputs.
    """
    from distfer.clustering.embeddings import load_embeddings

    out = Path(out).expanduser()
    if out.suffix != ".parquet":
        raise DataError(f"output {out} must end in .parquet")
    if cfg.shards > 0 and cfg.mode in ("purity", "soft-purity") and assignments is None:
        if Path(features).suffix == ".npy":
            raise DataError("--shards needs Parquet embedding shards as --features, not a .npy file; "
                            "drop --shards to cluster in-process")


        from distfer.clustering.index import temporary_index

        with temporary_index(features, cfg.shards, device=cfg.device, name=index_name) as sharded:
            output = pseudo_label_sharded(sharded, cfg)
    else:
        emb = load_embeddings(features, logits, column=cfg.column)
        if emb.logits is None:
            raise DataError(f"no logits for {features}: pass --logits L.npy (or Parquet shards with a logits column)")
        a = None
        if assignments is not None:
            a = np.load(Path(assignments).expanduser(), allow_pickle=False)
        output = pseudo_label(emb.features, emb.logits, cfg, index=emb.index, true_labels=emb.labels,
                              assignments=a, progress=progress)
    write_table(out, output, cfg)
    return output
