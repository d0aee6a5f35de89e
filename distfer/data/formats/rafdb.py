"""RAF-DB (basic emotions) reader.

Layout (ROOT may also be the folder holding ``basic/``)::

    ROOT/EmoLabel/list_patition_label.txt    lines "train_00001.jpg 5"
    ROOT/Image/aligned/train_00001_aligned.jpg

Label ids 1..7 = Surprise, Fear, Disgust, Happiness, Sadness, Anger, Neutral (canonical id =
id - 1). The split comes from the name prefix: ``train_*`` -> ``train``; RAF-DB has no
validation split, so its ``test_*`` images are stored as split ``val`` (the split every stage
evaluates on). An aligned image with another image suffix (``_aligned.png``) is accepted.
"""

from __future__ import annotations

from pathlib import Path

from distfer.data.formats.base import (
    Listing,
    ReadOptions,
    Record,
    check_nonempty,
    image_index,
    label_from_table,
    rel,
    require_label_file,
    sort_records,
)
from distfer.errors import DataError

LABELS: dict[int, int | None] = {i: i - 1 for i in range(1, 8)}
_PREFIX_SPLIT = {"train": "train", "test": "val"}


def _base(root: Path) -> Path:
    if not (root / "EmoLabel").is_dir() and (root / "basic" / "EmoLabel").is_dir():
        return root / "basic"
    return root


def read(root: Path, opts: ReadOptions) -> Listing:
    """List a RAF-DB basic root; see the module docstring for the layout."""
    base = _base(root)
    label_file = require_label_file(
        base / "EmoLabel" / "list_patition_label.txt", "rafdb", "file EmoLabel/list_patition_label.txt"
    )
    image_dir = base / "Image" / "aligned"
    if not image_dir.is_dir():
        raise DataError(f"rafdb: image folder {image_dir} is missing; expected Image/aligned/*_aligned.jpg")
    listing = Listing(label_files=[label_file], splits=["train", "val"])
    images = image_index(image_dir, listing)
    for n, line in enumerate(label_file.read_text(encoding="utf-8-sig").splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{label_file}:{n}"
        if len(fields) != 2:
            raise DataError(f"{where}: expected 'NAME.jpg LABEL', got {line.strip()!r}")
        name, raw = fields
        split = _PREFIX_SPLIT.get(name.split("_", 1)[0].lower())
        if split is None:
            raise DataError(f"{where}: image name {name!r} must start with 'train_' or 'test_'")
        label = label_from_table(raw, LABELS, where)
        stem = Path(name).stem
        f = images.get(f"{stem}_aligned".lower())
        if f is None:
            listing.missing.append(f"{where}: image {image_dir / (stem + '_aligned.jpg')} does not exist")
            continue
        assert label is not None
        listing.records.append(Record(split, label, rel(f, root), str(f)))
    check_nonempty(listing, "rafdb", root, {"train": f"{label_file} (train_*)", "val": f"{label_file} (test_*)"})
    listing.records = sort_records(listing.records)
    return listing
