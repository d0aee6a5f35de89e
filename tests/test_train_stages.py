"""Each training stage for 1 epoch on a tiny store with 2 CPU Ray Train workers (DDP, gloo)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from train_helpers import make_store

from distfer.cli import main
from distfer.config import AdaptConfig, PretrainConfig
from distfer.models import FERModel, load_model, save_model
from distfer.train import adapt, pretrain

pytestmark = pytest.mark.slow
TWO = {"num_workers": 2, "cpus_per_worker": 0.5}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return make_store(tmp_path_factory.mktemp("stages"))


def test_train_source_cli_one_epoch_two_workers(ray_session, store, tmp_path, capsys):
    rc = main(["train-source", "--store", str(store.path), "--out", str(tmp_path / "src"), "--epochs", "1",
               "--batch-size", "8", "--workers", "2", "--cpus-per-worker", "0.5",
               "--storage-path", str(tmp_path / "ray")])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["final"]["epoch"] == 1 and np.isfinite(out["final"]["train/loss"])
    assert 0 <= out["final"]["val/acc"] <= 1 and 0 <= out["final"]["val/macro_f1"] <= 1
    model, meta = load_model(tmp_path / "src" / "model.pt", kind="source")
    assert meta["arch"] == "small" and meta["input_size"] == 16
    history = json.loads((tmp_path / "src" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1]


def test_pretrain_one_epoch_two_workers(ray_session, store, tmp_path):
    init = save_model(FERModel("small", input_size=16), tmp_path / "init.pt", kind="source")
    cfg = PretrainConfig.from_dict({
        "store": str(store.path), "out": str(tmp_path / "ssl"), "epochs": 1, "batch_size": 8,
        "prototypes": 16, "hidden_dim": 64, "proj_dim": 32, "local_crops": 2, "init": str(init),
        "freeze_prototypes_steps": 1, "trainer": {**TWO, "storage_path": str(tmp_path / "ray")},
    })
    res = pretrain(cfg)
    assert [h["epoch"] for h in res.history] == [1] and np.isfinite(res.final["train/loss"])
    assert res.final["step"] == 2  # 42 train rows / 2 workers = 21 per worker -> 2 batches of 8
    model, meta = load_model(res.model_path, kind="ssl")
    start, _ = load_model(init)
    changed = [not torch.equal(a, b) for a, b in zip(model.encoder.state_dict().values(),
                                                     start.encoder.state_dict().values())]
    assert any(changed)  # the encoder was trained, starting from init


def test_adapt_one_epoch_two_workers_soft_and_mixup(ray_session, store, tmp_path):
    init = save_model(FERModel("small", input_size=16), tmp_path / "init.pt", kind="ssl")
    _, labels, index = store.load_arrays("train")
    n = len(index)
    soft = np.eye(7, dtype=np.float32)[labels] * 0.9 + 0.1 / 7
    selected = np.arange(n) % 3 != 0
    pq.write_table(pa.table({
        "index": pa.array(index), "cluster": pa.array(np.zeros(n, np.int64)), "label": pa.array(labels),
        "confidence": pa.array(np.ones(n, np.float32)), "soft": pa.array(list(soft), pa.list_(pa.float32())),
        "selected": pa.array(selected),
    }), tmp_path / "pseudo.parquet")
    cfg = AdaptConfig.from_dict({
        "store": str(store.path), "init": str(init), "pseudo": str(tmp_path / "pseudo.parquet"),
        "out": str(tmp_path / "adapt"), "epochs": 1, "batch_size": 8, "targets": "soft",
        "mixup_alpha": 0.2, "mixaug": 0.5, "trainer": {**TWO, "storage_path": str(tmp_path / "ray")},
    })
    res = adapt(cfg)
    assert res.final["epoch"] == 1 and {"val/acc", "val/macro_f1", "train/loss"} <= set(res.final)
    _, meta = load_model(res.model_path, kind="adapted")
    assert meta["info"]["selected"] == int(selected.sum()) and meta["info"]["init_kind"] == "ssl"


def test_pretrain_stage_from_the_teacher_keys_its_cache_on_the_teacher(ray_session, store, tmp_path):
    """pretrain_init: source starts SwAV from the teacher's encoder; another teacher = another entry."""
    from distfer.pipeline.cache import StageCache
    from distfer.pipeline.presets import build_experiment
    from distfer.pipeline.stages import Artifact, pretrain_stage

    def teacher(seed: int) -> Artifact:
        torch.manual_seed(seed)
        path = save_model(FERModel("small", input_size=store.image_size), tmp_path / f"t{seed}" / "model.pt",
                          kind="source")
        return Artifact(path, f"teacher{seed}", None)

    exp = build_experiment("tiny", {"pretrain_init": "source", "pretrain": {"epochs": 1, "batch_size": 8},
                                    "trainer": {"num_workers": 0}})
    cache, target = StageCache(tmp_path / "cache"), Artifact(store.path, store.fingerprint, None)
    t0 = teacher(0)
    first = pretrain_stage(cache, exp, target, t0)
    assert not first.hit
    record = cache.record("pretrain", first.fingerprint)
    assert record["config"]["init"] == str(t0.path) and "teacher0" in record["inputs"]
    assert pretrain_stage(cache, exp, target, t0).hit
    assert pretrain_stage(cache, exp, target, teacher(1)).fingerprint != first.fingerprint
    with pytest.raises(Exception, match="pretrain_init 'source' needs the source model"):
        pretrain_stage(cache, exp, target, None)
