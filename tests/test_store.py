"""FaceStore + prepare: round trip of every format, idempotence, atomicity, bad input, views."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from test_formats import (
    AFE_IDS,
    AFFECTNET_IDS,
    FER_IDS,
    IMAGEFOLDER_MAP,
    RAFDB_IDS,
    SFEW_FOLDERS,
    dataset_id,
    make_afe,
    make_affectnet,
    make_expw,
    make_fer2013,
    make_imagefolder,
    make_rafdb,
    make_sfew,
)

import distfer.data.prepare as prep
from distfer.classes import CLASSES
from distfer.cli import main
from distfer.config import PrepareConfig
from distfer.data.store import FaceStore, prepare
from distfer.errors import ConfigError, DataError
from distfer.fsutil import COMPLETE_MARKER

SFEW_IDS = list(SFEW_FOLDERS.values())  # fixture folder k holds shade(k)
# format -> (builder, dataset id -> canonical name, extra config)
CASES = {
    "sfew": (make_sfew, SFEW_IDS, {}),
    "rafdb": (make_rafdb, {k: v for k, v in RAFDB_IDS.items()}, {}),
    "fer2013": (make_fer2013, FER_IDS, {}),
    "affectnet": (make_affectnet, AFFECTNET_IDS, {}),
    "expw": (make_expw, FER_IDS, {"val_fraction": 0.5}),
    "afe": (make_afe, AFE_IDS, {}),
    "imagefolder": (make_imagefolder, ["Anger", "Happiness"], {"class_map": IMAGEFOLDER_MAP}),
}


def _cfg(fmt, tmp_path, **kw):
    return PrepareConfig.from_dict({"format": fmt, "root": str(tmp_path / "data"), "out": str(tmp_path / "stores"),
                                    "size": 12, "workers": 1, **kw})


@pytest.mark.parametrize("fmt", list(CASES))
def test_round_trip_every_format(tmp_path, fmt):
    build, ids, extra = CASES[fmt]
    build(tmp_path / "data")
    store = prepare(_cfg(fmt, tmp_path, **extra), quiet=True)
    assert store.path == tmp_path / "stores" / fmt and store.image_size == 12 and store.format == fmt
    seen = set()
    for split in store.splits:
        images, labels, index = store.load_arrays(split)
        assert images.shape == (store.num_rows(split), 12, 12, 3) and images.dtype == np.uint8
        assert labels.dtype == np.int64 and index.dtype == np.int64
        for img, lab in zip(images, labels):
            assert int(img.max()) - int(img.min()) <= 6  # cropped to the face box: uniform
            if lab >= 0:
                assert CLASSES[lab] == ids[dataset_id(img)]
        counts = store.counts(split)
        assert sum(counts.values()) == len(labels)
        assert seen.isdisjoint(index.tolist())
        seen.update(index.tolist())
    meta = json.loads((store.path / "meta.json").read_text())
    assert meta["classes"] == list(CLASSES) and meta["fingerprint"] == store.fingerprint


def test_grey_and_rgb_images_become_three_equal_channels(tmp_path):
    make_sfew(tmp_path / "data")
    images, _, _ = prepare(_cfg("sfew", tmp_path), quiet=True).load_arrays("train")
    assert images.shape[-1] == 3
    assert np.abs(images[..., 0].astype(int) - images[..., 2]).max() <= 1


def test_rerun_is_a_noop_and_input_change_rebuilds(tmp_path, capsys):
    make_rafdb(tmp_path / "data")
    cfg = _cfg("rafdb", tmp_path)
    first = prepare(cfg)
    created = first.meta["created"]
    shard = first.shard_files("train")[0]
    inode = shard.stat().st_ino
    capsys.readouterr()
    again = prepare(cfg.replace(workers=2))  # worker count is not part of the fingerprint
    assert "already prepared" in capsys.readouterr().err
    assert again.meta["created"] == created and shard.stat().st_ino == inode
    img = tmp_path / "data" / "Image" / "aligned" / "train_00001_aligned.jpg"
    Image.new("RGB", (16, 16), (10, 10, 10)).save(img)
    rebuilt = prepare(cfg)
    assert "rebuilding" in capsys.readouterr().err and rebuilt.fingerprint != first.fingerprint
    assert prepare(cfg.replace(size=16), quiet=True).fingerprint != rebuilt.fingerprint


def test_failure_mid_write_leaves_no_complete_store(tmp_path, monkeypatch):
    make_fer2013(tmp_path / "data")
    cfg = _cfg("fer2013", tmp_path)
    dest = tmp_path / "stores" / "fer2013"
    calls = []
    real = prep.pq.write_table

    def failing_write(table, where, **kw):
        calls.append(where)
        if len(calls) == 2:  # the first shard is on disk, then the "machine dies"
            raise KeyboardInterrupt
        real(table, where, **kw)

    monkeypatch.setattr(prep.pq, "write_table", failing_write)
    with pytest.raises(KeyboardInterrupt):
        prepare(cfg, quiet=True)
    assert len(calls) == 2 and not dest.exists()
    assert [p.name for p in (tmp_path / "stores").iterdir()] == []  # temp dir cleaned up too
    monkeypatch.setattr(prep.pq, "write_table", real)
    good = prepare(cfg, quiet=True)
    monkeypatch.setattr(prep.pq, "write_table", failing_write)
    calls.clear()
    with pytest.raises(KeyboardInterrupt):
        prepare(cfg.replace(size=16), quiet=True)  # a failed rebuild keeps the old store
    assert FaceStore.open(dest).fingerprint == good.fingerprint


def test_open_refuses_unfinished_or_foreign_folders(tmp_path):
    make_afe(tmp_path / "data")
    store = prepare(_cfg("afe", tmp_path), quiet=True)
    (store.path / COMPLETE_MARKER).unlink()
    with pytest.raises(DataError, match="not a complete FaceStore.*run `distfer prepare` again"):
        FaceStore.open(store.path)
    with pytest.raises(DataError, match="exists and is not a FaceStore"):
        prepare(_cfg("afe", tmp_path), quiet=True)
    with pytest.raises(DataError, match="does not exist"):
        FaceStore.open(tmp_path / "nowhere")
    (store.path / COMPLETE_MARKER).write_text("ok\n")
    with pytest.raises(DataError, match="has no split 'test'; it has train, val"):
        store.load_arrays("test")


def _corrupt_sfew(tmp_path):
    make_sfew(tmp_path / "data")
    cls = tmp_path / "data" / "Train" / "Train_Aligned_Faces" / "angry"
    (cls / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(cls / "t.jpg", quality=95)
    data = (cls / "t.jpg").read_bytes()
    (cls / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (cls / "t.jpg").unlink()
    return cls


def test_corrupt_and_truncated_images(tmp_path, capsys):
    cls = _corrupt_sfew(tmp_path)
    with pytest.raises(DataError, match=r"corrupt or unreadable image .*broken.png.*--skip-bad"):
        prepare(_cfg("sfew", tmp_path), quiet=True)
    (cls / "broken.png").unlink()
    with pytest.raises(DataError, match=r"truncated.jpg \(OSError: image file is truncated"):
        prepare(_cfg("sfew", tmp_path), quiet=True)
    _corrupt_sfew(tmp_path / "again")
    cfg = PrepareConfig.from_dict({**_cfg("sfew", tmp_path / "again").to_dict(), "skip_bad": True})
    store = prepare(cfg)
    assert "skipped 2 bad image(s)" in capsys.readouterr().err
    assert store.meta["skipped_bad"] == 2 and store.num_rows("train") == 14


def test_missing_image_in_label_file(tmp_path):
    make_rafdb(tmp_path / "data")
    (tmp_path / "data" / "Image" / "aligned" / "test_00010_aligned.jpg").unlink()
    with pytest.raises(DataError, match=r"list_patition_label.txt:10: image .*test_00010_aligned.jpg does not exist"):
        prepare(_cfg("rafdb", tmp_path), quiet=True)
    store = prepare(_cfg("rafdb", tmp_path, skip_bad=True), quiet=True)
    assert store.num_rows("val") == 6 and store.meta["skipped_bad"] == 1


def test_non_image_files_give_one_warning_line(tmp_path, capsys):
    make_sfew(tmp_path / "data")
    (tmp_path / "data" / "Val" / "Val_Aligned_Faces" / "Sad" / "x.csv").write_text("a,b")
    prepare(_cfg("sfew", tmp_path))
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "ignored 2 non-image file(s)" in warnings[0]


def test_process_pool_gives_the_same_store(tmp_path, monkeypatch):
    make_expw(tmp_path / "data", images=40)
    one = prepare(_cfg("expw", tmp_path, name="one"), quiet=True)
    monkeypatch.setattr(prep, "POOL_STARTUP_S", 0.0)  # force the pool even for tiny data
    monkeypatch.setattr(prep, "_chunk_size", lambda n, workers: 16)
    pools = []
    real_pool = prep.ProcessPoolExecutor
    monkeypatch.setattr(prep, "ProcessPoolExecutor", lambda *a, **k: pools.append(a) or real_pool(*a, **k))
    two = prepare(_cfg("expw", tmp_path, name="two", workers=2), quiet=True)
    assert pools == [(2,)]  # the pool really ran
    made = []
    monkeypatch.setattr(prep, "ProcessPoolExecutor", lambda *a, **k: made.append(real_pool(*a, **k)) or made[-1])
    (tmp_path / "data" / "image" / "origin" / "img_039.png").write_bytes(b"garbage")
    try:
        prepare(_cfg("expw", tmp_path, name="three", workers=2), quiet=True)
    except DataError as e:  # while the error (and its traceback) is alive, the pool is already shut
        assert "img_039.png" in str(e)
        with pytest.raises(RuntimeError, match="after shutdown"):
            made[0].submit(print)
    else:
        pytest.fail("a corrupt image must raise DataError")
    assert one.fingerprint == two.fingerprint
    for split in one.splits:
        for a, b in zip(one.load_arrays(split), two.load_arrays(split)):
            np.testing.assert_array_equal(a, b)


def test_png_encoding_matches_raw(tmp_path):
    make_afe(tmp_path / "data")
    raw = prepare(_cfg("afe", tmp_path), quiet=True)
    png = prepare(_cfg("afe", tmp_path, image_encoding="png", name="png"), quiet=True)
    for a, b in zip(raw.load_arrays("val"), png.load_arrays("val")):
        np.testing.assert_array_equal(a, b)


def test_torch_view(tmp_path):
    make_afe(tmp_path / "data")
    store = prepare(_cfg("afe", tmp_path), quiet=True)
    images, labels, index = store.load_arrays("train")
    ds = store.torch_dataset("train")
    img, label, idx = ds[3]
    assert img.shape == (3, 12, 12) and img.dtype == torch.float32 and 0 <= img.min() <= img.max() <= 1
    torch.testing.assert_close(img, torch.from_numpy(images[3]).permute(2, 0, 1).float() / 255)
    assert (label, idx) == (int(labels[3]), int(index[3]))
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=5)))
    assert batch[0].shape == (5, 3, 12, 12) and batch[1].tolist() == labels[:5].tolist()
    flipped = store.torch_dataset("train", transform=lambda a: a[:, ::-1].copy())
    np.testing.assert_array_equal(flipped[0][0], images[0][:, ::-1])


@pytest.mark.slow  # Ray start-up and Ray Data planning: ~15-40 s here
def test_ray_view(tmp_path, ray_session):
    make_afe(tmp_path / "data")
    store = prepare(_cfg("afe", tmp_path), quiet=True)
    ds = store.ray_dataset("val")
    rows = sorted(ds.take_all(), key=lambda r: r["index"])
    _, labels, index = store.load_arrays("val")
    assert [r["index"] for r in rows] == index.tolist() and [r["label"] for r in rows] == labels.tolist()
    assert set(rows[0]) == {"index", "image", "label", "path"} and len(rows[0]["image"]) == 12 * 12 * 3


# ---- bad config and the CLI -------------------------------------------------------------
def test_size_below_8_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="'size' of PrepareConfig is 4"):
        _cfg("sfew", tmp_path, size=4)


def test_cli_prepare_prints_counts(tmp_path, capsys):
    make_sfew(tmp_path / "data")
    argv = ["prepare", "--format", "sfew", "--root", str(tmp_path / "data"), "--out", str(tmp_path / "s"),
            "--size", "8", "--workers", "1"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "Happiness" in out and "total" in out and "unknown" in out
    assert FaceStore.open(tmp_path / "s" / "sfew").num_rows("train") == 14


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--size", "4"], "'size' of PrepareConfig is 4"),
        (["--class-map", "Angry"], "must look like FOLDER=CLASS"),
        (["--class-map", "Angry=Contempt"], "class_map.Angry"),
        (["--format", "rafdb"], "list_patition_label.txt is missing"),
    ],
)
def test_cli_bad_input_exits_2(tmp_path, capsys, args, message):
    make_sfew(tmp_path / "data")
    base = {"--format": "sfew", "--root": str(tmp_path / "data"), "--out": str(tmp_path / "s")}
    for flag, value in zip(args[::2], args[1::2]):
        base[flag] = value
    assert main(["prepare", *[x for kv in base.items() for x in kv]]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert not (tmp_path / "s" / "sfew").exists()


def test_cli_unknown_class_folder_exits_2(tmp_path, capsys):
    make_imagefolder(tmp_path / "data")
    assert main(["prepare", "--format", "imagefolder", "--root", str(tmp_path / "data"), "--out", str(tmp_path)]) == 2
    assert "unknown class folder '0'; allowed names: Surprise, Fear" in capsys.readouterr().err
    argv = ["prepare", "--format", "imagefolder", "--root", str(tmp_path / "data"), "--out", str(tmp_path / "s"),
            "--size", "8", "--class-map", "0=Anger", "1=happy", "misc=ignore"]
    assert main(argv) == 0
    assert FaceStore.open(tmp_path / "s" / "imagefolder").counts("val")["Happiness"] == 2
