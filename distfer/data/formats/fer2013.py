"""FER2013 reader.

Layout: ``ROOT/fer2013.csv`` (or ``ROOT/fer2013/fer2013.csv``) with the header
``emotion,pixels,Usage``; ``pixels`` holds 48x48 (any square) space-separated grey values.
Label ids 0..6 = Angry, Disgust, Fear, Happy, Sad, Surprise, Neutral. Usage ``Training`` ->
``train``, ``PublicTest`` -> ``val``, ``PrivateTest`` -> ``test``.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from distfer.classes import ANGER, DISGUST, FEAR, HAPPINESS, NEUTRAL, SADNESS, SURPRISE
from distfer.data.formats.base import (
    Listing,
    ReadOptions,
    Record,
    check_nonempty,
    label_from_table,
    require_label_file,
    sort_records,
)
from distfer.errors import DataError

#: FER2013 / ExpW id -> canonical id
LABELS: dict[int, int | None] = {
    0: ANGER, 1: DISGUST, 2: FEAR, 3: HAPPINESS, 4: SADNESS, 5: SURPRISE, 6: NEUTRAL,
}
USAGE = {"training": "train", "publictest": "val", "privatetest": "test"}


def _csv_path(root: Path) -> Path:
    for p in (root / "fer2013.csv", root / "fer2013" / "fer2013.csv"):
        if p.is_file():
            return p
    return require_label_file(root / "fer2013.csv", "fer2013", "file fer2013.csv (emotion,pixels,Usage)")


def read(root: Path, opts: ReadOptions) -> Listing:
    """List FER2013 faces (pixels decoded from the CSV); see the module docstring."""
    path = _csv_path(root)
    listing = Listing(label_files=[path])
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = [h.strip().lower() for h in next(reader, [])]
        missing = {"emotion", "pixels", "usage"} - set(header)
        if missing:
            raise DataError(f"{path}: missing column(s) {', '.join(sorted(missing))}; expected emotion,pixels,Usage")
        ie, ip, iu = header.index("emotion"), header.index("pixels"), header.index("usage")
        for n, row in enumerate(reader, start=2):
            if not row:
                continue
            where = f"{path}:{n}"
            if len(row) < len(header):
                raise DataError(f"{where}: expected {len(header)} columns, got {len(row)}")
            split = USAGE.get(row[iu].strip().lower())
            if split is None:
                raise DataError(f"{where}: Usage {row[iu]!r} is not Training, PublicTest or PrivateTest")
            label = label_from_table(row[ie].strip(), LABELS, where)
            values = row[ip].split()
            side = math.isqrt(len(values))
            if side < 1 or side * side != len(values):
                raise DataError(f"{where}: {len(values)} pixel values do not form a square image")
            try:
                pixels = np.array(values, dtype=np.int64)
            except ValueError:
                raise DataError(f"{where}: pixels must be integers 0..255") from None
            if pixels.min() < 0 or pixels.max() > 255:
                raise DataError(f"{where}: pixel values must lie in 0..255")
            if split not in listing.splits:
                listing.splits.append(split)
            assert label is not None
            listing.records.append(
                Record(split, label, f"{path.name}#{n:06d}", None, None, pixels.astype(np.uint8).reshape(side, side))
            )
    check_nonempty(listing, "fer2013", root)
    listing.records = sort_records(listing.records)
    return listing
