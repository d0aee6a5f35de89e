"""Two simulated nodes (ray.cluster_utils.Cluster): the index shards land on different nodes
(custom ``index_shard`` resource, as in cluster.yaml) and the pseudo-labels equal those of the
same 2-shard group on one node.

The cluster runs in a subprocess (this file run as a script), so it cannot clash with the
session's local Ray of ``tests/conftest.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest


def _write_embeddings(folder: Path, n: int = 700, d: int = 8, seed: int = 0) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 7, n)
    centers = rng.normal(size=(7, d)) * 4
    feats = (centers[labels] + rng.normal(size=(n, d))).astype(np.float32)
    logits = (np.eye(7)[labels] * 3 + rng.normal(size=(n, 7))).astype(np.float32)
    folder.mkdir(parents=True)
    for i, rows in enumerate(np.array_split(np.arange(n), 2)):
        pq.write_table(pa.table({
            "index": pa.array(rows.astype(np.int64)),
            "features": pa.FixedSizeListArray.from_arrays(pa.array(feats[rows].ravel()), d),
            "logits": pa.FixedSizeListArray.from_arrays(pa.array(logits[rows].ravel()), 7),
            "label": pa.array(labels[rows].astype(np.int8)),
        }), folder / f"part-{i:05d}.parquet")


def _labels(index, cfg):
    from distfer.pseudo.api import pseudo_label_sharded

    out = pseudo_label_sharded(index, cfg)
    order = np.argsort(out.index)
    return {"index": out.index[order].tolist(), "label": out.result.labels[order].tolist(),
            "cluster": out.result.cluster[order].tolist(), "selected": out.selected[order].tolist()}


def _shard_nodes(name: str) -> list[str]:
    from ray._private import state

    nodes = {}
    for a in state.actors().values():
        if str(a.get("Name", "")).startswith(f"{name}.shard") and a.get("State") == "ALIVE":
            nodes[a["Name"]] = a["Address"]["NodeID"]
    return [nodes[k] for k in sorted(nodes)]


def main(emb: str, result: str) -> None:
    import ray
    from ray.cluster_utils import Cluster

    from distfer.clustering.index import ShardedIndex
    from distfer.config import PseudoLabelConfig

    cfg = PseudoLabelConfig(mode="purity", clusters=20, select="fraction:0.5", niter=10, seed=3)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1, resources={"index_shard": 1})
        cluster.add_node(num_cpus=1, resources={"index_shard": 1})
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, namespace="distfer")
        spread = ShardedIndex.create("mn-spread", emb, 2, detached=False, num_cpus=0.25,
                                     resources={"index_shard": 1})
        got_spread = _labels(spread, cfg)  # shards are up once they have answered
        spread_nodes = _shard_nodes("mn-spread")
        spread.shutdown()
        # the same 2-shard group, both shards on one node (the head)
        single = ShardedIndex.create("mn-single", emb, 2, detached=False, num_cpus=0.25)
        got_single = _labels(single, cfg)
        single_nodes = _shard_nodes("mn-single")
        single.shutdown()
        Path(result).write_text(json.dumps({
            "spread_nodes": spread_nodes, "single_nodes": single_nodes,
            "index_nodes": [n["NodeID"] for n in ray.nodes() if n["Resources"].get("index_shard")],
            "spread": got_spread, "single": got_single,
        }))
    finally:
        ray.shutdown()
        cluster.shutdown()


@pytest.mark.slow
def test_shards_on_two_nodes_match_single_node(tmp_path):
    emb = tmp_path / "emb"
    _write_embeddings(emb)
    out = tmp_path / "result.json"
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run([sys.executable, __file__, str(emb), str(out)], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    r = json.loads(out.read_text())
    assert len(r["spread_nodes"]) == 2 and len(set(r["spread_nodes"])) == 2  # one shard per node
    assert set(r["spread_nodes"]) == set(r["index_nodes"])  # on the index_shard nodes
    assert len(r["single_nodes"]) == 2 and len(set(r["single_nodes"])) == 1
    assert r["spread"] == r["single"]  # placement does not change a single pseudo-label
    assert 0 < sum(r["spread"]["selected"]) < len(r["spread"]["selected"])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
