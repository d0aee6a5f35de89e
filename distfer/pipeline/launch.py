"""Command-line front of an experiment, shared by ``experiments/*.py`` and ``distfer sweep``.

:func:`add_arguments` defines the options every entry point takes (output, MLflow, Ray, resume,
sweep objective/search/samples); :func:`overrides` turns them into ExperimentConfig overrides;
:func:`launch` builds the config from a preset, runs it and prints the closing table.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import Any

from distfer.errors import DistferError

__all__ = ["add_arguments", "overrides", "launch"]


def add_arguments(p: argparse.ArgumentParser, *, default_preset: str | None = "quick") -> None:
    """The common options (``--preset`` only when ``default_preset`` is not None)."""
    if default_preset is not None:
        p.add_argument("--preset", default=default_preset,
                       help=f"quick (CPU), paper (GPU cluster), tiny, or a YAML file (default {default_preset})")
    p.add_argument("--config", help="a YAML file of ExperimentConfig overrides, applied on top of the preset")
    p.add_argument("--source-checkpoint", help="a source model.pt (or torchvision ResNet state dict): skips source training")
    p.add_argument("--num-samples", type=int, help="trials for --search optuna; for grid search, repeats of the grid")
    p.add_argument("--search", choices=("grid", "optuna"), help="grid (default) or Optuna TPE")
    p.add_argument("--scheduler", choices=("fifo", "asha"), help="asha stops poor trials early (needs objective oracle)")
    p.add_argument("--objective", choices=("oracle", "snd", "neg_entropy", "im"),
                   help="oracle = target Val accuracy (uses target labels); snd/neg_entropy/im need no target labels")
    p.add_argument("--output-dir", help="output folder (default: the preset's, e.g. outputs/tune_sfew)")
    p.add_argument("--mlflow-uri", help="MLflow tracking URI (default: sqlite:////ABS/<output>/mlflow.db)")
    p.add_argument("--ray-address", help="connect to this Ray cluster (default: RAY_ADDRESS, else start a local Ray)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted sweep; finished trials are kept")


def overrides(args: argparse.Namespace, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """ExperimentConfig overrides: ``--config`` file, then ``extra``, then the flags (None = keep)."""
    from distfer.config import load_yaml_mapping
    from distfer.pipeline.presets import merge

    base: dict[str, Any] = dict(load_yaml_mapping(args.config)) if getattr(args, "config", None) else {}
    return merge(merge(base, dict(extra or {})), {
        "output_dir": args.output_dir,
        "source_checkpoint": args.source_checkpoint,
        "ray_address": args.ray_address,
        "tracking": {"tracking_uri": args.mlflow_uri},
        "sweep": {"num_samples": args.num_samples, "objective": args.objective, "search": args.search,
                  "scheduler": args.scheduler},
    })


def launch(preset: str, values: Mapping[str, Any], *, resume: bool) -> int:
    """Build, run and summarise one experiment; user errors print one line and return 2."""
    from rich.console import Console

    from distfer.pipeline.experiment import run_experiment
    from distfer.pipeline.presets import build_experiment
    from distfer.pipeline.summary import print_summary

    console = Console(stderr=True)
    try:
        exp = build_experiment(preset, values)
        console.print(f"[bold]distfer[/bold] {exp.name}: preset {exp.preset}, {exp.source_format} -> "
                      f"{exp.target_format}, {exp.sweep.grid_size()} grid point(s), objective "
                      f"{exp.sweep.objective}, output {exp.output_dir}", highlight=False)
        results = run_experiment(exp, resume=resume, console=console)
    except DistferError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished stages and trials are kept; run again with --resume to continue",
              file=sys.stderr)
        return 130
    print_summary(results)
    return 0
