"""What every dataset reader shares: the Record type, the listing it returns, file scanning.

A reader turns a dataset root into a :class:`Listing`: one :class:`Record` per face (split,
canonical label, where the pixels are, an optional crop box), the label files it read, the
non-image files it ignored and the label lines whose image is missing. Readers only list and
validate; decoding happens later, in parallel, in :mod:`distfer.data.formats.decode`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from distfer.classes import CLASSES, class_id, is_class_name
from distfer.errors import DataError

#: image file suffixes the readers accept (compared lower-case)
IMAGE_EXTS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})

#: split names of a FaceStore, in store order
SPLITS: tuple[str, ...] = ("train", "val", "test")

_SPLIT_ALIASES = {
    "train": "train", "training": "train",
    "val": "val", "valid": "val", "validation": "val",
    "test": "test", "testing": "test",
}


@dataclass(frozen=True)
class Record:
    """One face to decode.

    Attributes:
        split: ``train``, ``val`` or ``test``.
        label: canonical class id 0..6, or -1 when unknown.
        path: identifier stored in the FaceStore: the image path relative to the dataset
            root, with ``#N`` appended when one file holds several faces.
        file: absolute image file, or None when ``pixels`` holds the image.
        bbox: crop box ``(left, top, right, bottom)`` in pixels, or None for the whole image.
        pixels: uint8 array [H, W] or [H, W, 3] for formats that store pixels inline (FER2013).
    """

    split: str
    label: int
    path: str
    file: str | None = None
    bbox: tuple[int, int, int, int] | None = None
    pixels: np.ndarray | None = field(default=None, compare=False)


@dataclass
class Listing:
    """What a reader found under a dataset root.

    Attributes:
        records: the faces, in a deterministic order.
        label_files: annotation files read (they enter the store's fingerprint).
        ignored: non-image files found among the images (skipped).
        missing: one message per label line whose image file does not exist.
        splits: the splits the dataset declares (each must end up non-empty).
    """

    records: list[Record] = field(default_factory=list)
    label_files: list[Path] = field(default_factory=list)
    ignored: list[Path] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    splits: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ReadOptions:
    """Reader options taken from :class:`~distfer.config.PrepareConfig`."""

    class_map: dict[str, str] = field(default_factory=dict)
    val_fraction: float = 0.2
    split_seed: int = 0


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTS


def _hidden(name: str) -> bool:
    return name.startswith(".") or name in {"__MACOSX", "Thumbs.db", "desktop.ini"}


def subdirs(folder: Path) -> list[Path]:
    """Visible sub-folders of ``folder``, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and not _hidden(p.name))


def scan_images(folder: Path, listing: Listing) -> list[Path]:
    """Image files anywhere under ``folder`` (sorted); other files go to ``listing.ignored``."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not _hidden(d))
        for name in sorted(filenames):
            if _hidden(name):
                continue
            p = Path(dirpath) / name
            (found if is_image_file(p) else listing.ignored).append(p)
    return found


def find_child(folder: Path, name: str, *, dir: bool = True) -> Path | None:
    """The entry of ``folder`` called ``name`` in any letter case, or None."""
    if not folder.is_dir():
        return None
    for p in sorted(folder.iterdir()):
        if p.name.lower() == name.lower() and (p.is_dir() if dir else p.is_file()):
            return p
    return None


def split_name(name: str) -> str | None:
    """``train``/``val``/``test`` for a split folder name in any common spelling and case."""
    return _SPLIT_ALIASES.get(name.lower())


def folder_class(name: str, class_map: dict[str, str]) -> int | None:
    """Canonical id of a class folder; None when ``class_map`` says ``ignore``.

    ``class_map`` entries (folder name -> class name or ``ignore``, any case) win; other folders
    must be spellings of the 7 classes.

    Raises:
        DataError: the folder is neither in ``class_map`` nor a spelling of a class.
    """
    for folder, cls in class_map.items():
        if folder.lower() == name.lower():
            return None if cls.lower() == "ignore" else class_id(cls)
    if is_class_name(name):
        return class_id(name)
    allowed = ", ".join([*class_map, *CLASSES])
    how = "map it with --class-map FOLDER=CLASS (or FOLDER=ignore)"
    raise DataError(f"unknown class folder {name!r}; allowed names: {allowed} (or common spellings); {how}")


def is_class_folder(name: str, class_map: dict[str, str]) -> bool:
    return any(folder.lower() == name.lower() for folder in class_map) or is_class_name(name)


def label_from_table(raw: str, table: dict[int, int | None], where: str) -> int | None:
    """Canonical id of a dataset's own label id (None: a valid id this reader drops).

    Raises:
        DataError: ``raw`` is not an integer or not in ``table``; names ``where``.
    """
    try:
        value = int(raw)
    except ValueError:
        raise DataError(f"{where}: label {raw!r} is not an integer") from None
    if value not in table:
        raise DataError(f"{where}: label id {value} is out of range; expected one of {sorted(table)}")
    return table[value]


def seeded_fraction(key: str, seed: int) -> float:
    """A stable pseudo-random number in [0, 1) for ``key`` (the same on every machine)."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def require_label_file(path: Path, fmt: str, expected: str) -> Path:
    """Check that an annotation file exists.

    Raises:
        DataError: naming the expected location.
    """
    if not path.is_file():
        raise DataError(
            f"{fmt}: label file {path} is missing; expected the {expected} "
            "(see README 'Using real datasets')"
        )
    return path


def image_index(folder: Path, listing: Listing) -> dict[str, Path]:
    """Image files directly in ``folder`` keyed by their lower-case stem."""
    out: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and not _hidden(p.name):
            if is_image_file(p):
                out.setdefault(p.stem.lower(), p)
            else:
                listing.ignored.append(p)
    return out


def rel(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` with forward slashes."""
    return path.relative_to(root).as_posix()


def check_nonempty(listing: Listing, fmt: str, root: Path, where: dict[str, str] | None = None) -> None:
    """Raise unless every declared split has at least one record.

    Raises:
        DataError: naming the empty split and where its images were looked for.
    """
    counts = {s: 0 for s in listing.splits}
    for r in listing.records:
        counts[r.split] = counts.get(r.split, 0) + 1
    for split, n in counts.items():
        if n == 0:
            place = (where or {}).get(split, str(root))
            raise DataError(f"{fmt}: split {split!r} is empty: no images found in {place}; add images or remove it")
    if not listing.records:
        raise DataError(f"{fmt}: no images found under {root}; check --root and --format")


def sort_records(records: Iterable[Record]) -> list[Record]:
    """Records in store order: by split (train, val, test), then path."""
    order = {s: i for i, s in enumerate(SPLITS)}
    return sorted(records, key=lambda r: (order[r.split], r.path))
