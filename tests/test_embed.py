"""Embedding through Ray Data actors: schema, shards, and values equal to an in-process pass."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from train_helpers import make_store

from distfer.config import EmbedConfig
from distfer.data.augment import to_float
from distfer.errors import DataError
from distfer.fsutil import is_complete
from distfer.models import FERModel, load_model, save_model
from distfer.train import embed

pytestmark = pytest.mark.slow


def test_embed_train_and_val_matches_direct_forward(ray_session, tmp_path):
    store = make_store(tmp_path / "data")
    torch.manual_seed(0)
    teacher = save_model(FERModel("small", input_size=16), tmp_path / "teacher.pt", kind="source")
    encoder = save_model(FERModel("small", input_size=16), tmp_path / "ssl.pt", kind="ssl")
    res = embed(EmbedConfig(store=str(store.path), teacher=str(teacher), encoder=str(encoder),
                            out=str(tmp_path / "emb"), batch_size=16))
    assert is_complete(res.out) and set(res.dirs) == {"train", "val"}
    meta = json.loads((res.out / "embed_meta.json").read_text())
    t_model, _ = load_model(teacher)
    e_model, _ = load_model(encoder)
    for split in ("train", "val"):
        shards = sorted(res.dirs[split].glob("part-*.parquet"))
        assert len(shards) >= 2 and meta[split]["rows"] == store.num_rows(split)
        table = pq.read_table(res.dirs[split])  # the per-split meta file is skipped by readers
        assert table.schema.field("features").type.list_size == 128
        assert table.schema.field("logits").type.list_size == 7
        assert str(table.schema.field("label").type) == "int8"
        images, labels, index = store.load_arrays(split)
        order = np.argsort(table.column("index").to_numpy())
        assert np.array_equal(table.column("index").to_numpy()[order], np.sort(index))
        pos = np.argsort(index)  # store rows in index order
        x = to_float(torch.from_numpy(images[pos]))
        with torch.no_grad():
            ref_logits, ref_feats = t_model.forward_with_features(x)
            ref_ssl = e_model.features(x)

        def col(name, table=table, order=order):
            return np.stack(table.column(name).to_numpy(zero_copy_only=False))[order]

        np.testing.assert_allclose(col("features"), ref_feats.numpy(), atol=1e-5)
        np.testing.assert_allclose(col("logits"), ref_logits.numpy(), atol=1e-5)
        np.testing.assert_allclose(col("ssl_features"), ref_ssl.numpy(), atol=1e-5)
        assert np.array_equal(table.column("label").to_numpy()[order], labels[pos])


def test_embed_rejects_a_non_7_class_teacher(tmp_path):
    store = make_store(tmp_path / "data", test=0)
    bad = save_model(FERModel("small", num_classes=8), tmp_path / "t8.pt", kind="source")
    with pytest.raises(DataError, match="number of classes is 8, expected 7"):
        embed(EmbedConfig(store=str(store.path), teacher=str(bad), out=str(tmp_path / "e")))
