"""Dataset readers, one module per on-disk format, and their registry.

Each reader is ``read(root: Path, opts: ReadOptions) -> Listing`` and maps the dataset's own
labels into the canonical ids of :mod:`distfer.classes`. The layouts are documented in each
module and in README "Using real datasets".
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from distfer.data.formats import afe, affectnet, expw, fer2013, imagefolder, rafdb, sfew
from distfer.data.formats.base import IMAGE_EXTS, SPLITS, Listing, ReadOptions, Record
from distfer.errors import ConfigError

Reader = Callable[[Path, ReadOptions], Listing]

#: format name -> reader
FORMATS: dict[str, Reader] = {
    "sfew": sfew.read,
    "rafdb": rafdb.read,
    "fer2013": fer2013.read,
    "affectnet": affectnet.read,
    "expw": expw.read,
    "afe": afe.read,
    "imagefolder": imagefolder.read,
}


def get_reader(name: str) -> Reader:
    """The reader of format ``name``.

    Raises:
        ConfigError: unknown format; lists the known ones.
    """
    try:
        return FORMATS[name]
    except KeyError:
        raise ConfigError(f"unknown dataset format {name!r}; choose one of {', '.join(FORMATS)}") from None


def read_dataset(name: str, root: str | Path, opts: ReadOptions | None = None) -> Listing:
    """List the faces of the dataset at ``root`` in format ``name``."""
    return get_reader(name)(Path(root), opts or ReadOptions())


__all__ = ["FORMATS", "IMAGE_EXTS", "SPLITS", "Listing", "ReadOptions", "Record", "get_reader", "read_dataset"]
