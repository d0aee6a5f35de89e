"""A run whose worker dies after epoch 1 is restarted (FailureConfig) and resumes at epoch 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from train_helpers import make_store

from distfer.config import TrainSourceConfig
from distfer.train.api import train_source

pytestmark = pytest.mark.slow


def test_killed_after_epoch_1_resumes_at_epoch_2(ray_session, tmp_path):
    store = make_store(tmp_path / "data")
    marker = tmp_path / "crashed"
    cfg = TrainSourceConfig.from_dict({
        "store": str(store.path), "out": str(tmp_path / "out"), "epochs": 2, "batch_size": 8,
        "trainer": {"num_workers": 1, "cpus_per_worker": 1.0, "max_failures": 1,
                    "storage_path": str(tmp_path / "ray")},
    })
    res = train_source(cfg, run_name="resume-test",
                       _hooks={"inject_failure_after_epoch": 1, "failure_marker": str(marker)})
    assert marker.is_file()  # the first attempt really crashed after epoch 1
    assert res.start_epoch == 1  # the restarted attempt began at epoch 2 (0-based 1)
    assert [h["epoch"] for h in res.history] == [1, 2]


def _local_cfg(tmp_path, store, epochs: int, **trainer) -> TrainSourceConfig:
    return TrainSourceConfig.from_dict({
        "store": str(store.path), "out": str(tmp_path / "out"), "epochs": epochs, "batch_size": 8,
        "trainer": {"num_workers": 0, "storage_path": str(tmp_path / "ray"), **trainer},
    })


class _Seen:
    """A Ray Train callback recording what reaches ``after_report``."""

    def __init__(self) -> None:
        self.epochs: list[int] = []

    def after_report(self, run_context, metrics, checkpoint) -> None:
        assert checkpoint is not None and (Path(checkpoint.path) / "state.pt").is_file()
        self.epochs.append(metrics[0]["epoch"])


def test_local_mode_checkpoints_resumes_keeps_and_calls_back(ray_session, tmp_path):
    """num_workers: 0 (in-process): the same checkpoint/resume/callback contract as workers."""
    store = make_store(tmp_path / "data")
    seen = _Seen()
    res = train_source(_local_cfg(tmp_path, store, 3, num_to_keep=2), run_name="local", callbacks=[seen])
    assert seen.epochs == [1, 2, 3] and res.start_epoch == 0
    kept = sorted(p.name for p in (tmp_path / "ray" / "local").glob("epoch_*"))
    assert kept == ["epoch_0002", "epoch_0003"]  # num_to_keep
    # more epochs under the same run name: resumes after epoch 3
    res = train_source(_local_cfg(tmp_path, store, 4), run_name="local")
    assert res.start_epoch == 3 and [h["epoch"] for h in res.history] == [1, 2, 3, 4]
    assert res.model_path.is_file()


def test_local_mode_retries_a_crash_and_resumes(ray_session, tmp_path):
    store = make_store(tmp_path / "data")
    marker = tmp_path / "crashed"
    res = train_source(_local_cfg(tmp_path, store, 2, max_failures=1), run_name="local-crash",
                       _hooks={"inject_failure_after_epoch": 1, "failure_marker": str(marker)})
    assert marker.is_file() and res.start_epoch == 1 and [h["epoch"] for h in res.history] == [1, 2]
    with pytest.raises(RuntimeError, match="injected failure"):  # no retries left: the error surfaces
        train_source(_local_cfg(tmp_path / "again", store, 2, max_failures=0), run_name="local-crash-2",
                     _hooks={"inject_failure_after_epoch": 1, "failure_marker": str(tmp_path / "m2")})
