"""AFE (Asian Facial Expression) reader.

AFE's annotation format is not publicly documented. This reader follows the layout used by
the CluP authors' reference code (the only public reader we found), and accepts the obvious
variants:

    ROOT/annos/TrainTest/Train.csv, ROOT/annos/TrainTest/Test.csv
    ROOT/src/image/<path>            (or ROOT/<path> when src/image/ does not exist)

Each line: ``path left top right bottom label`` (crop box in pixels) or just ``path label``,
separated by spaces, tabs or commas; a header line (whose last field is not an integer) is
skipped. Label ids 0..6 = Angry, Disgust, Fear, Happy, Neutral, Sad, Surprise (alphabetical;
the reference code's mapping). ``Train.csv`` -> ``train``; AFE has no validation split, so
``Test.csv`` -> ``val`` (as for RAF-DB). Both files must exist.
"""

from __future__ import annotations

import re
from pathlib import Path

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

LABELS: dict[int, int | None] = {
    0: ANGER, 1: DISGUST, 2: FEAR, 3: HAPPINESS, 4: NEUTRAL, 5: SADNESS, 6: SURPRISE,
}
_SEP = re.compile(r"[,\s]+")


def read(root: Path, opts: ReadOptions) -> Listing:
    """List AFE faces; see the module docstring for the assumed layout."""
    image_base = root / "src" / "image"
    if not image_base.is_dir():
        image_base = root
    listing = Listing()
    for name, split in (("Train.csv", "train"), ("Test.csv", "val")):
        path = require_label_file(root / "annos" / "TrainTest" / name, "afe", f"file annos/TrainTest/{name}")
        listing.label_files.append(path)
        listing.splits.append(split)
        for n, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
            fields = [v for v in _SEP.split(line.strip()) if v]
            if not fields:
                continue
            where = f"{path}:{n}"
            if n == 1 and not fields[-1].lstrip("-").isdigit():
                continue  # header
            if len(fields) not in (2, 6):
                raise DataError(f"{where}: expected 'path left top right bottom label' or 'path label', got {line.strip()!r}")
            label = label_from_table(fields[-1], LABELS, where)
            bbox = None
            if len(fields) == 6:
                try:
                    left, top, right, bottom = (int(float(v)) for v in fields[1:5])
                except ValueError:
                    raise DataError(f"{where}: left/top/right/bottom must be numbers") from None
                if right <= left or bottom <= top:
                    raise DataError(f"{where}: face box ({left}, {top}, {right}, {bottom}) is empty")
                bbox = (left, top, right, bottom)
            f = image_base / fields[0]
            if not f.is_file():
                listing.missing.append(f"{where}: image {f} does not exist")
                continue
            assert label is not None
            relpath = f.relative_to(root).as_posix()
            listing.records.append(Record(split, label, f"{relpath}#{n}" if bbox else relpath, str(f), bbox))
    check_nonempty(listing, "afe", root, {s: str(p) for s, p in zip(listing.splits, listing.label_files)})
    listing.records = sort_records(listing.records)
    return listing
