"""SFEW 2.0 reader.

Layout::

    ROOT/Train/<Class>/*.png          (or ROOT/Train/Train_Aligned_Faces/<Class>/*.png)
    ROOT/Val/<Class>/*.png            (or ROOT/Val/Val_Aligned_Faces/<Class>/*.png)
    ROOT/Test/**/*.png                (optional, unlabelled: label -1)

Split folders in any letter case. Class folders Angry, Disgust, Fear, Happy, Neutral, Sad,
Surprise (any case; ``class_map`` overrides). Splits: Train -> ``train``, Val -> ``val``,
Test -> ``test``.
"""

from __future__ import annotations

from pathlib import Path

from distfer.classes import UNKNOWN
from distfer.data.formats.base import (
    Listing,
    ReadOptions,
    Record,
    check_nonempty,
    find_child,
    folder_class,
    is_class_folder,
    rel,
    scan_images,
    sort_records,
    subdirs,
)
from distfer.errors import DataError


def class_folders(split_dir: Path, class_map: dict[str, str]) -> list[Path]:
    """The class folders of a split: its sub-folders, or those of its single sub-folder.

    Raises:
        DataError: a folder that is not a class sits among class folders (lists the allowed
            names), or no class folders are found.
    """
    level = subdirs(split_dir)
    if level and not any(is_class_folder(d.name, class_map) for d in level):
        # one level down, e.g. Train/Train_Aligned_Faces/<Class>: the sub-folder holding classes
        holders = [d for d in level if any(is_class_folder(c.name, class_map) for c in subdirs(d))]
        if len(holders) == 1 or len(level) == 1:
            level = subdirs((holders or level)[0])
    if not level:
        raise DataError(f"sfew: {split_dir} holds no class folders (Angry, Disgust, ...); check the layout")
    for d in level:
        try:
            folder_class(d.name, class_map)
        except DataError as e:
            raise DataError(f"sfew: {d}: {e}") from None
    return level


def read(root: Path, opts: ReadOptions) -> Listing:
    """List an SFEW 2.0 root; see the module docstring for the layout."""
    listing = Listing()
    where: dict[str, str] = {}
    for folder, split in (("Train", "train"), ("Val", "val")):
        split_dir = find_child(root, folder)
        if split_dir is None:
            continue
        listing.splits.append(split)
        where[split] = str(split_dir)
        for cdir in class_folders(split_dir, opts.class_map):
            label = folder_class(cdir.name, opts.class_map)
            for f in scan_images(cdir, listing):
                if label is not None:
                    listing.records.append(Record(split, label, rel(f, root), str(f)))
    test_dir = find_child(root, "Test")
    if test_dir is not None:
        listing.splits.append("test")
        where["test"] = str(test_dir)
        for f in scan_images(test_dir, listing):
            listing.records.append(Record("test", UNKNOWN, rel(f, root), str(f)))
    if not listing.splits:
        raise DataError(f"sfew: {root} holds no Train/, Val/ or Test/ folder; check --root")
    check_nonempty(listing, "sfew", root, where)
    listing.records = sort_records(listing.records)
    return listing
