"""ExpW (Expression in-the-Wild) reader.

Layout::

    ROOT/label/label.lst     lines "image_name face_id top left right bottom confidence label"
    ROOT/image/origin/<image_name>

Faces are cropped to rows top:bottom, columns left:right. Label ids 0..6 = Angry, Disgust,
Fear, Happy, Sad, Surprise, Neutral. ExpW has no official split: each image file (with all its
faces) goes to ``val`` when a seeded hash of its name falls below ``val_fraction`` (default
0.2, seed ``split_seed``), else to ``train``; the split is the same on every machine.
"""

from __future__ import annotations

from pathlib import Path

from distfer.data.formats.base import (
    Listing,
    ReadOptions,
    Record,
    check_nonempty,
    label_from_table,
    require_label_file,
    seeded_fraction,
    sort_records,
)
from distfer.data.formats.fer2013 import LABELS
from distfer.errors import DataError


def read(root: Path, opts: ReadOptions) -> Listing:
    """List ExpW faces with their boxes; see the module docstring for the layout."""
    path = require_label_file(root / "label" / "label.lst", "expw", "file label/label.lst")
    image_dir = root / "image" / "origin"
    if not image_dir.is_dir():
        raise DataError(f"expw: image folder {image_dir} is missing; expected image/origin/<image_name>")
    listing = Listing(label_files=[path], splits=["train", "val"])
    exists: dict[str, bool] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{path}:{n}"
        if len(fields) != 8:
            raise DataError(f"{where}: expected 8 fields 'image_name face_id top left right bottom confidence label', got {len(fields)}")
        name, face_id = fields[0], fields[1]
        try:
            top, left, right, bottom = (int(float(v)) for v in fields[2:6])
        except ValueError:
            raise DataError(f"{where}: top/left/right/bottom must be numbers") from None
        if right <= left or bottom <= top:
            raise DataError(f"{where}: face box left={left} right={right} top={top} bottom={bottom} is empty")
        label = label_from_table(fields[7], LABELS, where)
        f = image_dir / name
        if name not in exists:
            exists[name] = f.is_file()
        if not exists[name]:
            listing.missing.append(f"{where}: image {f} does not exist")
            continue
        split = "val" if seeded_fraction(name, opts.split_seed) < opts.val_fraction else "train"
        assert label is not None
        listing.records.append(
            Record(split, label, f"image/origin/{name}#{face_id}", str(f), (left, top, right, bottom))
        )
    check_nonempty(listing, "expw", root, {"train": str(path), "val": f"{path} (val_fraction={opts.val_fraction})"})
    listing.records = sort_records(listing.records)
    return listing
