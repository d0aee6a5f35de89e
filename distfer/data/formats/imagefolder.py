"""Generic image-folder reader.

Layout::

    ROOT/<split>/<class folder>/**/*.png     split: train|training, val|valid|validation, test|testing
    ROOT/<class folder>/**/*.png             (no split level: everything is ``train``)

Class folders are mapped by ``class_map`` (folder name -> class name or ``ignore``, any case);
without a map they must be spellings of the 7 classes (Angry, happiness, sad, ...).
"""

from __future__ import annotations

from pathlib import Path

from distfer.data.formats.base import (
    Listing,
    ReadOptions,
    Record,
    check_nonempty,
    folder_class,
    is_class_folder,
    rel,
    scan_images,
    sort_records,
    split_name,
    subdirs,
)
from distfer.errors import DataError


def read(root: Path, opts: ReadOptions) -> Listing:
    """List an image-folder root; see the module docstring for the layout."""
    listing = Listing()
    top = subdirs(root)
    if not top:
        raise DataError(f"imagefolder: {root} holds no folders; expected ROOT/<split>/<class>/*.png")
    if all(split_name(d.name) is None for d in top) and any(is_class_folder(d.name, opts.class_map) for d in top):
        splits = [("train", root)]
    else:
        splits = []
        for d in top:
            split = split_name(d.name)
            if split is None:
                raise DataError(
                    f"imagefolder: unknown split folder {d}; allowed names: train, training, val, "
                    "valid, validation, test, testing (any case)"
                )
            if split in (s for s, _ in splits):
                raise DataError(f"imagefolder: {root} holds two folders for split {split!r}; keep one")
            splits.append((split, d))
    where = {}
    for split, split_dir in splits:
        listing.splits.append(split)
        where[split] = str(split_dir)
        classes = subdirs(split_dir)
        for cdir in classes:
            try:
                label = folder_class(cdir.name, opts.class_map)
            except DataError as e:
                raise DataError(f"imagefolder: {cdir}: {e}") from None
            for f in scan_images(cdir, listing):
                if label is not None:
                    listing.records.append(Record(split, label, rel(f, root), str(f)))
    check_nonempty(listing, "imagefolder", root, where)
    listing.records = sort_records(listing.records)
    return listing
