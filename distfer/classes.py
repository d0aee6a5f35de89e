"""The seven canonical expression classes and name/id normalisation.

distfer uses RAF-DB's basic-expression order everywhere (ids 0..6). Each dataset reader maps
its own ids or folder names into these ids; ``-1`` marks an unknown label.
"""

from __future__ import annotations

import numpy as np

from distfer.errors import DataError

#: Canonical class names, in RAF-DB order. ``CLASSES[i]`` is class id ``i``.
CLASSES: tuple[str, ...] = ("Surprise", "Fear", "Disgust", "Happiness", "Sadness", "Anger", "Neutral")
NUM_CLASSES: int = len(CLASSES)
UNKNOWN: int = -1

SURPRISE, FEAR, DISGUST, HAPPINESS, SADNESS, ANGER, NEUTRAL = range(NUM_CLASSES)

# Every spelling a dataset uses for a class (lower-case, no separators) -> canonical id.
_ALIASES: dict[str, int] = {
    "surprise": SURPRISE, "surprised": SURPRISE, "su": SURPRISE,
    "fear": FEAR, "fearful": FEAR, "afraid": FEAR, "scared": FEAR, "fe": FEAR,
    "disgust": DISGUST, "disgusted": DISGUST, "di": DISGUST,
    "happiness": HAPPINESS, "happy": HAPPINESS, "joy": HAPPINESS, "ha": HAPPINESS,
    "sadness": SADNESS, "sad": SADNESS, "sa": SADNESS,
    "anger": ANGER, "angry": ANGER, "an": ANGER,
    "neutral": NEUTRAL, "ne": NEUTRAL, "calm": NEUTRAL,
}


def _key(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def class_id(name: str) -> int:
    """Canonical id of a class name in any common spelling (``"Happy"``, ``"happiness"``...).

    Raises:
        DataError: the name is not one of the seven expressions; the message lists them.
    """
    try:
        return _ALIASES[_key(name)]
    except KeyError:
        raise DataError(
            f"unknown expression class {name!r}; expected one of {', '.join(CLASSES)} "
            "(or a common spelling such as Angry, Happy, Sad, Surprised)"
        ) from None


def is_class_name(name: str) -> bool:
    """True when ``name`` is a spelling of one of the seven expressions."""
    return _key(name) in _ALIASES


def class_name(cid: int) -> str:
    """Canonical name of class id ``cid`` (``"unknown"`` for -1).

    Raises:
        DataError: ``cid`` is outside -1..6.
    """
    if cid == UNKNOWN:
        return "unknown"
    if not 0 <= cid < NUM_CLASSES:
        raise DataError(f"class id {cid} is outside 0..{NUM_CLASSES - 1}")
    return CLASSES[cid]


def remap(ids: np.ndarray, table: dict[int, int], *, what: str) -> np.ndarray:
    """Map dataset-specific ids to canonical ids through ``table``.

    Args:
        ids: integer array of the dataset's own label ids.
        table: dataset id -> canonical id (``-1`` or absent ids are errors unless in the table).
        what: name of the source (file) for error messages.

    Returns:
        int64 array of canonical ids, same shape as ``ids``.

    Raises:
        DataError: some id is not in ``table``; names the first offending id and ``what``.
    """
    ids = np.asarray(ids, dtype=np.int64)
    keys = np.fromiter(table.keys(), dtype=np.int64)
    vals = np.fromiter(table.values(), dtype=np.int64)
    known = np.isin(ids, keys)
    if not known.all():
        bad = int(ids[~known][0])
        raise DataError(
            f"{what}: label id {bad} is out of range; expected one of {sorted(table)}"
        )
    order = np.argsort(keys)
    return vals[order][np.searchsorted(keys[order], ids)]


def counts_per_class(labels: np.ndarray) -> dict[str, int]:
    """Number of samples per canonical class name (plus ``unknown`` when present)."""
    labels = np.asarray(labels, dtype=np.int64)
    out = {name: int(c) for name, c in zip(CLASSES, np.bincount(labels[labels >= 0], minlength=NUM_CLASSES))}
    n_unknown = int((labels < 0).sum())
    if n_unknown:
        out["unknown"] = n_unknown
    return out
