"""Driver-side input checks run before any Ray Train worker starts (one clear error each)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from distfer.classes import NUM_CLASSES
from distfer.config import AdaptConfig
from distfer.data.store import FaceStore
from distfer.errors import DataError
from distfer.fsutil import require_file

PSEUDO_COLUMNS = ("index", "label", "soft", "selected")


def open_split(path: str, split: str) -> FaceStore:
    """Open a store and check that ``split`` exists and is not empty.

    Raises:
        DataError: missing/unfinished store, missing or empty split.
    """
    store = FaceStore.open(path)
    if split not in store.splits:
        raise DataError(f"store {store.path} has no split {split!r}; it has {', '.join(store.splits)}")
    if store.num_rows(split) == 0:
        raise DataError(f"split {split!r} of store {store.path} is empty; prepare it from a non-empty folder")
    return store


def labelled_rows(store: FaceStore, split: str, *, stage: str) -> int:
    """Number of labelled rows of ``split``; an error when there are none."""
    n = store.num_rows(split) - int(store.counts(split).get("unknown", 0))
    if n <= 0:
        raise DataError(
            f"{stage} needs labels, but split {split!r} of store {store.path} is unlabelled "
            f"(all {store.num_rows(split)} labels unknown); use a labelled store"
        )
    return n


def has_labelled(store: FaceStore, split: str | None) -> bool:
    """True when ``split`` exists in the store and holds labelled rows (per-epoch validation)."""
    if split is None or split not in store.splits:
        return False
    return store.num_rows(split) - int(store.counts(split).get("unknown", 0)) > 0


def batch_fits(batch_size: int, n: int, workers: int, *, what: str) -> None:
    """Each worker needs at least one full batch per epoch (``workers`` 0: in-process, one process)."""
    workers = max(workers, 1)
    per_worker = n // workers
    if batch_size > per_worker:
        raise DataError(
            f"batch_size {batch_size} is larger than the data: {n} {what} over {workers} worker(s) "
            f"gives {per_worker} per worker; use batch_size <= {max(per_worker, 1)} or fewer workers"
        )


def pseudo_labels(cfg: AdaptConfig, store: FaceStore) -> int:
    """Validate the pseudo-label file against the store split; the number of selected rows.

    Raises:
        DataError: missing/unreadable file, missing columns, zero selected rows, indices not in
            the split, labels outside 0..6, soft targets of the wrong width.
    """
    p = require_file(cfg.pseudo, what="pseudo-label file")
    try:
        table = pq.read_table(p)
    except (OSError, pa.ArrowException) as e:
        raise DataError(f"cannot read pseudo-label file {p} ({e}); pass a Parquet file") from None
    missing = [c for c in PSEUDO_COLUMNS if c not in table.column_names]
    if missing:
        raise DataError(f"pseudo-label file {p} lacks column(s) {', '.join(missing)}; "
                        f"expected {', '.join(PSEUDO_COLUMNS)}")
    sel = table.column("selected").to_numpy(zero_copy_only=False).astype(bool)
    if not sel.any():
        raise DataError(f"pseudo-label file {p} selects 0 of {len(sel)} samples; nothing to adapt "
                        "on: loosen the selection (a larger fraction or a lower threshold)")
    idx = table.column("index").to_numpy().astype(np.int64)[sel]
    split_index = np.concatenate(
        [pq.read_table(f, columns=["index"]).column("index").to_numpy() for f in store.shard_files(cfg.split)]
    ).astype(np.int64)
    unknown = np.setdiff1d(idx, split_index)
    if unknown.size:
        raise DataError(f"pseudo-label file {p}: {unknown.size} selected index value(s) (e.g. "
                        f"{int(unknown[0])}) are not rows of split {cfg.split!r} of store {store.path}")
    if cfg.targets == "hard":
        lab = table.column("label").to_numpy().astype(np.int64)[sel]
        if lab.min() < 0 or lab.max() >= NUM_CLASSES:
            raise DataError(f"pseudo-label file {p}: selected labels must be in 0..{NUM_CLASSES - 1}")
    else:
        soft = table.column("soft").to_pylist()
        if any(s is None or len(s) != NUM_CLASSES for s, k in zip(soft, sel) if k):
            raise DataError(f"pseudo-label file {p}: column soft must hold {NUM_CLASSES} values per row")
    return int(sel.sum())
