"""``prepare``: read a dataset, decode + crop + resize every face once, write a FaceStore.

Decoding runs in a process pool (``workers``, default all cores; forked on Linux, spawned
elsewhere) over chunks of faces, in listing order, so the store is identical whatever the
worker count; small datasets, where starting workers costs more than it saves, are decoded
in-process. The store is built in a
temporary folder and renamed into place when complete (:func:`distfer.fsutil.atomic_directory`).
Its fingerprint covers the config (minus paths and worker count) and every input file's
path, size and mtime; a re-run with the same fingerprint does nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import multiprocessing
import os
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from distfer import __version__
from distfer.classes import CLASSES, counts_per_class
from distfer.config import PrepareConfig
from distfer.data.formats import IMAGE_EXTS, Listing, ReadOptions, Record, get_reader
from distfer.data.formats.decode import Job, decode_chunk
from distfer.data.store import META_FILE, FaceStore
from distfer.errors import DataError
from distfer.fsutil import (
    atomic_directory,
    atomic_write_text,
    ensure_output_dir,
    is_complete,
    require_dir,
)

SHARD_BYTES = 64 << 20  # target raw image bytes per Parquet shard
# Linux: fork the decode workers (instant, and no `if __name__ == "__main__"` guard needed in
# the caller's script; workers run only PIL + numpy). Elsewhere: spawn (slower to start).
_START_METHOD = "fork" if sys.platform.startswith("linux") else "spawn"
POOL_STARTUP_S = 0.2 if _START_METHOD == "fork" else 1.5  # rough start cost per worker


def prepare(cfg: PrepareConfig, *, quiet: bool = False) -> FaceStore:
    """Build the store ``cfg.out/(cfg.name or cfg.format)``, or reuse it when up to date.

    Raises:
        DataError: bad dataset (missing label file, bad label, missing or corrupt image,
            empty split...) or an output path that holds something else.
    """
    console = Console(stderr=True, quiet=quiet)
    root = require_dir(cfg.root, what=f"{cfg.format} dataset root")
    opts = ReadOptions(class_map=dict(cfg.class_map), val_fraction=cfg.val_fraction, split_seed=cfg.split_seed)
    listing = get_reader(cfg.format)(root, opts)
    if listing.ignored:
        console.print(
            f"warning: ignored {len(listing.ignored)} non-image file(s) among the images "
            f"(e.g. {listing.ignored[0]}); accepted suffixes: {' '.join(sorted(IMAGE_EXTS))}",
            highlight=False, soft_wrap=True,
        )
    if listing.missing and not cfg.skip_bad:
        raise DataError(
            f"{listing.missing[0]} ({len(listing.missing)} label line(s) name missing images); "
            "fix the paths, or pass --skip-bad to skip them"
        )
    fingerprint = cfg.fingerprint(input_digest(listing, root))
    dest = ensure_output_dir(cfg.out, what="store folder") / (cfg.name or cfg.format)
    if dest.exists():
        if is_complete(dest) and (dest / META_FILE).is_file():
            store = FaceStore.open(dest)
            if store.fingerprint == fingerprint:
                console.print(f"already prepared: {dest} (fingerprint {fingerprint}); nothing to do", highlight=False, soft_wrap=True)
                return store
            console.print(f"{dest} was prepared from other inputs or settings; rebuilding it", highlight=False, soft_wrap=True)
        elif dest.is_file() or any(dest.iterdir()):
            raise DataError(f"{dest} exists and is not a FaceStore; remove it or choose another --out/--name")
    t0 = time.perf_counter()
    with atomic_directory(dest, overwrite=True) as tmp:
        meta = _write(tmp, listing, cfg, fingerprint, console)
        atomic_write_text(tmp / META_FILE, json.dumps(meta, indent=2, sort_keys=True))
    skipped = meta["skipped_bad"]
    console.print(
        f"prepared {dest}: {sum(s['rows'] for s in meta['splits'].values())} faces in "
        f"{time.perf_counter() - t0:.1f} s" + (f"; skipped {skipped} bad image(s)" if skipped else ""),
        highlight=False, soft_wrap=True,
    )
    return FaceStore.open(dest)


def input_digest(listing: Listing, root: Path) -> str:
    """Hash of the listing and every input file's relative path, size and mtime."""
    h = hashlib.sha256()
    files = sorted({r.file for r in listing.records if r.file} | {str(p) for p in listing.label_files})
    for f in files:
        st = os.stat(f)
        h.update(f"{os.path.relpath(f, root)}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    for r in listing.records:
        h.update(f"{r.split}\t{r.label}\t{r.path}\t{r.bbox}\n".encode())
    h.update(f"missing={len(listing.missing)}".encode())
    return h.hexdigest()


def _chunk_size(n: int, workers: int) -> int:
    """Faces per decode task: about 8 tasks per worker, 64..256 faces each."""
    return max(64, min(256, math.ceil(n / (workers * 8))))


def _chunks(records: Sequence[Record], size: int) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` ranges of at most ``size`` records that never cross a split."""
    start = 0
    while start < len(records):
        stop = min(start + size, len(records))
        split = records[start].split
        for j in range(start + 1, stop):
            if records[j].split != split:
                stop = j
                break
        yield start, stop
        start = stop


def _decoded(
    records: Sequence[Record], ranges: list[tuple[int, int]], cfg: PrepareConfig, workers: int
) -> Iterator[tuple[list[bytes | None], list[tuple[int, str]]]]:
    """Decode results per range, in order. The first range is decoded here and timed; the
    rest goes to a process pool only when that is expected to save more than starting it."""
    jobs: Iterator[list[Job]] = ([(r.file, r.bbox, r.pixels) for r in records[a:b]] for a, b in ranges)
    t0 = time.perf_counter()
    for first in jobs:
        yield decode_chunk(first, cfg.size, cfg.image_encoding)
        break
    per_record = (time.perf_counter() - t0) / max(1, ranges[0][1] - ranges[0][0]) if ranges else 0.0
    remaining = len(records) - (ranges[0][1] if ranges else 0)
    if workers == 1 or per_record * remaining < POOL_STARTUP_S * workers:
        for chunk in jobs:
            yield decode_chunk(chunk, cfg.size, cfg.image_encoding)
        return
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(_START_METHOD))
    try:
        yield from pool.map(decode_chunk, jobs, repeat(cfg.size), repeat(cfg.image_encoding))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class _ShardWriter:
    """Collects one split's rows and writes ``part-NNNNN.parquet`` files of ``rows`` rows."""

    def __init__(self, folder: Path, rows: int, compression: str) -> None:
        self.folder, self.rows, self.compression = folder, rows, compression
        self.buf: dict[str, list[Any]] = {"index": [], "image": [], "label": [], "path": []}
        self.shards: list[str] = []
        self.labels: list[int] = []
        folder.mkdir(parents=True, exist_ok=True)

    def add(self, index: int, image: bytes, label: int, path: str) -> None:
        for k, v in zip(("index", "image", "label", "path"), (index, image, label, path)):
            self.buf[k].append(v)
        self.labels.append(label)
        if len(self.buf["index"]) >= self.rows:
            self.flush()

    def flush(self) -> None:
        if not self.buf["index"]:
            return
        table = pa.table({
            "index": pa.array(self.buf["index"], pa.int64()),
            "image": pa.array(self.buf["image"], pa.binary()),
            "label": pa.array(self.buf["label"], pa.int8()),
            "path": pa.array(self.buf["path"], pa.string()),
        })
        name = f"part-{len(self.shards):05d}.parquet"
        pq.write_table(table, self.folder / name, compression=self.compression)
        self.shards.append(name)
        self.buf = {k: [] for k in self.buf}


def _write(tmp: Path, listing: Listing, cfg: PrepareConfig, fingerprint: str, console: Console) -> dict[str, Any]:
    records = listing.records
    workers = cfg.workers or os.cpu_count() or 1
    ranges = list(_chunks(records, _chunk_size(len(records), workers)))
    rows_per_shard = max(64, SHARD_BYTES // (cfg.size * cfg.size * 3))
    writers: dict[str, _ShardWriter] = {}
    bad: list[str] = []
    columns = [TextColumn("prepare {task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
    with contextlib.ExitStack() as stack:
        progress = stack.enter_context(Progress(*columns, console=console, transient=True))
        task = progress.add_task(f"{cfg.format} -> {cfg.size}px", total=len(records))
        decoded = stack.enter_context(contextlib.closing(_decoded(records, ranges, cfg, workers)))
        for (a, b), (images, errors) in zip(ranges, decoded):  # closing: an error stops the pool now
            for i, reason in errors:
                r = records[a + i]
                if not cfg.skip_bad:
                    raise DataError(
                        f"corrupt or unreadable image {r.file or r.path} ({reason}); replace or remove it, "
                        "or pass --skip-bad to skip bad images"
                    )
                bad.append(f"{r.file or r.path}: {reason}")
            split = records[a].split
            if split not in writers:
                compression = "none" if cfg.image_encoding == "raw" else "snappy"
                writers[split] = _ShardWriter(tmp / split, rows_per_shard, compression)
            for i, img in enumerate(images):
                if img is not None:
                    r = records[a + i]
                    writers[split].add(a + i, img, r.label, r.path)
            progress.advance(task, b - a)
    for w in writers.values():
        w.flush()
    for split in listing.splits:
        if split not in writers or not writers[split].labels:
            raise DataError(f"{cfg.format}: split {split!r} of {cfg.root} is empty after skipping bad images")
    bad = listing.missing + bad
    if bad:
        console.print(f"skipped {len(bad)} bad image(s), e.g. {bad[0]}", highlight=False, soft_wrap=True)
    order = [s for s in ("train", "val", "test") if s in writers]
    return {
        "format": cfg.format,
        "name": cfg.name or cfg.format,
        "root": str(Path(cfg.root).expanduser().resolve()),
        "classes": list(CLASSES),
        "image_size": cfg.size,
        "image_encoding": cfg.image_encoding,
        "splits": {
            s: {"rows": len(writers[s].labels), "shards": writers[s].shards,
                "counts": counts_per_class(np.asarray(writers[s].labels))}
            for s in order
        },
        "fingerprint": fingerprint,
        "skipped_bad": len(bad),
        "ignored_files": len(listing.ignored),
        "config": cfg.to_dict(),
        "distfer_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
