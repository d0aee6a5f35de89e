"""The sweep's results: rows from Tune, the best trial, the criterion's pick, results.json/.md.

Pure functions over plain dicts (no Ray, no MLflow), so the report logic is testable alone.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from distfer.fsutil import atomic_write_text
from distfer.tune.criteria import spearman

__all__ = ["trial_row", "best_and_pick", "by_feature_column", "heatmap_grid", "markdown_table", "write_results"]

_FIELDS = ("val_acc", "val_macro_f1", "pseudo_acc", "selected_fraction", "objective", "mlflow_run_id",
           "trial_seconds")


def _num(v: Any) -> float | None:
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def trial_row(config: Mapping[str, Any], metrics: Mapping[str, Any], *, select_kind: str, criterion: str,
              trial_id: str, error: str | None = None) -> dict[str, Any]:
    """One results row from a trial's sampled config and last reported metrics."""
    row: dict[str, Any] = {"trial_id": trial_id, "method": config.get("method", "clup")}
    if row["method"] == "clup":
        row["clusters"] = int(config["clusters"])
    if "select_value" in config and row["method"] != "oracle":
        row[str(config.get("select_kind", select_kind))] = float(config["select_value"])
    for k, v in config.items():
        if "." in k:
            row[k] = v
    for k in _FIELDS:
        v = metrics.get(k)
        row[k] = v if k == "mlflow_run_id" else _num(v)
    row["criterion"] = _num(metrics.get(f"criterion_{criterion}"))
    timing = {k.split("/", 1)[1]: _num(v) for k, v in metrics.items() if k.startswith("time/")}
    if timing:
        row["timing"] = timing
    row["status"] = "error" if error else "ok"
    if not error and row["val_acc"] is None and metrics.get("val/acc") is not None:
        # stopped early (ASHA): no final report; keep its last epoch's Val metrics
        row.update(val_acc=_num(metrics.get("val/acc")), val_macro_f1=_num(metrics.get("val/macro_f1")),
                   status="stopped")
    if error:
        row["error"] = error
    return row


def best_and_pick(trials: Sequence[Mapping[str, Any]], *, objective: str, criterion: str) -> tuple[dict | None, dict]:
    """The best trial by the objective, and the label-free criterion's pick and quality.

    Returns:
        ``(best, selection)``: ``best`` is the trial row with the highest ``objective`` plus
        ``selected_by``; ``selection`` holds ``criterion``, ``spearman_vs_val_acc`` (across
        trials) and ``picked_val_acc`` (Val accuracy of the trial the criterion ranks first).
    """
    ok = [t for t in trials if t.get("status") == "ok" and t.get("val_acc") is not None]
    best = None
    scored = [t for t in ok if t.get("objective") is not None]
    if scored:
        best = dict(max(scored, key=lambda t: t["objective"]))
        best["selected_by"] = ("oracle: target Val accuracy (uses target labels)" if objective == "oracle"
                               else f"{objective} (label-free)")
    crit = [t for t in ok if t.get("criterion") is not None]
    selection: dict[str, Any] = {"criterion": criterion, "spearman_vs_val_acc": None, "picked_val_acc": None,
                                 "picked_trial_id": None, "oracle_best_val_acc": None}
    if crit:
        rho = spearman(np.array([t["criterion"] for t in crit]), np.array([t["val_acc"] for t in crit]))
        pick = max(crit, key=lambda t: t["criterion"])
        selection.update(spearman_vs_val_acc=None if math.isnan(rho) else rho, picked_val_acc=pick["val_acc"],
                         picked_trial_id=pick["trial_id"], oracle_best_val_acc=max(t["val_acc"] for t in crit))
    return best, selection


def by_feature_column(trials: Sequence[Mapping[str, Any]], default_column: str) -> dict[str, dict[str, Any]]:
    """Best and mean Val accuracy of the CluP trials per clustered feature column."""
    groups: dict[str, list[float]] = {}
    for t in trials:
        if t.get("status") == "ok" and t.get("val_acc") is not None:
            groups.setdefault(str(t.get("pseudo.column", default_column)), []).append(t["val_acc"])
    return {c: {"trials": len(v), "best_val_acc": max(v), "mean_val_acc": float(np.mean(v))}
            for c, v in sorted(groups.items())}


def heatmap_grid(trials: Sequence[Mapping[str, Any]], select_kind: str) -> tuple[list[int], list[float], np.ndarray]:
    """K x threshold grid of the best Val accuracy per cell (over any other swept keys)."""
    ok = [t for t in trials if t.get("status") == "ok" and t.get("val_acc") is not None and select_kind in t]
    ks = sorted({int(t["clusters"]) for t in ok})
    vs = sorted({float(t[select_kind]) for t in ok})
    grid = np.full((len(ks), len(vs)), np.nan)
    for t in ok:
        i, j = ks.index(int(t["clusters"])), vs.index(float(t[select_kind]))
        grid[i, j] = t["val_acc"] if np.isnan(grid[i, j]) else max(grid[i, j], t["val_acc"])
    return ks, vs, grid


def _fmt(v: Any, pct: bool = True) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{100 * v:.1f}" if pct else f"{v:.4g}"
    return str(v)


def markdown_table(results: Mapping[str, Any]) -> str:
    """The results table (baselines, every trial, best, criterion pick) as Markdown."""
    kind = results["sweep"]["select_kind"]
    extra = sorted({k for t in results["trials"] for k in t if "." in k})
    head = ["run", "K", kind, *extra, "val acc %", "val macro-F1 %", "pseudo acc %", "selected %",
            f"{results['selection']['criterion']}"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def row(name: str, r: Mapping[str, Any]) -> str:
        cells = [name, _fmt(r.get("clusters")), _fmt(r.get(kind), pct=False), *[_fmt(r.get(k), pct=False) for k in extra],
                 _fmt(r.get("val_acc")), _fmt(r.get("val_macro_f1")), _fmt(r.get("pseudo_acc")),
                 _fmt(r.get("selected_fraction")), _fmt(r.get("criterion"), pct=False)]
        return "| " + " | ".join(cells) + " |"

    for name, b in results["baselines"].items():
        lines.append(row(f"baseline: {name}", b))
    for t in results["trials"]:
        lines.append(row(f"CluP {t['trial_id'][-5:]}" + (" (error)" if t.get("status") != "ok" else ""), t))
    if results.get("best"):
        lines.append(row(f"**best by {results['sweep']['objective']}**", results["best"]))
    sel = results["selection"]
    text = "\n".join(lines)
    if sel.get("picked_val_acc") is not None:
        rho = sel["spearman_vs_val_acc"]
        text += (f"\n\nLabel-free criterion `{sel['criterion']}`: Spearman vs Val accuracy across trials = "
                 f"{'n/a' if rho is None else f'{rho:.3f}'}; its pick has Val accuracy "
                 f"{100 * sel['picked_val_acc']:.1f} % (best trial: {100 * sel['oracle_best_val_acc']:.1f} %).")
    return text + "\n"


def write_results(out: str | Path, results: Mapping[str, Any]) -> tuple[Path, Path]:
    """Write ``results.json`` and ``results.md`` into ``out`` (atomically)."""
    out = Path(out)
    j = atomic_write_text(out / "results.json", json.dumps(results, indent=2, default=str))
    md = (f"# {results['experiment']['name']}: {results['experiment']['source']} -> "
          f"{results['experiment']['target']}\n\n" + markdown_table(results)
          + "\n\nStage seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in results["stage_seconds"].items())
          + f"\n\nMLflow: `{results['ui_command']}`\n")
    m = atomic_write_text(out / "results.md", md)
    return j, m
