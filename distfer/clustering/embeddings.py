"""Read embedding inputs: Parquet embedding shards or ``.npy`` arrays, as numpy.

Embedding shards (written by the embedding stage) hold ``index`` int64, ``features``
(fixed-size list float32[d]), optional ``ssl_features`` float32[d2], ``logits`` float32[7] and
optional ``label`` int8 (true label, -1 unknown; used only to report accuracy).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from distfer.errors import DataError

__all__ = ["Embeddings", "embedding_files", "feature_matrix", "load_embeddings", "read_columns"]

FEATURE_COLUMNS = ("features", "ssl_features", "concat")


@dataclasses.dataclass(frozen=True)
class Embeddings:
    """Inputs of pseudo-labelling: index int64 [N], features float32 [N, d], logits float32 [N, 7]
    (or None), labels int64 [N] (-1 unknown) or None."""

    index: np.ndarray
    features: np.ndarray
    logits: np.ndarray | None
    labels: np.ndarray | None


def embedding_files(path: str | Path) -> list[Path]:
    """The Parquet files of an embedding directory (sorted, hidden/temporary files skipped), or
    ``[path]`` for a single ``.parquet`` file.

    Raises:
        DataError: the path does not exist or holds no Parquet file.
    """
    p = Path(path).expanduser()
    if p.is_file() and p.suffix == ".parquet":
        return [p]
    if not p.is_dir():
        raise DataError(f"embeddings {p} do not exist; pass a directory of Parquet shards or a .npy file")
    files = sorted(
        f for f in p.rglob("*.parquet")
        if not any(part.startswith((".", "_")) for part in f.relative_to(p).parts)
    )
    if not files:
        raise DataError(f"{p} holds no .parquet embedding shard; run the embedding stage first")
    return files


def _to_numpy(col: pa.ChunkedArray, name: str, where: str) -> np.ndarray:
    arr = col.combine_chunks()
    if pa.types.is_fixed_size_list(arr.type) or pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type):
        flat = arr.flatten().to_numpy(zero_copy_only=False)
        n = len(arr)
        if n and flat.size % n:
            raise DataError(f"{where}: column {name!r} has rows of different lengths")
        return flat.astype(np.float32, copy=False).reshape(n, -1 if n else 0)
    return arr.to_numpy(zero_copy_only=False)


def read_columns(files: Sequence[str | Path], names: Sequence[str], optional: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """Concatenate columns over ``files`` (in order). Missing ``optional`` columns are left out.

    Raises:
        DataError: a file is unreadable or lacks a required column (names the file and the
            columns it has).
    """
    parts: dict[str, list[np.ndarray]] = {}
    wanted = list(names) + [c for c in optional if c not in names]
    for f in files:
        try:
            schema = pq.read_schema(f)
            have = [c for c in wanted if c in schema.names]
            missing = [c for c in names if c not in schema.names]
            if missing:
                raise DataError(
                    f"{f}: no column {missing[0]!r} (it has {', '.join(schema.names)}); "
                    "choose another feature column or re-run the embedding stage"
                )
            table = pq.read_table(f, columns=have)
        except (OSError, pa.ArrowInvalid) as e:
            raise DataError(f"cannot read embedding shard {f}: {e}") from None
        for c in have:
            parts.setdefault(c, []).append(_to_numpy(table.column(c), c, str(f)))
    out = {}
    for c, chunks in parts.items():
        if len(chunks) != len(files):
            raise DataError(f"column {c!r} is present in some embedding shards but not all: {files[0]}")
        out[c] = np.concatenate(chunks)
    return out


def _l2(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), np.float32(1e-12))


def feature_matrix(cols: dict[str, np.ndarray], column: str) -> np.ndarray:
    """float32 [N, d] features to cluster: ``features``, ``ssl_features`` or ``concat`` (each
    part L2-normalised, then concatenated)."""
    if column == "concat":
        return np.concatenate([_l2(cols["features"]), _l2(cols["ssl_features"])], axis=1).astype(np.float32)
    if column not in FEATURE_COLUMNS:
        raise DataError(f"unknown feature column {column!r}; choose one of {', '.join(FEATURE_COLUMNS)}")
    return np.asarray(cols[column], dtype=np.float32)


def feature_sources(column: str) -> list[str]:
    """The Parquet columns that :func:`feature_matrix` needs for ``column``."""
    return ["features", "ssl_features"] if column == "concat" else [column]


def _load_npy(path: Path, what: str) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"{what} file {path} does not exist; check the path")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read {what} file {path} as a .npy array: {e}") from None


def load_embeddings(features: str | Path, logits: str | Path | None = None, *, column: str = "features") -> Embeddings:
    """Load inputs from ``.npy`` files or a Parquet embedding directory.

    Args:
        features: ``.npy`` float [N, d], or a directory/file of Parquet embedding shards.
        logits: ``.npy`` float [N, 7]; omitted (or the same directory) for Parquet inputs.
        column: feature column for Parquet inputs (``features``, ``ssl_features``, ``concat``).

    Raises:
        DataError: missing/unreadable file, missing column, or bad array shape.
    """
    fp = Path(features).expanduser()
    if fp.suffix == ".npy":
        x = _load_npy(fp, "features")
        if x.ndim != 2:
            raise DataError(f"features file {fp} must hold a 2-D array [N, d], got shape {x.shape}")
        lg = None if logits is None else _load_npy(Path(logits).expanduser(), "logits")
        return Embeddings(np.arange(len(x), dtype=np.int64), x.astype(np.float32), lg, None)
    files = embedding_files(fp)
    cols = read_columns(files, ["index", *feature_sources(column)], optional=["logits", "label"])
    lg = cols.get("logits")
    if logits is not None and Path(logits).expanduser().suffix == ".npy":
        lg = _load_npy(Path(logits).expanduser(), "logits")
    labels = cols["label"].astype(np.int64) if "label" in cols else None
    return Embeddings(cols["index"].astype(np.int64), feature_matrix(cols, column), lg, labels)
