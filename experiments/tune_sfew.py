#!/usr/bin/env python
"""RAF-DB -> SFEW 2.0: CluP sweep over K x rho (and the clustered features) plus baselines.

With no arguments it runs the whole experiment on the embedded synthetic benchmark (generated
on first use) with the ``quick`` preset, on a local Ray (or the cluster at ``RAY_ADDRESS`` /
``--ray-address``), and ends with the results table and the command that opens the MLflow UI.

    python experiments/tune_sfew.py                                     # embedded benchmark
    python experiments/tune_sfew.py --rafdb-root data/RAF-DB/basic --sfew-root data/SFEW2
    python experiments/tune_sfew.py --preset paper --ray-address auto   # on a Ray cluster
    python experiments/tune_sfew.py --resume                            # finish an interrupted sweep

Writes ``<output>/results.json``, ``<output>/results.md``, ``<output>/heatmap_val_acc.png`` and
MLflow runs (``sqlite:////ABS/<output>/mlflow.db`` by default). Shared stages are cached under
``<output>/cache/`` so a second run with other sweep settings reuses them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from distfer.errors import DistferError


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rafdb-root", help="RAF-DB basic folder (EmoLabel/, Image/aligned/); default: embedded benchmark")
    p.add_argument("--sfew-root", help="SFEW 2.0 folder (Train/, Val/ with class folders)")
    p.add_argument("--source-checkpoint", help="a source model.pt (or torchvision ResNet state dict): skips source training")
    p.add_argument("--preset", default="quick", help="quick (CPU, default), paper (GPU cluster), tiny, or a YAML file")
    p.add_argument("--config", help="a YAML file of ExperimentConfig overrides, applied on top of the preset")
    p.add_argument("--num-samples", type=int,
                   help="trials for --search optuna; for grid search, repeats of the whole grid")
    p.add_argument("--search", choices=("grid", "optuna"), help="grid (default) or Optuna TPE")
    p.add_argument("--scheduler", choices=("fifo", "asha"), help="asha stops poor trials early (objective oracle)")
    p.add_argument("--objective", choices=("oracle", "snd", "neg_entropy", "im"),
                   help="oracle = target Val accuracy (uses labels); snd/neg_entropy/im need no target labels")
    p.add_argument("--output-dir", help="output folder (default: outputs/tune_sfew)")
    p.add_argument("--mlflow-uri", help="MLflow tracking URI (default: sqlite:////ABS/<output>/mlflow.db)")
    p.add_argument("--ray-address", help="connect to this Ray cluster (default: RAY_ADDRESS, else a local Ray)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted sweep; finished trials are kept")
    return p.parse_args(argv)


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """ExperimentConfig overrides from the command line (None = keep the preset's value)."""
    from distfer.config import load_yaml_mapping
    from distfer.pipeline.presets import merge

    base: dict[str, Any] = dict(load_yaml_mapping(args.config)) if args.config else {}
    if bool(args.rafdb_root) != bool(args.sfew_root):
        raise DistferError("give both --rafdb-root and --sfew-root (real data), or neither (the embedded benchmark)")
    return merge(base, {
        "output_dir": args.output_dir,
        "source_root": args.rafdb_root,
        "target_root": args.sfew_root,
        "source_format": "rafdb" if args.rafdb_root else None,
        "target_format": "sfew" if args.sfew_root else None,
        "source_checkpoint": args.source_checkpoint,
        "ray_address": args.ray_address,
        "tracking": {"tracking_uri": args.mlflow_uri},
        "sweep": {"num_samples": args.num_samples, "objective": args.objective, "search": args.search,
                  "scheduler": args.scheduler},
    })


def main(argv: Sequence[str] | None = None) -> int:
    from rich.console import Console

    from distfer.pipeline.experiment import run_experiment
    from distfer.pipeline.presets import build_experiment
    from distfer.pipeline.summary import print_summary

    args = parse_args(argv)
    console = Console(stderr=True)
    try:
        exp = build_experiment(args.preset, overrides(args))
        console.print(f"[bold]distfer[/bold] {exp.name}: preset {exp.preset}, {exp.sweep.grid_size()} grid point(s), "
                      f"objective {exp.sweep.objective}, output {exp.output_dir}", highlight=False)
        results = run_experiment(exp, resume=args.resume, console=console)
    except DistferError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print_summary(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
