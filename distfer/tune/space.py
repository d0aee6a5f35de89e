"""The search space of a sweep, and what one trial's config means.

A trial's config (what Tune samples) is a flat mapping::

    {"method": "clup", "clusters": 300, "select_value": 0.3,
     "pseudo.column": "ssl_features", "adapt.mixup_alpha": 0.2}

``method`` is ``clup`` for sweep trials and ``confidence`` / ``centroid`` / ``oracle`` for the
baselines, which run through the same trainable. :func:`trial_overrides` turns such a config
into the keys of :class:`~distfer.config.PseudoLabelConfig` and
:class:`~distfer.config.AdaptConfig` to change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from distfer.config import SweepConfig, parse_select_spec

__all__ = ["param_space", "baseline_space", "trial_overrides", "TrialSettings", "objective_metric"]

#: the metric every trial reports and the sweep maximises (the objective's value)
OBJECTIVE_KEY = "objective"


def objective_metric(sweep: SweepConfig) -> str:
    """Name of the Tune metric the sweep maximises (always reported as ``objective``)."""
    del sweep
    return OBJECTIVE_KEY


def param_space(sweep: SweepConfig) -> dict[str, Any]:
    """Tune param space of the CluP trials: grid search or Optuna choices.

    Returns:
        a mapping for ``Tuner(param_space=...)``: ``tune.grid_search`` lists for ``search: grid``,
        ``tune.choice`` for ``search: optuna`` (TPE samples them).
    """
    from ray import tune

    wrap = tune.grid_search if sweep.search == "grid" else tune.choice
    space: dict[str, Any] = {
        "method": "clup",
        "clusters": wrap(list(sweep.clusters)),
        "select_value": wrap(list(sweep.select_values)),
    }
    for key, values in sweep.space.items():
        space[key] = wrap(list(values))
    return space


def baseline_space(methods: tuple[str, ...], select: str) -> dict[str, Any]:
    """Tune param space running each pseudo-label baseline once (grid over ``method``).

    The oracle comes first: it trains on the whole Train split, the longest of the baselines,
    so with concurrent trials the others run next to it instead of after it.
    """
    from ray import tune

    kind, value = parse_select_spec(select)
    ordered = sorted(methods, key=lambda m: m != "oracle")  # stable: the rest keep their order
    return {"method": tune.grid_search(ordered), "select_kind": kind, "select_value": value}


@dataclass(frozen=True)
class TrialSettings:
    """What one trial runs.

    Attributes:
        method: ``clup`` | ``confidence`` | ``centroid`` | ``oracle``.
        pseudo: PseudoLabelConfig overrides (mode, clusters, select, column...).
        adapt: AdaptConfig overrides.
        clusters: K (None for baselines that do not cluster).
        select: the selection spec, e.g. ``fraction:0.3`` (None for the oracle).
    """

    method: str
    pseudo: dict[str, Any]
    adapt: dict[str, Any]
    clusters: int | None
    select: str | None


_MODE = {"clup": "purity", "confidence": "confidence", "centroid": "centroid"}


def trial_overrides(config: Mapping[str, Any], sweep: SweepConfig) -> TrialSettings:
    """Interpret a sampled trial config.

    Args:
        config: the trial's config as sampled by Tune (see the module docstring).
        sweep: the sweep, for ``select_kind`` of CluP trials.

    Raises:
        ValueError: an unknown method or a key outside ``pseudo.`` / ``adapt.``.
    """
    method = str(config.get("method", "clup"))
    if method not in (*_MODE, "oracle"):
        raise ValueError(f"unknown trial method {method!r}")
    pseudo: dict[str, Any] = {}
    adapt: dict[str, Any] = {}
    for key, value in config.items():
        section, _, name = key.partition(".")
        if section == "pseudo" and name:
            pseudo[name] = value
        elif section == "adapt" and name:
            adapt[name] = value
        elif key not in ("method", "clusters", "select_value", "select_kind"):
            raise ValueError(f"trial config key {key!r} is neither pseudo.<key> nor adapt.<key>")
    clusters = None
    select = None
    if method != "oracle":
        pseudo["mode"] = _MODE[method] if method != "clup" else pseudo.get("mode", "purity")
        kind = str(config.get("select_kind", sweep.select_kind))
        select = f"{kind}:{float(config['select_value']):g}"
        pseudo["select"] = select
        if "clusters" in config:
            clusters = int(config["clusters"])
            pseudo["clusters"] = clusters
    return TrialSettings(method, pseudo, adapt, clusters, select)
