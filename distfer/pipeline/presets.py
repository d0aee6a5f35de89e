"""Experiment presets (YAML files in ``experiments/configs/``) and command-line overrides.

A preset is an :class:`~distfer.config.ExperimentConfig` mapping: ``quick`` (CPU, minutes),
``paper`` (GPU cluster, the paper's settings), ``tiny`` (tests) and the paper's four setups
(``afe_expw``, ``afe_fer2013``, ``rafdb_expw``, ``rafdb_fer2013``). A preset may name a
``base`` preset whose mapping it extends (nested sections are merged key by key), and a
``stage_preset`` (``quick``/``paper`` of :mod:`distfer.train.presets`, the one definition of the
training recipes) whose stage sections lie under its own.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from distfer.config import ExperimentConfig, load_yaml_mapping
from distfer.errors import ConfigError

__all__ = ["PRESET_DIR", "available_presets", "load_preset", "merge", "build_experiment"]

PRESET_DIR = Path(__file__).resolve().parents[2] / "experiments" / "configs"


def available_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``top``; nested mappings merge recursively, ``{}`` replaces, ``None`` is skipped."""
    out = copy.deepcopy(dict(base))
    for k, v in top.items():
        if v is None:
            continue
        if isinstance(v, Mapping) and v and isinstance(out.get(k), Mapping):  # {} clears
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def load_preset(name_or_path: str, _seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """The mapping of a preset name (``quick``) or YAML path, with its ``base`` chain merged.

    Raises:
        ConfigError: unknown preset (the message lists them), bad YAML, or a ``base`` cycle.
    """
    p = Path(name_or_path).expanduser()
    if not p.suffix:
        p = PRESET_DIR / f"{name_or_path}.yaml"
        if not p.is_file():
            raise ConfigError(f"unknown preset {name_or_path!r}; choose one of {', '.join(available_presets())} "
                              "or pass a YAML file path")
    data = dict(load_yaml_mapping(p))
    base = data.pop("base", None)
    stage_preset = data.pop("stage_preset", None)
    if stage_preset is not None:
        from distfer.train import presets as stage_presets

        data = merge(stage_presets.experiment_sections(str(stage_preset)), data)
    if base is None:
        return data
    if base in _seen:
        raise ConfigError(f"preset {p} has a 'base' cycle through {base!r}")
    return merge(load_preset(str(base), (*_seen, str(base))), data)


def build_experiment(preset: str, overrides: Mapping[str, Any]) -> ExperimentConfig:
    """Validated ExperimentConfig from a preset plus (nested) overrides.

    Raises:
        ConfigError: naming the preset and the bad key or value.
    """
    data = merge(load_preset(preset), overrides)
    data.setdefault("preset", Path(preset).stem)
    try:
        return ExperimentConfig.from_dict(data)
    except ConfigError as e:
        raise ConfigError(f"preset {preset!r}: {e}") from None
