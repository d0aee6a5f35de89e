"""The embedded synthetic benchmark: determinism, layouts, priors, idempotency, reader round trip."""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

from distfer.classes import ANGER, DISGUST, FEAR, HAPPINESS, NEUTRAL, NUM_CLASSES, SADNESS, SURPRISE
from distfer.cli import main
from distfer.config import SynthConfig
from distfer.data.synth import (
    ACTION_UNITS,
    LAB,
    PROTOTYPES,
    SFEW_FOLDERS,
    WILD,
    generate,
    split_params,
)
from distfer.data.synth.params import quota
from distfer.data.synth.render import render_batch
from distfer.errors import ConfigError, DataError

# 7 images per class at most: quick to render, still every class in every split
COUNTS = {"source_train": 42, "source_test": 21, "target_train": 42, "target_val": 28}


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*")) if p.is_file() and p.name != "synth.json"
    }


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "bench"
    generate(SynthConfig(out=str(out), preset="tiny", seed=5, workers=2, **COUNTS))
    return out


def test_same_seed_same_bytes_regardless_of_workers(bench, tmp_path):
    again = generate(SynthConfig(out=str(tmp_path / "b"), preset="tiny", seed=5, workers=1, **COUNTS))
    for layout in ("rafdb", "sfew"):
        assert _digest(bench / layout) == _digest(again / layout)


def test_different_seed_differs(bench, tmp_path):
    other = generate(SynthConfig(out=str(tmp_path / "c"), preset="tiny", seed=6, workers=1, **COUNTS))
    a, b = _digest(bench / "rafdb"), _digest(other / "rafdb")
    images = [k for k in a if k.endswith(".jpg")]
    assert images and all(a[k] != b.get(k) for k in images)


def test_rafdb_layout_and_counts(bench):
    root = bench / "rafdb"
    lines = (root / "EmoLabel" / "list_patition_label.txt").read_text().splitlines()
    names = [ln.split()[0] for ln in lines]
    ids = [int(ln.split()[1]) for ln in lines]
    assert sum(n.startswith("train_") for n in names) == COUNTS["source_train"]
    assert sum(n.startswith("test_") for n in names) == COUNTS["source_test"]
    assert names[0] == "train_00001.jpg" and set(ids) == set(range(1, 8))
    for name in names:
        assert (root / "Image" / "aligned" / name.replace(".jpg", "_aligned.jpg")).is_file()
    assert len(list((root / "Image" / "aligned").iterdir())) == len(names)
    from PIL import Image

    with Image.open(root / "Image" / "aligned" / "train_00001_aligned.jpg") as im:
        assert im.size == (64, 64) and im.mode == "RGB" and im.format == "JPEG"


def test_sfew_layout_counts_and_priors(bench):
    root = bench / "sfew"
    for top, key in (("Train", "target_train"), ("Val", "target_val")):
        folders = sorted(p.name for p in (root / top / f"{top}_Aligned_Faces").iterdir())
        assert folders == sorted(SFEW_FOLDERS)
        per_class = [len(list((root / top / f"{top}_Aligned_Faces" / f).glob("*.png"))) for f in SFEW_FOLDERS]
        assert per_class == quota(COUNTS[key], WILD.priors).tolist()


def test_labels_follow_priors_exactly():
    for spec in (LAB, WILD):
        labels, params = split_params(0, spec, "train", 3000)
        counts = np.bincount(labels, minlength=NUM_CLASSES)
        assert counts.sum() == 3000
        np.testing.assert_allclose(counts / 3000, np.asarray(spec.priors) / sum(spec.priors), atol=1 / 3000)
        assert all(len(v) == 3000 for v in params.values())
    # the target has more Happy/Neutral and fewer Fear/Disgust than the source
    for c in (HAPPINESS, NEUTRAL):
        assert WILD.priors[c] > LAB.priors[c]
    for c in (FEAR, DISGUST):
        assert WILD.priors[c] < LAB.priors[c]


def test_quota_largest_remainder():
    assert quota(10, [1] * 7).tolist() == [2, 2, 2, 1, 1, 1, 1]
    assert quota(0, [1] * 7).sum() == 0
    q = quota(1001, WILD.priors)
    assert q.sum() == 1001 and np.all(np.abs(q - 1001 * np.asarray(WILD.priors)) < 1)


