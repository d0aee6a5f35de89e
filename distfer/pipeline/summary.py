"""The closing table of a sweep, printed with rich (the same rows as ``results.md``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["print_summary"]


def _pct(v: Any) -> str:
    return "-" if v is None else f"{100 * float(v):.1f}"


def print_summary(results: Mapping[str, Any], console: Console | None = None) -> None:
    """Baselines, every trial, the best by the objective and the criterion's pick; then the UI command."""
    console = console or Console()
    kind = results["sweep"]["select_kind"]
    crit = results["selection"]["criterion"]
    extra = sorted({k for t in results["trials"] for k in t if "." in k})
    table = Table(title=f"{results['experiment']['source']} -> {results['experiment']['target']} "
                        f"({results['experiment']['name']}, Val accuracy on the target)")
    for col in ("run", "K", kind, *extra, "val acc %", "macro-F1 %", "pseudo acc %", "selected %", crit):
        table.add_column(col, justify="left" if col == "run" else "right")

    def add(name: str, r: Mapping[str, Any], style: str | None = None) -> None:
        c = r.get("criterion")
        table.add_row(name, str(r.get("clusters", "-")), "-" if r.get(kind) is None else f"{r[kind]:g}",
                      *[str(r.get(k, "-")) for k in extra], _pct(r.get("val_acc")), _pct(r.get("val_macro_f1")),
                      _pct(r.get("pseudo_acc")), _pct(r.get("selected_fraction")),
                      "-" if c is None else f"{c:.4g}", style=style)

    for name, b in results["baselines"].items():
        add(name, b, "dim")
    for t in results["trials"]:
        add(f"clup {t['trial_id'][-5:]}" + ("" if t.get("status") == "ok" else f" ({t.get('status')})"), t)
    best = results.get("best")
    if best:
        add(f"best ({results['sweep']['objective']})", best, "bold green")
    sel = results["selection"]
    pick = next((t for t in results["trials"] if t["trial_id"] == sel.get("picked_trial_id")), None)
    if pick:
        add(f"{crit} pick", pick, "bold cyan")
    console.print(table)
    if sel.get("spearman_vs_val_acc") is not None:
        console.print(f"{crit}: Spearman vs Val accuracy across trials {sel['spearman_vs_val_acc']:.3f}; "
                      f"its pick {_pct(sel['picked_val_acc'])} % vs best {_pct(sel['oracle_best_val_acc'])} %")
    so = results["baselines"].get("source_only", {}).get("val_acc")
    if best and so is not None:
        console.print(f"best CluP trial vs source-only: {100 * (best['val_acc'] - so):+.1f} points")
    for col, g in results.get("by_features", {}).items():
        console.print(f"clustered on {col}: best {_pct(g['best_val_acc'])} %, mean {_pct(g['mean_val_acc'])} % "
                      f"over {g['trials']} trial(s)")
    secs = results["stage_seconds"]
    console.print("stage seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in secs.items()))
    console.print(f"results: {results['experiment']['output_dir']}/results.json, results.md")
    console.print(f"MLflow UI: [bold]{results['ui_command']}[/bold]  (then open http://127.0.0.1:5000)")
