"""Determinism on CPU (issue 6, item 3): the same seed gives identical pseudo-labels and
selected sets, in-process, through the CLI and over a sharded Ray index; preparing a dataset
twice (with another worker count) gives the same FaceStore, fingerprint and pixels.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distfer.cli import main
from distfer.config import PseudoLabelConfig
from distfer.pseudo.api import pseudo_label, read_table

N, D = 700, 12


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Features with 7 overlapping blobs, noisy teacher logits, true labels; also as .npy and
    as three Parquet embedding shards."""
    d = tmp_path_factory.mktemp("det")
    rng = np.random.default_rng(5)
    y = rng.integers(0, 7, N)
    x = (rng.normal(size=(N, D)) + 1.5 * np.eye(7, D)[y]).astype(np.float32)
    logits = (rng.normal(size=(N, 7)) + 1.2 * np.eye(7)[y]).astype(np.float32)
    np.save(d / "f.npy", x)
    np.save(d / "l.npy", logits)
    emb = d / "emb"
    emb.mkdir()
    for i, rows in enumerate(np.array_split(np.arange(N), 3)):
        pq.write_table(pa.table({
            "index": pa.array(rows.astype(np.int64)),
            "features": pa.FixedSizeListArray.from_arrays(pa.array(x[rows].ravel()), D),
            "logits": pa.FixedSizeListArray.from_arrays(pa.array(logits[rows].ravel()), 7),
            "label": pa.array(y[rows].astype(np.int8)),
        }), emb / f"part-{i:05d}.parquet")
    return {"dir": d, "x": x, "logits": logits, "y": y, "emb": emb}


def _same(a, b) -> None:
    np.testing.assert_array_equal(a.index, b.index)
    np.testing.assert_array_equal(a.result.cluster, b.result.cluster)
    np.testing.assert_array_equal(a.result.labels, b.result.labels)
    np.testing.assert_array_equal(a.result.confidence, b.result.confidence)
    np.testing.assert_array_equal(a.result.soft, b.result.soft)
    np.testing.assert_array_equal(a.selected, b.selected)


CONFIGS = {
    "purity-fraction": dict(mode="purity", clusters=40, select="fraction:0.3"),
    "soft-purity-threshold-iter": dict(mode="soft-purity", clusters=25, select="threshold:0.3", iter_clusters=2, min_per_class=2),
    "purity-kmeans++-spherical": dict(mode="purity", clusters=30, init="kmeans++", spherical=True,
                                      select="fraction:0.5", min_per_class=3),
    "centroid": dict(mode="centroid", centroid_cycles=2, select="fraction:0.4"),
    "confidence": dict(mode="confidence", select="fraction:0.4"),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_same_seed_same_pseudo_labels_in_process(data, name):
    cfg = PseudoLabelConfig(niter=15, seed=3, **CONFIGS[name])
    a = pseudo_label(data["x"], data["logits"], cfg)
    b = pseudo_label(data["x"].copy(), data["logits"].copy(), cfg)
    _same(a, b)
    assert a.selected.any() and not a.selected.all()


def test_seed_changes_the_clustering(data):
    """The seed is really used: another seed gives another partition (so equality above means something)."""
    a = pseudo_label(data["x"], data["logits"], PseudoLabelConfig(clusters=40, niter=15, seed=3))
    b = pseudo_label(data["x"], data["logits"], PseudoLabelConfig(clusters=40, niter=15, seed=4))
    assert not np.array_equal(a.result.cluster, b.result.cluster)


def test_same_seed_same_table_through_the_cli(data):
    d = data["dir"]
    outs = []
    for i in range(2):
        out = d / f"cli-{i}.parquet"
        assert main(["pseudo-label", "--features", str(data["emb"]), "--clusters", "35", "--niter", "10",
                     "--seed", "9", "--select", "fraction:0.25", "--out", str(out)]) == 0
        outs.append(read_table(out))
    for k in ("index", "cluster", "label", "confidence", "soft", "selected"):
        np.testing.assert_array_equal(outs[0][k], outs[1][k], err_msg=k)


@pytest.mark.slow
def test_same_seed_same_pseudo_labels_over_sharded_index(ray_session, data):
    """Two independent actor groups (S=3) with the same seed agree exactly, iterative rounds included."""
    from distfer.clustering.index import ShardedIndex
    from distfer.pseudo.api import pseudo_label_sharded

    cfg = PseudoLabelConfig(clusters=30, niter=12, seed=21, select="fraction:0.3", iter_clusters=2)
    groups = [ShardedIndex.create(f"det-{i}", data["emb"], 3, detached=False, num_cpus=0.2) for i in range(2)]
    try:
        a, b = (pseudo_label_sharded(g, cfg) for g in groups)
    finally:
        for g in groups:
            g.shutdown()
    _same(a, b)
    np.testing.assert_array_equal(np.sort(a.index), np.arange(N))


def test_prepare_twice_gives_the_same_store(tmp_path):
    from PIL import Image

    from distfer.data.store import FaceStore

    rng = np.random.default_rng(0)
    for split in ("Train", "Val"):
        for name in ("Surprise", "Fear", "Disgust", "Happy", "Sad", "Angry", "Neutral"):
            (tmp_path / "raw" / split / name).mkdir(parents=True)
            for i in range(12):
                Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(
                    tmp_path / "raw" / split / name / f"{i:03d}.png")
    stores = []
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        assert main(["prepare", "--format", "sfew", "--root", str(tmp_path / "raw"), "--out", str(out),
                     "--size", "24", "--workers", str(workers)]) == 0
        stores.append(FaceStore.open(out / "sfew"))
    assert stores[0].fingerprint == stores[1].fingerprint
    for split in ("train", "val"):
        for u, v in zip(stores[0].load_arrays(split), stores[1].load_arrays(split)):
            np.testing.assert_array_equal(u, v)


def test_every_run_is_tagged_with_its_seeds_and_input_fingerprints():
    """The experiment tags the MLflow parent and every trial run (through TrialContext.tags)
    with the seeds and the fingerprints of the stores, teacher, encoder and embeddings."""
    from types import SimpleNamespace

    from distfer.pipeline.experiment import _provenance
    from distfer.pipeline.presets import build_experiment

    exp = build_experiment("tiny", {"seed": 7, "pseudo": {"seed": 3}, "adapt": {"seed": 5}})
    arts = [SimpleNamespace(fingerprint=f"fp{i}") for i in range(5)]
    tags = _provenance(exp, *arts)
    assert tags["distfer.seed"] == "7" and tags["distfer.seed.pseudo"] == "3" and tags["distfer.seed.adapt"] == "5"
    for i, name in enumerate(("source_store", "target_store", "teacher", "encoder", "embeddings")):
        assert tags[f"distfer.input.{name}"] == f"fp{i}"
    tags = _provenance(build_experiment("tiny", {}), None, *arts[1:])  # a given source checkpoint: no source store
    assert "distfer.input.source_store" not in tags and tags["distfer.seed.pseudo"] == "0"
    assert all(isinstance(v, str) for v in tags.values())