def test_confusable_pairs_share_action_units():
    au = {n: i for i, n in enumerate(ACTION_UNITS)}
    shared = PROTOTYPES[SURPRISE] * PROTOTYPES[FEAR]
    assert shared[au["inner_brow_raise"]] > 0 and shared[au["jaw_drop"]] > 0
    assert (PROTOTYPES[ANGER] * PROTOTYPES[DISGUST])[au["brow_lowerer"]] > 0
    dist = np.linalg.norm(PROTOTYPES[:, None] - PROTOTYPES[None], axis=-1)
    # each confusable pair is closer than the pair's members are to the average other class
    for a, b in ((SURPRISE, FEAR), (ANGER, DISGUST), (SADNESS, NEUTRAL)):
        others = [c for c in range(NUM_CLASSES) if c not in (a, b)]
        assert dist[a, b] < dist[a, others].mean() and dist[a, b] < dist[b, others].mean()


def test_target_expressions_are_spontaneous_versions_of_the_posed_ones():
    """The label-conditional shift: wild faces follow SPONTANEOUS, lab faces PROTOTYPES."""
    from distfer.data.synth.params import SPONTANEOUS, sample_expressions

    assert (LAB.style, WILD.style) == (0.0, 1.0)
    labels = np.repeat(np.arange(NUM_CLASSES), 400)
    rng = np.random.default_rng(0)
    for spec, own, other in ((LAB, PROTOTYPES, SPONTANEOUS), (WILD, SPONTANEOUS, PROTOTYPES)):
        au = sample_expressions(rng, labels, spec)
        means = np.stack([au[labels == c].mean(0) for c in range(NUM_CLASSES)])
        scale = np.mean(spec.intensity)  # E[intensity x per-AU gain] ~ mean intensity
        for c in range(NUM_CLASSES - 1):  # neutral is all zeros in both
            assert np.linalg.norm(means[c] - scale * own[c]) < np.linalg.norm(means[c] - scale * other[c])
    # the spontaneous versions keep the same active units (other proportions), and the
    # confusable pairs still share units
    assert np.array_equal(SPONTANEOUS[NEUTRAL], np.zeros(len(ACTION_UNITS)))
    au = {n: i for i, n in enumerate(ACTION_UNITS)}
    assert (SPONTANEOUS[SURPRISE] * SPONTANEOUS[FEAR])[au["inner_brow_raise"]] > 0
    assert (SPONTANEOUS[ANGER] * SPONTANEOUS[DISGUST])[au["brow_lowerer"]] > 0


def test_sparse_compositing_is_bit_identical_to_the_full_blend():
    """paint() only touches the images/box where alpha > 0; the result must not change."""
    from distfer.data.synth import render

    def full_blend(self, alpha, color):
        col = np.asarray(color, dtype=np.float32).reshape(-1, 1, 1, 3)
        a = alpha[..., None]
        self.img *= 1 - a
        self.img += a * col

    _, params = split_params(3, WILD, "train", 40)
    fast = render_batch(params, 48)
    try:
        sparse, render._Canvas.paint = render._Canvas.paint, full_blend
        slow = render_batch(params, 48)
    finally:
        render._Canvas.paint = sparse
    assert np.array_equal(fast, slow)


def test_target_is_degraded_relative_to_source():
    """Same faces rendered in both domains: the wild ones lose detail (blur, low resolution)."""
    _, lab = split_params(1, LAB, "train", 64)
    _, wild = split_params(1, WILD, "train", 64)

    def sharpness(imgs: np.ndarray) -> float:
        g = imgs.astype(np.float32).mean(-1)
        return float(np.abs(np.diff(g, axis=1)).mean() + np.abs(np.diff(g, axis=2)).mean())

    a, b = render_batch(lab, 64), render_batch(wild, 64)
    assert a.shape == b.shape == (64, 64, 64, 3) and a.dtype == np.uint8
    # clutter adds edges, blur removes them: compare the face centre only
    assert sharpness(a[:, 20:44, 20:44]) > sharpness(b[:, 20:44, 20:44])


