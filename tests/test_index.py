"""ShardedIndex on a local Ray: exact for S=1, close for S=2/3, cached, restartable."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.datasets import make_blobs

from distfer.clustering import kmeans as km
from distfer.config import PseudoLabelConfig
from distfer.errors import DataError
from distfer.pseudo.api import pseudo_label, pseudo_label_sharded
from distfer.pseudo.labels import class_histogram

pytestmark = pytest.mark.slow  # starts ~10 actor processes (about 30-40 s on 2 cores)

K, NITER, SEED = 24, 8, 3


def write_shards(folder, x, logits, labels, files):
    folder.mkdir(parents=True, exist_ok=True)
    ids = np.arange(len(x), dtype=np.int64) * 7 + 11  # stable ids that are not positions
    for i, rows in enumerate(np.array_split(np.arange(len(x)), files)):
        pq.write_table(pa.table({
            "index": pa.array(ids[rows]),
            "features": pa.FixedSizeListArray.from_arrays(pa.array(x[rows].ravel()), x.shape[1]),
            "logits": pa.FixedSizeListArray.from_arrays(pa.array(logits[rows].ravel()), 7),
            "label": pa.array(labels[rows].astype(np.int8)),
        }), folder / f"part-{i:05d}.parquet")
    return ids


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    x, y = make_blobs(n_samples=2400, centers=30, n_features=8, cluster_std=2.0, random_state=1)
    x = x.astype(np.float32)
    rng = np.random.default_rng(0)
    logits = (rng.normal(size=(len(x), 7)) + 3 * np.eye(7)[y % 7]).astype(np.float32)
    labels = np.where(rng.random(len(x)) < 0.1, -1, y % 7)
    folder = tmp_path_factory.mktemp("emb")
    ids = write_shards(folder, x, logits, labels, files=6)
    ref = km.kmeans(km.prepare_features(x), K, niter=NITER, seed=SEED)
    return {"x": x, "logits": logits, "labels": labels, "ids": ids, "dir": folder, "ref": ref}


@pytest.fixture(scope="module")
def groups(ray_session, data):
    from distfer.clustering.index import ShardedIndex

    made = {s: ShardedIndex.create(f"test-index-{s}", data["dir"], s, detached=False, num_cpus=0.25,
                                   max_restarts=2) for s in (1, 2, 3)}
    yield made
    for g in made.values():
        g.shutdown()


def test_single_shard_is_exact(groups, data):
    res = groups[1].kmeans(K, niter=NITER, seed=SEED)
    np.testing.assert_array_equal(res.centroids, data["ref"].centroids)
    assert res.inertia == data["ref"].inertia
    ids, cluster = groups[1].assignments(K, niter=NITER, seed=SEED)
    np.testing.assert_array_equal(ids, data["ids"])
    np.testing.assert_array_equal(cluster, data["ref"].assignments)


@pytest.mark.parametrize("s", [2, 3])
def test_multi_shard_close_to_single_process(groups, data, s):
    res = groups[s].kmeans(K, niter=NITER, seed=SEED)
    assert res.inertia == pytest.approx(data["ref"].inertia, rel=5e-3)
    np.testing.assert_allclose(res.centroids, data["ref"].centroids, atol=1e-4)
    hist = groups[s].purity(K, niter=NITER, seed=SEED)
    ids, cluster = groups[s].assignments(K, niter=NITER, seed=SEED)
    pos = (ids - 11) // 7
    preds = data["logits"].argmax(1)[pos]
    np.testing.assert_array_equal(hist, class_histogram(cluster, preds, K))
    assert len(groups[s].info()) == s and sum(i["rows"] for i in groups[s].info()) == len(data["x"])


def test_pseudo_labels_from_index_equal_in_process(groups, data):
    cfg = PseudoLabelConfig(clusters=K, niter=NITER, seed=SEED, select="fraction:0.3", iter_clusters=2)
    sharded = pseudo_label_sharded(groups[1], cfg)
    local = pseudo_label(data["x"], data["logits"], cfg, index=data["ids"], true_labels=data["labels"])
    np.testing.assert_array_equal(sharded.index, local.index)
    np.testing.assert_array_equal(sharded.result.labels, local.result.labels)
    np.testing.assert_array_equal(sharded.result.cluster, local.result.cluster)
    np.testing.assert_array_equal(sharded.result.confidence, local.result.confidence)
    np.testing.assert_array_equal(sharded.selected, local.selected)
    assert sharded.stats.accuracy_selected == local.stats.accuracy_selected is not None


def test_cache_connect_and_restart(ray_session, groups, data):
    import ray

    from distfer.clustering.index import ShardedIndex

    g = ShardedIndex.connect("test-index-2")
    first = g.kmeans(K, niter=NITER, seed=SEED + 1, spherical=True)
    cached = ray.get(g._coord.cached.remote())
    again = g.kmeans(K, niter=NITER, seed=SEED + 1, spherical=True)
    assert ray.get(g._coord.cached.remote()) == cached
    np.testing.assert_array_equal(first.centroids, again.centroids)
    # kill a shard: it restarts, re-reads its Parquet files, and a new request gives the same answer
    ray.kill(g.shards()[0], no_restart=False)
    fresh = g.kmeans(K, niter=NITER, seed=SEED + 2)
    ref = groups[3].kmeans(K, niter=NITER, seed=SEED + 2)
    assert fresh.inertia == pytest.approx(ref.inertia, rel=5e-3)
    ids, _ = g.assignments(K, niter=NITER, seed=SEED + 2)
    np.testing.assert_array_equal(np.sort(ids), np.sort(data["ids"]))


def test_bad_requests(ray_session, groups, data, tmp_path):
    from distfer.clustering.index import ShardedIndex

    with pytest.raises(DataError, match="6 embedding file"):
        ShardedIndex.create("test-index-bad", data["dir"], 7, detached=False)
    with pytest.raises(DataError, match="already exists over other files"):
        ShardedIndex.create("test-index-2", sorted(data["dir"].glob("*.parquet"))[:2], 2, detached=False)
    with pytest.raises(DataError, match="no index group"):
        ShardedIndex.connect("test-index-missing")
    with pytest.raises(DataError, match="cannot make 5000 clusters"):
        groups[1].kmeans(5000)


def test_coordinator_cache_is_bounded(ray_session, data):
    import ray

    from distfer.clustering.index import ShardedIndex

    g = ShardedIndex.create("test-index-lru", data["dir"], 1, detached=False, num_cpus=0.25, max_cached=2)
    try:
        first = g.kmeans(K, niter=2, seed=1)
        for seed in (2, 3, 4):
            g.kmeans(K, niter=2, seed=seed)
        assert ray.get(g._coord.cached.remote()) == 2
        # the evicted result is recomputed, identically (seeded)
        np.testing.assert_array_equal(g.kmeans(K, niter=2, seed=1).centroids, first.centroids)
    finally:
        g.shutdown()
