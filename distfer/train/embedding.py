"""``distfer embed``: teacher logits + features (+ SSL features) of store splits, via Ray Data.

Layout written (atomically: built under a temporary sibling, then renamed)::

    <out>/<split>/part-*.parquet   index int64, features fixed_size_list<float32>[d],
                                   [ssl_features fixed_size_list<float32>[d2]],
                                   logits fixed_size_list<float32>[7], label int8
    <out>/<split>/_embed_meta.json split, rows, dims, teacher/encoder files, store fingerprint
    <out>/embed_meta.json          {split: the same} for all splits

(The per-split file starts with ``_`` so that ``pyarrow.parquet.read_table(<out>/<split>)``
and Ray Data skip it.)

One folder per split: the sweep clusters ``train`` and evaluates on ``val``. Each split is
written as at least ``min_shards`` files so the ShardedIndex can spread them over actors.
The models run in a pool of ``num_actors`` Ray actors (``map_batches``), a GPU each when
``use_gpu``; ``label`` is the store's label (-1 unknown), for reporting only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from distfer.config import EmbedConfig
from distfer.fsutil import atomic_directory, atomic_write_text
from distfer.models.checkpoint import load_model
from distfer.train import checks

META_FILE = "embed_meta.json"
SPLIT_META_FILE = "_embed_meta.json"  # leading underscore: Parquet dataset readers skip it


def _tag(batch: pa.Table, split: str) -> pa.Table:
    return batch.append_column("split", pa.array([split] * batch.num_rows, pa.string()))


def _select(batch: pa.Table, split: str) -> pa.Table:
    import pyarrow.compute as pc

    return batch.filter(pc.equal(batch.column("split"), split)).drop_columns(["split"])


def _fixed_list(x: np.ndarray) -> pa.FixedSizeListArray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), x.shape[1])


class Embedder:
    """Ray Data actor: ``pa.Table(index, image, label, ...) -> pa.Table(embedding columns)``."""

    def __init__(self, teacher: str, encoder: str | None, size: int, encoding: str,
                 use_gpu: bool, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)
        self.device = torch.device("cuda" if use_gpu and torch.cuda.is_available() else "cpu")
        self.teacher = load_model(teacher)[0].to(self.device)
        self.encoder = load_model(encoder)[0].to(self.device) if encoder else None
        self.size, self.encoding = size, encoding

    def __call__(self, batch: pa.Table) -> pa.Table:
        import torch

        from distfer.data.augment import to_float
        from distfer.data.store import image_column_to_array

        images = image_column_to_array(batch.column("image"), self.size, self.encoding)
        with torch.no_grad():
            x = to_float(torch.from_numpy(images).to(self.device))
            logits, feats = self.teacher.forward_with_features(x)
            cols: dict[str, Any] = {
                "index": batch.column("index").cast(pa.int64()),
                "features": _fixed_list(feats.float().cpu().numpy()),
            }
            if self.encoder is not None:
                cols["ssl_features"] = _fixed_list(self.encoder.features(x).float().cpu().numpy())
        cols["logits"] = _fixed_list(logits.float().cpu().numpy())
        cols["label"] = batch.column("label").cast(pa.int8())
        cols["split"] = batch.column("split")
        return pa.table(cols)


@dataclass(frozen=True)
class EmbedResult:
    """Where the embeddings went: ``dirs[split]`` holds that split's shards; ``meta`` per split."""

    out: Path
    dirs: dict[str, Path]
    meta: dict[str, dict[str, Any]]


def embed(cfg: EmbedConfig) -> EmbedResult:
    """Embed ``cfg.splits`` of ``cfg.store`` with the teacher (and SSL encoder).

    Raises:
        DataError: missing store/split, a model file that is missing or not a 7-class model.
    """
    from ray.data import ActorPoolStrategy, SaveMode

    from distfer.train.trainer import ensure_ray

    stores = {s: checks.open_split(cfg.store, s) for s in cfg.splits}
    store = stores[cfg.splits[0]]
    teacher, _ = load_model(cfg.teacher, num_classes=7)
    dims = {"features": teacher.feature_dim}
    if cfg.encoder:
        dims["ssl_features"] = load_model(cfg.encoder)[0].feature_dim
    ensure_ray()
    encoder = str(Path(cfg.encoder).resolve()) if cfg.encoder else None
    parts = [store.ray_dataset(split).map_batches(_tag, fn_kwargs={"split": split}, batch_format="pyarrow")
             for split in cfg.splits]
    ds = parts[0].union(*parts[1:]) if len(parts) > 1 else parts[0]
    embedded = ds.map_batches(
        Embedder,
        fn_constructor_kwargs={
            "teacher": str(Path(cfg.teacher).resolve()), "encoder": encoder,
            "size": store.image_size, "encoding": store.meta.get("image_encoding", "raw"),
            "use_gpu": cfg.use_gpu, "threads": max(1, int(cfg.cpus_per_actor)),
        },
        batch_size=cfg.batch_size, batch_format="pyarrow",
        compute=ActorPoolStrategy(size=cfg.num_actors),
        num_cpus=cfg.cpus_per_actor, num_gpus=1 if cfg.use_gpu else 0,
    ).materialize()  # one actor pool for all splits
    metas: dict[str, dict[str, Any]] = {}
    out = Path(cfg.out).expanduser().resolve()
    with atomic_directory(out, overwrite=True) as tmp:
        for split in cfg.splits:
            n = store.num_rows(split)
            shards = cfg.min_shards if n >= cfg.min_shards else 1
            embedded.map_batches(_select, fn_kwargs={"split": split}, batch_format="pyarrow") \
                .repartition(shards).write_parquet(str(tmp / split), mode=SaveMode.OVERWRITE)
            for i, f in enumerate(sorted((tmp / split).glob("*.parquet"))):
                f.rename(f.with_name(f"part-{i:05d}.parquet"))
            metas[split] = {
                "split": split, "rows": n, "dims": dims, "columns": ["index", *dims, "logits", "label"],
                "teacher": str(Path(cfg.teacher).resolve()), "encoder": encoder,
                "store": str(store.path), "store_fingerprint": store.fingerprint,
                "shards": sorted(p.name for p in (tmp / split).glob("*.parquet")),
            }
            atomic_write_text(tmp / split / SPLIT_META_FILE, json.dumps(metas[split], indent=2))
        atomic_write_text(tmp / META_FILE, json.dumps(metas, indent=2))
    return EmbedResult(out, {s: out / s for s in cfg.splits}, metas)
