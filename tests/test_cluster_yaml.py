"""cluster.yaml passes the installed Ray's own cluster-launcher validator (offline)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def raw():
    return yaml.safe_load((ROOT / "cluster.yaml").read_text())


def _validate(cfg):
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(copy.deepcopy(cfg)))


def test_ray_validator_accepts_cluster_yaml(raw):
    _validate(raw)


def test_layout_cpu_head_gpu_workers_shared_storage(raw):
    types = raw["available_node_types"]
    head = types[raw["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0
    gpu = [t for name, t in types.items() if name != raw["head_node_type"] and t["resources"].get("GPU", 0) >= 1]
    assert gpu, "a GPU worker type is required"
    w = gpu[0]
    assert 0 <= w["min_workers"] <= w["max_workers"] <= raw["max_workers"]
    assert w["resources"]["index_shard"] == 1  # one faiss index shard per GPU node
    for t in types.values():
        assert all(isinstance(v, int) for v in t["resources"].values())
    setup = " ".join(raw["setup_commands"])
    assert "distfer[gpu]" in setup and "/mnt/shared" in setup
    assert "--dashboard-host" in " ".join(raw["head_start_ray_commands"])


def test_validator_rejects_a_broken_config(raw):
    bad = copy.deepcopy(raw)
    del bad["available_node_types"]["gpu_worker"]["node_config"]
    with pytest.raises(Exception):  # noqa: B017 - jsonschema's ValidationError or Ray's ValueError
        _validate(bad)
