"""Dataset readers: tiny fixtures in each real layout, label remaps against the documented ids.

The ``make_*`` builders are shared with tests/test_store.py. Every image of dataset label id
``L`` is filled with grey value ``shade(L)`` (inside the face box for the cropping formats,
``BACKGROUND`` outside), so a prepared image tells which dataset id it came from.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from distfer.classes import CLASSES
from distfer.config import DATASET_FORMATS
from distfer.data.formats import FORMATS, ReadOptions, get_reader, read_dataset
from distfer.errors import ConfigError, DataError

# documented dataset ids -> canonical names, written out independently of the readers
FER_IDS = ["Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise", "Neutral"]  # FER2013, ExpW
AFFECTNET_IDS = ["Neutral", "Happiness", "Sadness", "Surprise", "Fear", "Disgust", "Anger"]  # 7..10 dropped
RAFDB_IDS = {i + 1: n for i, n in enumerate(["Surprise", "Fear", "Disgust", "Happiness", "Sadness", "Anger", "Neutral"])}
AFE_IDS = ["Anger", "Disgust", "Fear", "Happiness", "Neutral", "Sadness", "Surprise"]
SFEW_FOLDERS = {"Angry": "Anger", "Disgust": "Disgust", "Fear": "Fear", "Happy": "Happiness",
                "Neutral": "Neutral", "Sad": "Sadness", "Surprise": "Surprise"}
BACKGROUND = 250
BOX = (4, 2, 14, 12)  # left, top, right, bottom inside a 20x16 image


def shade(dataset_id: int) -> int:
    return 10 + 20 * dataset_id


def dataset_id(image: np.ndarray) -> int:
    return round((float(image.mean()) - 10) / 20)


def _img(path: Path, value: int, box: tuple[int, int, int, int] | None = None, mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if box is None:
        arr = np.full((16, 16, 3), value, np.uint8)
    else:
        arr = np.full((16, 20, 3), BACKGROUND, np.uint8)
        arr[box[1]:box[3], box[0]:box[2]] = value
    img = Image.fromarray(arr)
    img.convert(mode).save(path)


def make_sfew(root: Path, *, nested: bool = True, per_class: int = 2) -> Path:
    """SFEW 2.0: Train/Val (Train/Train_Aligned_Faces/<Class>/ when nested), an unlabelled Test/."""
    for split in ("Train", "Val"):
        base = root / split / f"{split}_Aligned_Faces" if nested else root / split.lower()
        for k, folder in enumerate(SFEW_FOLDERS):
            name = folder if k % 2 else folder.lower()
            for i in range(per_class):
                _img(base / name / f"{split}_{folder}_{i}.png", shade(k), mode="L" if i else "RGB")
    for i in range(2):
        _img(root / "Test" / "Test_Aligned_Faces" / f"t{i}.jpg", shade(0))
    if nested:
        (root / "Train" / "Train_Aligned_Faces" / "angry" / "notes.txt").write_text("not an image")
    return root


def make_rafdb(root: Path) -> Path:
    lines = []
    for n, (split, k) in enumerate([(s, k) for s in ("train", "test") for k in range(1, 8)], start=1):
        name = f"{split}_{n:05d}.jpg"
        lines.append(f"{name} {k}")
        _img(root / "Image" / "aligned" / f"{split}_{n:05d}_aligned.jpg", shade(k))
    (root / "EmoLabel").mkdir(parents=True)
    (root / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(lines) + "\n")
    return root


def make_fer2013(root: Path) -> Path:
    rows = ["emotion,pixels,Usage"]
    for usage in ("Training", "PublicTest", "PrivateTest"):
        for k in range(7):
            rows.append(f"{k},{' '.join([str(shade(k))] * 256)},{usage}")
    root.mkdir(parents=True, exist_ok=True)
    (root / "fer2013.csv").write_text("\n".join(rows) + "\n")
    return root


def make_affectnet(root: Path) -> Path:
    header = "subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,valence,arousal"
    left, top, right, bottom = BOX
    for name, split in (("training.csv", "train"), ("validation.csv", "val")):
        rows = [header]
        for k in range(11):
            rel = f"{k}/{split}_{k}.png"  # PNG: JPEG would ring at the box edge
            _img(root / "Manually_Annotated_Images" / rel, shade(k), BOX)
            rows.append(f'{rel},{left},{top},{right - left},{bottom - top},"1.0;2.0;3.0",{k},0.1,-0.2')
        (root / name).write_text("\n".join(rows) + "\n")
    return root


def make_expw(root: Path, images: int = 7) -> Path:
    left, top, right, bottom = BOX
    lines = []
    for k in range(images):
        name = f"img_{k:03d}.png"
        _img(root / "image" / "origin" / name, shade(k % 7), BOX)
        for face in range(2):  # two faces (same box) per image
            lines.append(f"{name} {face} {top} {left} {right} {bottom} 0.9 {k % 7}")
    (root / "label").mkdir(parents=True)
    (root / "label" / "label.lst").write_text("\n".join(lines) + "\n")
    return root


def make_afe(root: Path) -> Path:
    left, top, right, bottom = BOX
    for name in ("Train", "Test"):
        lines = []
        for k in range(7):
            rel = f"{name.lower()}/{k}.png"
            _img(root / "src" / "image" / rel, shade(k), BOX)
            lines.append(f"{rel} {left} {top} {right} {bottom} {k}")
        (root / "annos" / "TrainTest").mkdir(parents=True, exist_ok=True)
        (root / "annos" / "TrainTest" / f"{name}.csv").write_text("\n".join(lines) + "\n")
    return root


def make_imagefolder(root: Path) -> Path:
    for split in ("Training", "val"):
        for k, folder in enumerate(["0", "1", "misc"]):
            for i in range(2):
                _img(root / split / folder / f"{i}.webp" if i else root / split / folder / f"{i}.BMP", shade(k))
    return root


IMAGEFOLDER_MAP = {"0": "angry", "1": "Happy", "misc": "ignore"}


def names(listing, split: str | None = None) -> list[str]:
    return [CLASSES[r.label] for r in listing.records if split is None or r.split == split]


# ---- registry ---------------------------------------------------------------------------
def test_registry_matches_config_formats():
    assert tuple(FORMATS) == DATASET_FORMATS
    with pytest.raises(ConfigError, match="choose one of sfew"):
        get_reader("fer2014")


# ---- SFEW -------------------------------------------------------------------------------
@pytest.mark.parametrize("nested", [True, False])
def test_sfew_layouts_and_folder_names(tmp_path, nested):
    listing = read_dataset("sfew", make_sfew(tmp_path, nested=nested))
    assert listing.splits == ["train", "val", "test"]
    for split in ("train", "val"):
        recs = [r for r in listing.records if r.split == split]
        assert sorted(CLASSES[r.label] for r in recs) == sorted(2 * list(SFEW_FOLDERS.values()))
        for r in recs:  # file name holds the folder
            assert CLASSES[r.label] == SFEW_FOLDERS[Path(r.path).name.split("_")[1]]
    assert [r.label for r in listing.records if r.split == "test"] == [-1, -1]
    assert len(listing.ignored) == (1 if nested else 0)


def test_sfew_picks_the_subfolder_that_holds_classes(tmp_path):
    make_sfew(tmp_path)
    _img(tmp_path / "Train" / "Train_Original" / "x.png", 10)  # a sibling without class folders
    listing = read_dataset("sfew", tmp_path)
    assert sum(r.split == "train" for r in listing.records) == 14


def test_sfew_unknown_class_folder_lists_allowed(tmp_path):
    make_sfew(tmp_path)
    (tmp_path / "Train" / "Train_Aligned_Faces" / "Contempt").mkdir()
    with pytest.raises(DataError, match=r"unknown class folder 'Contempt'; allowed names: Surprise, Fear"):
        read_dataset("sfew", tmp_path)


def test_sfew_empty_split(tmp_path):
    (tmp_path / "Train" / "Happy").mkdir(parents=True)
    _img(tmp_path / "Train" / "Happy" / "a.png", 10)
    (tmp_path / "Val" / "Sad").mkdir(parents=True)
    with pytest.raises(DataError, match=r"split 'val' is empty.*Val"):
        read_dataset("sfew", tmp_path)


# ---- RAF-DB ------------------------------------------------------------------------------
def test_rafdb_ids_and_splits(tmp_path):
    listing = read_dataset("rafdb", make_rafdb(tmp_path / "basic").parent)  # root above basic/ works too
    assert listing.splits == ["train", "val"]
    for split in ("train", "val"):
        assert names(listing, split) == [RAFDB_IDS[k] for k in range(1, 8)]
    assert all(r.path.startswith("basic/Image/aligned/") for r in listing.records)


@pytest.mark.parametrize("bad", ["train_00001.jpg 8", "train_00001.jpg 0", "train_00001.jpg x"])
def test_rafdb_label_out_of_range(tmp_path, bad):
    root = make_rafdb(tmp_path)
    f = root / "EmoLabel" / "list_patition_label.txt"
    f.write_text(bad + "\n" + f.read_text())
    with pytest.raises(DataError, match=r"list_patition_label.txt:1: label"):
        read_dataset("rafdb", root)


def test_rafdb_missing_label_file_and_missing_image(tmp_path):
    root = make_rafdb(tmp_path)
    (root / "Image" / "aligned" / "train_00003_aligned.jpg").unlink()
    listing = read_dataset("rafdb", root)
    assert len(listing.missing) == 1 and "train_00003_aligned.jpg" in listing.missing[0]
    (root / "EmoLabel" / "list_patition_label.txt").unlink()
    with pytest.raises(DataError, match=r"label file .*list_patition_label.txt is missing"):
        read_dataset("rafdb", root)


# ---- FER2013 -----------------------------------------------------------------------------
def test_fer2013_ids_and_usage(tmp_path):
    listing = read_dataset("fer2013", make_fer2013(tmp_path))
    assert listing.splits == ["train", "val", "test"]
    for split in ("train", "val", "test"):
        recs = [r for r in listing.records if r.split == split]
        assert [CLASSES[r.label] for r in recs] == FER_IDS
        assert [dataset_id(r.pixels) for r in recs] == list(range(7))
        assert recs[0].pixels.shape == (16, 16)


def test_fer2013_bad_rows(tmp_path):
    make_fer2013(tmp_path)
    f = tmp_path / "fer2013.csv"
    lines = f.read_text().splitlines()
    f.write_text("\n".join([lines[0], "7," + lines[1].split(",", 1)[1]]) + "\n")
    with pytest.raises(DataError, match=r"fer2013.csv:2: label id 7 is out of range"):
        read_dataset("fer2013", tmp_path)
    f.write_text("\n".join([lines[0], "1,1 2 3,Training"]) + "\n")
    with pytest.raises(DataError, match="do not form a square"):
        read_dataset("fer2013", tmp_path)
    f.unlink()
    with pytest.raises(DataError, match="fer2013.csv is missing"):
        read_dataset("fer2013", tmp_path)


# ---- AffectNet ---------------------------------------------------------------------------
def test_affectnet_ids_drops_and_boxes(tmp_path):
    listing = read_dataset("affectnet", make_affectnet(tmp_path))
    for split in ("train", "val"):
        recs = [r for r in listing.records if r.split == split]
        assert sorted(CLASSES[r.label] for r in recs) == sorted(AFFECTNET_IDS)  # 7..10 dropped
        for r in recs:
            assert CLASSES[r.label] == AFFECTNET_IDS[int(Path(r.path).parent.name)]
            assert r.bbox == BOX


def test_affectnet_file_without_header(tmp_path):
    make_affectnet(tmp_path)
    f = tmp_path / "validation.csv"
    f.write_text("".join(f.read_text().splitlines(keepends=True)[1:]))
    listing = read_dataset("affectnet", tmp_path)
    assert sorted(names(listing, "val")) == sorted(AFFECTNET_IDS)


def test_affectnet_out_of_range_and_missing_files(tmp_path):
    make_affectnet(tmp_path)
    f = tmp_path / "training.csv"
    f.write_text(f.read_text().replace(',"1.0;2.0;3.0",0,', ',"1.0;2.0;3.0",11,'))
    with pytest.raises(DataError, match=r"training.csv:2: label id 11 is out of range"):
        read_dataset("affectnet", tmp_path)
    f.unlink()
    (tmp_path / "validation.csv").unlink()
    with pytest.raises(DataError, match="training.csv and .*validation.csv are missing"):
        read_dataset("affectnet", tmp_path)


# ---- ExpW --------------------------------------------------------------------------------
def test_expw_ids_boxes_and_seeded_split(tmp_path):
    root = make_expw(tmp_path, images=60)
    listing = read_dataset("expw", root, ReadOptions(val_fraction=0.25, split_seed=3))
    assert len(listing.records) == 120
    by_image: dict[str, set[str]] = {}
    for r in listing.records:
        k = int(r.path.split("_")[1].split(".")[0])
        assert CLASSES[r.label] == FER_IDS[k % 7] and r.bbox == BOX
        by_image.setdefault(r.path.split("#")[0], set()).add(r.split)
    assert all(len(s) == 1 for s in by_image.values())  # both faces of an image in one split
    n_val = sum(s == {"val"} for s in by_image.values())
    assert 5 <= n_val <= 25  # 60 images x 0.25 = 15 expected
    again = read_dataset("expw", root, ReadOptions(val_fraction=0.25, split_seed=3))
    assert [r.split for r in again.records] == [r.split for r in listing.records]
    other = read_dataset("expw", root, ReadOptions(val_fraction=0.25, split_seed=4))
    assert sorted(r.path for r in other.records if r.split == "val") != sorted(
        r.path for r in listing.records if r.split == "val")


def test_expw_bad_line(tmp_path):
    root = make_expw(tmp_path)
    f = root / "label" / "label.lst"
    f.write_text("img_000.png 0 2 4 14 12 0.9 9\n")
    with pytest.raises(DataError, match=r"label.lst:1: label id 9 is out of range"):
        read_dataset("expw", root)


# ---- AFE ---------------------------------------------------------------------------------
def test_afe_ids_boxes_and_variants(tmp_path):
    root = make_afe(tmp_path)
    listing = read_dataset("afe", root)
    for split in ("train", "val"):
        assert names(listing, split) == AFE_IDS
    assert all(r.bbox == BOX for r in listing.records)
    f = root / "annos" / "TrainTest" / "Test.csv"
    f.write_text("path,label\ntest/3.png,3\n")  # header + comma-separated 2-field variant
    listing = read_dataset("afe", root)
    val = [r for r in listing.records if r.split == "val"]
    assert [(CLASSES[r.label], r.bbox) for r in val] == [("Happiness", None)]


def test_afe_bad_input(tmp_path):
    root = make_afe(tmp_path)
    f = root / "annos" / "TrainTest" / "Train.csv"
    f.write_text("train/0.png 4 2 14 12 7\n")
    with pytest.raises(DataError, match=r"Train.csv:1: label id 7 is out of range"):
        read_dataset("afe", root)
    f.unlink()
    with pytest.raises(DataError, match="Train.csv is missing"):
        read_dataset("afe", root)


# ---- ImageFolder -------------------------------------------------------------------------
def test_imagefolder_class_map_and_ignore(tmp_path):
    root = make_imagefolder(tmp_path)
    listing = read_dataset("imagefolder", root, ReadOptions(class_map=IMAGEFOLDER_MAP))
    assert listing.splits == ["train", "val"]
    assert sorted(names(listing, "train")) == ["Anger", "Anger", "Happiness", "Happiness"]
    with pytest.raises(DataError, match=r"unknown class folder '0'; allowed names: Surprise"):
        read_dataset("imagefolder", root)  # no map: '0' is not a class name
    _img(root / "val" / "Sad" / "x.png", 10)  # folders outside the map: the class spellings
    listing = read_dataset("imagefolder", root, ReadOptions(class_map=IMAGEFOLDER_MAP))
    assert sorted(names(listing, "val")) == ["Anger", "Anger", "Happiness", "Happiness", "Sadness"]
    with pytest.raises(DataError, match=r"unknown class folder 'misc'; allowed names: 0, 1, Surprise"):
        read_dataset("imagefolder", root, ReadOptions(class_map={"0": "angry", "1": "happy"}))


def test_imagefolder_default_names_no_split_level_and_bad_split(tmp_path):
    for folder in ("happy", "Sadness", "SURPRISED"):
        _img(tmp_path / "a" / folder / "x.png", 10)
    listing = read_dataset("imagefolder", tmp_path / "a")
    assert listing.splits == ["train"] and sorted(names(listing)) == ["Happiness", "Sadness", "Surprise"]
    _img(tmp_path / "b" / "train" / "happy" / "x.png", 10)
    _img(tmp_path / "b" / "holdout" / "happy" / "x.png", 10)
    with pytest.raises(DataError, match="unknown split folder .*holdout; allowed names: train"):
        read_dataset("imagefolder", tmp_path / "b")
