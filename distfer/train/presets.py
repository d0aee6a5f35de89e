"""Stage presets: ``quick`` (CPU, minutes) and ``paper`` (the paper's settings, GPU workers).

``get(name, stage)`` returns a partial config mapping (no ``store``/``out``) for a stage's
config class; the CLI's ``--preset`` applies it under ``--config`` and the flags. This module
is the one definition of the recipes: an experiment YAML naming ``stage_preset: quick``
(experiments/configs/quick.yaml) gets its stage sections from :func:`experiment_sections`.
"""

from __future__ import annotations

import copy
from typing import Any

from distfer.errors import ConfigError

STAGES = ("train-source", "pretrain", "embed", "adapt", "evaluate")

_CPU = {"num_workers": 1, "cpus_per_worker": 1.0, "torch_threads": 2}
_GPU = {"num_workers": 1, "use_gpu": True, "cpus_per_worker": 4.0}

_PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "quick": {  # 32 px stores, the `small` CNN; whole default pipeline in minutes on 2 cores
        "train-source": {"arch": "small", "epochs": 4, "batch_size": 64, "lr": 0.05, "trainer": _CPU},
        "pretrain": {"arch": "small", "epochs": 3, "batch_size": 64, "prototypes": 100,
                     "global_crops": 2, "local_crops": 2, "local_size": 16,
                     "freeze_prototypes_steps": 20, "trainer": _CPU},
        "embed": {"num_actors": 2, "cpus_per_actor": 0.5},
        "adapt": {"epochs": 3, "batch_size": 64, "lr": 0.05, "mixup_alpha": 0.2, "trainer": _CPU},
        "evaluate": {},
    },
    "paper": {  # ResNet-18 at 112 px, SwAV 5000 prototypes, CluP's adaptation settings
        "train-source": {"arch": "resnet18_small", "epochs": 40, "batch_size": 64, "lr": 0.05,
                         "trainer": _GPU},
        "pretrain": {"arch": "resnet18_small", "epochs": 100, "batch_size": 128, "prototypes": 5000,
                     "global_crops": 2, "local_crops": 6, "global_size": 112, "local_size": 48,
                     "freeze_prototypes_steps": 300, "trainer": _GPU},
        "embed": {"num_actors": 2, "cpus_per_actor": 2.0, "use_gpu": True},
        "adapt": {"epochs": 50, "batch_size": 32, "lr": 0.1, "momentum": 0.9, "nesterov": True,
                  "weight_decay": 5e-4, "schedule": "cosine", "mixup_alpha": 0.2, "trainer": _GPU},
        "evaluate": {},
    },
}


def names() -> tuple[str, ...]:
    return tuple(_PRESETS)


def get(name: str, stage: str) -> dict[str, Any]:
    """The preset ``name``'s values for ``stage`` (a fresh copy).

    Raises:
        ConfigError: unknown preset or stage; the message lists the choices.
    """
    if name not in _PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(_PRESETS)}")
    if stage not in _PRESETS[name]:
        raise ConfigError(f"unknown stage {stage!r}; choose one of {', '.join(STAGES)}")
    return copy.deepcopy(_PRESETS[name][stage])


#: experiment-config section of each stage (ExperimentConfig field names)
_SECTIONS = {"train-source": "train_source", "pretrain": "pretrain", "embed": "embed", "adapt": "adapt"}


def experiment_sections(name: str) -> dict[str, Any]:
    """The preset's stage values as ExperimentConfig sections (``train_source``, ``pretrain``,
    ``embed``, ``adapt``), with the train-source stage's Ray Train resources as the shared
    ``trainer`` (a stage whose resources differ keeps its own ``trainer`` key)."""
    out: dict[str, Any] = {}
    shared = get(name, "train-source").get("trainer")
    for stage, key in _SECTIONS.items():
        values = get(name, stage)
        if "trainer" in values and values["trainer"] == shared:
            del values["trainer"]
        out[key] = values
    if shared is not None:
        out["trainer"] = shared
    return out
