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

from distfer.pipeline.launch import add_arguments, launch, overrides


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rafdb-root", help="RAF-DB basic folder (EmoLabel/, Image/aligned/); default: embedded benchmark")
    p.add_argument("--sfew-root", help="SFEW 2.0 folder (Train/, Val/ with class folders)")
    add_arguments(p, default_preset="quick")
    args = p.parse_args(argv)
    if bool(args.rafdb_root) != bool(args.sfew_root):
        p.error("give both --rafdb-root and --sfew-root (real data), or neither (the embedded benchmark)")
    real = {"source_root": args.rafdb_root, "target_root": args.sfew_root, "source_format": "rafdb",
            "target_format": "sfew"} if args.rafdb_root else {}
    return launch(args.preset, overrides(args, real), resume=args.resume)


if __name__ == "__main__":
    sys.exit(main())
