"""Bad input fails in the driver with one clear DistferError, before any Ray worker starts."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from train_helpers import make_store

from distfer.config import AdaptConfig, EvaluateConfig, PretrainConfig, TrainSourceConfig
from distfer.errors import ConfigError, DataError
from distfer.models import FERModel, save_model
from distfer.train import adapt, evaluate, pretrain, train_source


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return make_store(tmp_path_factory.mktemp("checks"))


@pytest.fixture(autouse=True)
def no_worker_may_start(monkeypatch):
    """Any attempt to start Ray Train here is a test failure: checks must come first."""
    def boom(*a, **k):
        raise AssertionError("a Ray Train run was started before the inputs were checked")

    monkeypatch.setattr("distfer.train.trainer.fit", boom)


def _pseudo(path, index, selected, labels=None):
    n = len(index)
    labels = np.zeros(n, np.int64) if labels is None else labels
    pq.write_table(pa.table({
        "index": pa.array(index, pa.int64()), "cluster": pa.array(np.zeros(n, np.int64)),
        "label": pa.array(labels), "confidence": pa.array(np.ones(n, np.float32)),
        "soft": pa.array([[1 / 7] * 7] * n, pa.list_(pa.float32())), "selected": pa.array(selected),
    }), path)
    return str(path)


def test_train_source_inputs(store, tmp_path):
    base = {"store": str(store.path), "out": str(tmp_path / "o")}
    with pytest.raises(DataError, match="does not exist"):
        train_source(TrainSourceConfig.from_dict({**base, "store": str(tmp_path / "none")}))
    with pytest.raises(DataError, match="is unlabelled"):
        train_source(TrainSourceConfig.from_dict({**base, "split": "test", "batch_size": 2}))
    with pytest.raises(DataError, match="no split 'nope'"):
        train_source(TrainSourceConfig.from_dict({**base, "split": "nope"}))
    with pytest.raises(DataError, match="batch_size 64 is larger than the data: 42"):
        train_source(TrainSourceConfig.from_dict(base))
    with pytest.raises(DataError, match="over 2 worker"):
        train_source(TrainSourceConfig.from_dict({**base, "batch_size": 30, "trainer": {"num_workers": 2}}))
    with pytest.raises(ConfigError, match="unknown architecture 'resnet9'"):
        train_source(TrainSourceConfig.from_dict({**base, "arch": "resnet9"}))
    with pytest.raises(ConfigError, match="num_workers"):
        TrainSourceConfig.from_dict({**base, "trainer": {"num_workers": -1}})
    assert TrainSourceConfig.from_dict({**base, "trainer": {"num_workers": 0}}).trainer.num_workers == 0  # in-process
    with pytest.raises(ConfigError, match="storage_path"):  # in-process checkpoints stay on a local path
        TrainSourceConfig.from_dict({**base, "trainer": {"num_workers": 0, "storage_path": "s3://b/runs"}})


def test_pretrain_inputs(store, tmp_path):
    with pytest.raises(DataError, match="larger than the data"):
        pretrain(PretrainConfig(store=str(store.path), out=str(tmp_path), batch_size=100))
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\0" * 10)
    with pytest.raises(DataError, match="cannot read model file"):
        pretrain(PretrainConfig(store=str(store.path), out=str(tmp_path), batch_size=8, init=str(bad)))
    other = save_model(FERModel("resnet18_small"), tmp_path / "r18.pt", kind="source")
    with pytest.raises(DataError, match="architecture is 'resnet18_small', expected 'small'"):
        pretrain(PretrainConfig(store=str(store.path), out=str(tmp_path), batch_size=8, init=str(other)))


def test_adapt_inputs(store, tmp_path):
    init = str(save_model(FERModel("small", input_size=16), tmp_path / "init.pt", kind="ssl"))
    _, _, index = store.load_arrays("train")
    base = {"store": str(store.path), "init": init, "out": str(tmp_path / "o"), "batch_size": 4}
    zero = _pseudo(tmp_path / "zero.parquet", index, np.zeros(len(index), bool))
    with pytest.raises(DataError, match="selects 0 of 42"):
        adapt(AdaptConfig.from_dict({**base, "pseudo": zero}))
    few = _pseudo(tmp_path / "few.parquet", index, np.arange(len(index)) < 3)
    with pytest.raises(DataError, match="larger than the data: 3 selected"):
        adapt(AdaptConfig.from_dict({**base, "pseudo": few}))
    alien = _pseudo(tmp_path / "alien.parquet", index + 10_000, np.ones(len(index), bool))
    with pytest.raises(DataError, match="not rows of split 'train'"):
        adapt(AdaptConfig.from_dict({**base, "pseudo": alien}))
    badlab = _pseudo(tmp_path / "lab.parquet", index, np.ones(len(index), bool), np.full(len(index), 9))
    with pytest.raises(DataError, match=r"labels must be in 0..6"):
        adapt(AdaptConfig.from_dict({**base, "pseudo": badlab}))
    pq.write_table(pa.table({"index": pa.array(index)}), tmp_path / "cols.parquet")
    with pytest.raises(DataError, match="lacks column"):
        adapt(AdaptConfig.from_dict({**base, "pseudo": str(tmp_path / "cols.parquet")}))
    with pytest.raises(DataError, match="pseudo-label file .* does not exist"):
        adapt(AdaptConfig.from_dict({**base, "pseudo": str(tmp_path / "none.parquet")}))
    with pytest.raises(DataError, match="model file .* does not exist"):
        adapt(AdaptConfig.from_dict({**base, "init": str(tmp_path / "none.pt"), "pseudo": zero}))


def test_evaluate_inputs_and_result(store, tmp_path):
    model = save_model(FERModel("small", input_size=16), tmp_path / "m.pt", kind="source")
    with pytest.raises(DataError, match="is unlabelled"):
        evaluate(EvaluateConfig(store=str(store.path), model=str(model), split="test"))
    m = evaluate(EvaluateConfig(store=str(store.path), model=str(model), split="val"))
    assert m["n"] == 21 and 0 <= m["accuracy"] <= 1 and (tmp_path / "eval_val.json").is_file()
