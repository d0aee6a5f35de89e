"""Pseudo-labelling: pure labelling rules (:mod:`.labels`), per-class selection (:mod:`.select`)
and the stage API (:mod:`.api`: ``pseudo_label``, ``pseudo_label_sharded``, ``run``)."""

from distfer.pseudo.labels import (
    PseudoLabels,
    centroid_labels,
    class_histogram,
    confidence_labels,
    purity_labels,
    teacher_predictions,
)
from distfer.pseudo.select import PseudoLabelStats, iterative_select, select, selection_stats

__all__ = [
    "PseudoLabelStats",
    "PseudoLabels",
    "centroid_labels",
    "class_histogram",
    "confidence_labels",
    "iterative_select",
    "purity_labels",
    "select",
    "selection_stats",
    "teacher_predictions",
]
