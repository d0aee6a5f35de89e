"""A run whose worker dies after epoch 1 is restarted (FailureConfig) and resumes at epoch 2."""

from __future__ import annotations

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
