"""FaceStore: faces decoded, cropped and resized once into Parquet shards, with torch and Ray views.

On disk (written atomically by :func:`prepare`)::

    <out>/<name>/meta.json                      format, classes, image size, counts, fingerprint
    <out>/<name>/<split>/part-NNNNN.parquet      index int64, image binary, label int8, path string
    <out>/<name>/_COMPLETE                      written last; a store without it is refused

``image`` holds the raw uint8 HxWx3 bytes (``image_encoding: raw``, the default) or PNG bytes
(``png``). ``index`` is stable across re-runs: a face's position in the reader's listing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from distfer.classes import CLASSES
from distfer.data.formats.base import SPLITS
from distfer.data.formats.decode import decode_png
from distfer.errors import DataError
from distfer.fsutil import COMPLETE_MARKER, is_complete, require_dir

if TYPE_CHECKING:
    import ray.data
    from rich.table import Table

    from distfer.config import PrepareConfig
    from distfer.data.views import FaceDataset

META_FILE = "meta.json"


def __getattr__(name: str) -> Any:  # FaceDataset lives in views.py so that torch loads lazily
    if name == "FaceDataset":
        from distfer.data.views import FaceDataset

        return FaceDataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def prepare(cfg: PrepareConfig, *, quiet: bool = False) -> FaceStore:
    """Build (or reuse) the FaceStore described by ``cfg``; see :mod:`distfer.data.prepare`."""
    from distfer.data.prepare import prepare as _prepare

    return _prepare(cfg, quiet=quiet)


class FaceStore:
    """A prepared dataset: read-only access to its splits (open with :meth:`open`)."""

    def __init__(self, path: Path, meta: dict[str, Any]) -> None:
        self.path = path
        self.meta = meta

    @classmethod
    def open(cls, path: str | Path) -> FaceStore:
        """Open a store folder written by :func:`prepare`.

        Raises:
            DataError: the folder is missing, unfinished (no ``_COMPLETE`` marker) or has a
                bad ``meta.json``.
        """
        p = require_dir(path, what="FaceStore")
        if not is_complete(p):
            raise DataError(
                f"{p} is not a complete FaceStore (no {COMPLETE_MARKER} marker): it was not written by "
                "`distfer prepare`, or a prepare was interrupted; run `distfer prepare` again"
            )
        try:
            meta = json.loads((p / META_FILE).read_text())
            _ = meta["splits"], meta["image_size"], meta["fingerprint"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise DataError(f"{p / META_FILE} is missing or corrupt ({e}); run `distfer prepare` again") from None
        return cls(p, meta)

    # ---- description ----------------------------------------------------------------------
    @property
    def splits(self) -> tuple[str, ...]:
        """The store's splits in order train, val, test (those present)."""
        return tuple(s for s in SPLITS if s in self.meta["splits"])

    @property
    def image_size(self) -> int:
        return int(self.meta["image_size"])

    @property
    def fingerprint(self) -> str:
        return str(self.meta["fingerprint"])

    @property
    def format(self) -> str:
        return str(self.meta.get("format", ""))

    def _split(self, split: str) -> dict[str, Any]:
        if split not in self.meta["splits"]:
            raise DataError(f"store {self.path} has no split {split!r}; it has {', '.join(self.splits)}")
        return self.meta["splits"][split]

    def num_rows(self, split: str) -> int:
        return int(self._split(split)["rows"])

    def counts(self, split: str) -> dict[str, int]:
        """Images per class name (plus ``unknown``) in ``split``."""
        return dict(self._split(split)["counts"])

    def shard_files(self, split: str) -> list[Path]:
        return [self.path / split / name for name in self._split(split)["shards"]]

    def __repr__(self) -> str:
        rows = ", ".join(f"{s}={self.num_rows(s)}" for s in self.splits)
        return f"FaceStore({str(self.path)!r}, format={self.format!r}, size={self.image_size}, {rows})"

    # ---- views ----------------------------------------------------------------------------
    def load_arrays(self, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The whole split in memory.

        Returns:
            ``(images, labels, index)``: uint8 [N, H, W, 3], int64 [N], int64 [N].

        Raises:
            DataError: a shard is missing or does not match ``meta.json``.
        """
        size, enc = self.image_size, self.meta.get("image_encoding", "raw")
        images, labels, index = [], [], []
        for f in self.shard_files(split):
            try:
                table = pq.read_table(f, columns=["index", "image", "label"])
            except (OSError, pa.ArrowException) as e:
                raise DataError(f"cannot read shard {f} ({e}); run `distfer prepare` again") from None
            for chunk in table.column("image").chunks:
                images.append(_decode_column(chunk, size, enc, f))
            labels.append(table.column("label").to_numpy().astype(np.int64))
            index.append(table.column("index").to_numpy().astype(np.int64))
        n = self.num_rows(split)
        out_images = np.concatenate(images) if images else np.zeros((0, size, size, 3), np.uint8)
        if len(out_images) != n:
            raise DataError(f"store {self.path} split {split!r} has {len(out_images)} rows, meta.json says {n}")
        return out_images, np.concatenate(labels), np.concatenate(index)

    def torch_dataset(self, split: str, transform: Callable[[np.ndarray], Any] | None = None) -> FaceDataset:
        """A torch ``Dataset`` over ``split`` (loaded once into memory); see :class:`FaceDataset`."""
        from distfer.data.views import FaceDataset

        return FaceDataset(*self.load_arrays(split), transform=transform)

    def ray_dataset(self, split: str) -> ray.data.Dataset:
        """A Ray Dataset over the split's shards, columns ``index, image, label, path``."""
        import ray.data

        return ray.data.read_parquet([str(f) for f in self.shard_files(split)])

    def counts_table(self) -> Table:
        """A rich table: one row per class (plus unknown and total), one column per split."""
        from rich.table import Table

        table = Table(title=f"{self.path.name}: {self.format}, {self.image_size}x{self.image_size} px")
        table.add_column("class")
        for s in self.splits:
            table.add_column(s, justify="right")
        counts = {s: self.counts(s) for s in self.splits}
        rows = [*CLASSES, "unknown"] if any("unknown" in c for c in counts.values()) else list(CLASSES)
        for c in rows:
            table.add_row(c, *(str(counts[s].get(c, 0)) for s in self.splits))
        table.add_row("total", *(str(self.num_rows(s)) for s in self.splits), style="bold")
        return table


def image_column_to_array(column: pa.ChunkedArray | pa.Array, size: int, encoding: str = "raw") -> np.ndarray:
    """An ``image`` column (as read from a shard) -> uint8 [N, size, size, 3]."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    parts = [_decode_column(c, size, encoding, "image column") for c in chunks]
    return np.concatenate(parts) if parts else np.zeros((0, size, size, 3), np.uint8)


def _decode_column(chunk: pa.Array, size: int, encoding: str, where: Any) -> np.ndarray:
    n = len(chunk)
    if encoding == "png":
        return np.stack([decode_png(b.as_py()) for b in chunk]) if n else np.zeros((0, size, size, 3), np.uint8)
    item = size * size * 3
    width = np.int64 if pa.types.is_large_binary(chunk.type) else np.int32
    offsets = np.frombuffer(chunk.buffers()[1], dtype=width)[chunk.offset : chunk.offset + n + 1]
    if n and not np.all(np.diff(offsets) == item):
        raise DataError(f"{where}: image bytes do not match {size}x{size}x3; run `distfer prepare` again")
    data = np.frombuffer(chunk.buffers()[2], dtype=np.uint8) if n else np.zeros(0, np.uint8)
    return data[offsets[0] : offsets[-1]].reshape(n, size, size, 3) if n else np.zeros((0, size, size, 3), np.uint8)
