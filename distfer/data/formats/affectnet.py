"""AffectNet reader (manually annotated part).

Layout::

    ROOT/training.csv, ROOT/validation.csv      (or under ROOT/Manually_Annotated_file_lists/)
    ROOT/Manually_Annotated_Images/<subDirectory_filePath>   (or ROOT/<subDirectory_filePath>)

CSV columns (header row): subDirectory_filePath, face_x, face_y, face_width, face_height,
facial_landmarks, expression, valence, arousal. Faces are cropped to the box (face_x, face_y,
face_width, face_height). Expression ids: 0 Neutral, 1 Happy, 2 Sad, 3 Surprise, 4 Fear,
5 Disgust, 6 Anger, 7 Contempt, 8 None, 9 Uncertain, 10 No-Face. Contempt has no canonical
class and 8..10 are not expressions, so those rows are dropped. ``training.csv`` -> ``train``,
``validation.csv`` -> ``val``; at least one of them must exist. A file without the header row
is read in the column order above.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterable
from pathlib import Path

from distfer.classes import ANGER, DISGUST, FEAR, HAPPINESS, NEUTRAL, SADNESS, SURPRISE
from distfer.data.formats.base import (
    Listing,
    ReadOptions,
    Record,
    check_nonempty,
    label_from_table,
    sort_records,
)
from distfer.errors import DataError

LABELS: dict[int, int | None] = {
    0: NEUTRAL, 1: HAPPINESS, 2: SADNESS, 3: SURPRISE, 4: FEAR, 5: DISGUST, 6: ANGER,
    7: None, 8: None, 9: None, 10: None,  # Contempt, None, Uncertain, No-Face: dropped
}
COLUMNS = ("subdirectory_filepath", "face_x", "face_y", "face_width", "face_height", "expression")
#: column order of a file without a header row (some copies of validation.csv)
HEADERLESS = ("subdirectory_filepath", "face_x", "face_y", "face_width", "face_height",
              "facial_landmarks", "expression")


def _find(root: Path, name: str) -> Path | None:
    for p in (root / name, root / "Manually_Annotated_file_lists" / name):
        if p.is_file():
            return p
    return None


def read(root: Path, opts: ReadOptions) -> Listing:
    """List AffectNet faces with their boxes; see the module docstring for the layout."""
    images = root / "Manually_Annotated_Images"
    base = images if images.is_dir() else root
    listing = Listing()
    for name, split in (("training.csv", "train"), ("validation.csv", "val")):
        path = _find(root, name)
        if path is None:
            continue
        listing.label_files.append(path)
        listing.splits.append(split)
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            first = next(reader, [])
            header = [h.strip().lower() for h in first]
            rows: Iterable[list[str]] = reader
            start = 2
            if len(header) >= len(HEADERLESS) and header[1].replace(".", "", 1).isdigit():
                header, rows, start = list(HEADERLESS), itertools.chain([first], reader), 1  # no header row
            lacking = [c for c in COLUMNS if c not in header]
            if lacking:
                raise DataError(f"{path}: missing column(s) {', '.join(lacking)}; expected the AffectNet header")
            col = {c: header.index(c) for c in COLUMNS}
            for n, row in enumerate(rows, start=start):
                if not row:
                    continue
                where = f"{path}:{n}"
                if len(row) < len(header):
                    raise DataError(f"{where}: expected {len(header)} columns, got {len(row)}")
                label = label_from_table(row[col["expression"]].strip(), LABELS, where)
                if label is None:
                    continue
                try:
                    x, y, w, h = (int(float(row[col[c]])) for c in COLUMNS[1:5])
                except ValueError:
                    raise DataError(f"{where}: face_x/face_y/face_width/face_height must be numbers") from None
                if w <= 0 or h <= 0:
                    raise DataError(f"{where}: face box {w}x{h} is empty")
                relpath = row[col["subdirectory_filepath"]].strip()
                f = base / relpath
                if not f.is_file():
                    listing.missing.append(f"{where}: image {f} does not exist")
                    continue
                listing.records.append(
                    Record(split, label, f"{f.relative_to(root).as_posix()}", str(f), (x, y, x + w, y + h))
                )
    if not listing.label_files:
        raise DataError(
            f"affectnet: label files {root / 'training.csv'} and {root / 'validation.csv'} are missing; "
            "expected at least one (also looked in Manually_Annotated_file_lists/)"
        )
    check_nonempty(listing, "affectnet", root, {s: str(p) for s, p in zip(listing.splits, listing.label_files)})
    listing.records = sort_records(listing.records)
    return listing