def test_rerun_is_noop_and_conflicts_are_errors(bench):
    before = {p: os.stat(p).st_mtime_ns for p in (bench / "rafdb").rglob("*.jpg")}
    generate(SynthConfig(out=str(bench), preset="tiny", seed=5, **COUNTS))
    assert before == {p: os.stat(p).st_mtime_ns for p in (bench / "rafdb").rglob("*.jpg")}
    with pytest.raises(DataError, match="--overwrite"):
        generate(SynthConfig(out=str(bench), preset="tiny", seed=9, **COUNTS))
    assert before == {p: os.stat(p).st_mtime_ns for p in (bench / "rafdb").rglob("*.jpg")}


def test_overwrite_replaces_and_partial_output_is_rebuilt(tmp_path):
    small = {k: 7 for k in COUNTS}
    out = tmp_path / "o"
    generate(SynthConfig(out=str(out), preset="tiny", seed=1, workers=1, **small))
    first = _digest(out / "sfew")
    generate(SynthConfig(out=str(out), preset="tiny", seed=2, workers=1, overwrite=True, **small))
    assert _digest(out / "sfew") != first
    (out / "sfew" / "_COMPLETE").unlink()  # as if killed: never trusted, rebuilt with --overwrite
    with pytest.raises(DataError, match="incomplete"):
        generate(SynthConfig(out=str(out), preset="tiny", seed=2, workers=1, **small))
    assert not list(tmp_path.glob("o/.*tmp*"))


def test_config_validation():
    with pytest.raises(ConfigError, match="preset"):
        SynthConfig.from_dict({"out": "x", "preset": "huge"})
    with pytest.raises(ConfigError, match="image_size"):
        SynthConfig(out="x", image_size=8)
    with pytest.raises(ConfigError, match="target_val"):
        SynthConfig(out="x", target_val=3)
    with pytest.raises(ConfigError, match="unknown config key 'sed'"):
        SynthConfig.from_dict({"out": "x", "sed": 1})
    assert SynthConfig(out="a", workers=1).fingerprint() == SynthConfig(out="b", workers=4).fingerprint()
    assert SynthConfig(out="a").fingerprint() != SynthConfig(out="a", seed=1).fingerprint()
    assert SynthConfig(out="a").counts()["source_train"] >= 4000


def test_cli(tmp_path, capsys):
    out = tmp_path / "cli"
    flags = ["--source-train", "7", "--source-test", "7", "--target-train", "7", "--target-val", "7"]
    assert main(["synth", "--out", str(out), "--preset", "tiny", "--workers", "1", *flags]) == 0
    assert '"count": 7' in capsys.readouterr().out
    (tmp_path / "file").write_text("x")
    assert main(["synth", "--out", str(tmp_path / "file"), "--preset", "tiny"]) == 2
    assert "is a file" in capsys.readouterr().err


_READERS = importlib.util.find_spec("distfer.data.formats.rafdb") and importlib.util.find_spec(
    "distfer.data.formats.sfew"
)


@pytest.mark.skipif(not _READERS, reason="distfer.data.formats readers (rafdb, sfew) not importable")
def test_round_trip_through_readers_and_prepare(bench, tmp_path):
    from distfer.config import PrepareConfig
    from distfer.data.formats import read_dataset
    from distfer.data.store import prepare

    raf = read_dataset("rafdb", bench / "rafdb")
    splits = [r.split for r in raf.records]
    assert splits.count("train") == COUNTS["source_train"]
    assert splits.count("val") == COUNTS["source_test"]  # the reader stores RAF-DB test as val
    store = prepare(PrepareConfig(format="sfew", root=str(bench / "sfew"), out=str(tmp_path), size=32, workers=1), quiet=True)
    assert store.num_rows("train") == COUNTS["target_train"] and store.num_rows("val") == COUNTS["target_val"]
    _, labels, _ = store.load_arrays("val")
    assert np.bincount(labels, minlength=NUM_CLASSES).tolist() == quota(COUNTS["target_val"], WILD.priors).tolist()
    expected, _ = split_params(5, WILD, "val", COUNTS["target_val"])
    assert sorted(labels.tolist()) == sorted(expected.tolist())
