#!/usr/bin/env python
"""The paper's four CluP setups (Conti et al., BMVC 2022) on your copies of the datasets.

    python experiments/clup.py --setup rafdb_fer2013 --source-root data/RAF-DB/basic --target-root data/fer2013
    python experiments/clup.py --setup afe_expw --source-root data/AFE --target-root data/ExpW \\
        --ray-address auto --output-dir /mnt/shared/outputs/afe_expw

Setups (experiments/configs/<setup>.yaml, on top of the ``paper`` preset): ``afe_expw`` (K=1000,
rho=0.1), ``afe_fer2013`` (K=250, rho=0.1), ``rafdb_expw`` (K=250, rho=0.3), ``rafdb_fer2013``
(K=1000, rho=0.2); purity mode, mixup 0.2, 50 epochs. The folder layout of each dataset is
described in README.md, "Using real datasets". The run is one CluP trial plus the source-only
baseline; pass ``--config`` to add more (e.g. ``baselines: [source_only, confidence]``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from distfer.pipeline.launch import add_arguments, launch, overrides

SETUPS = ("afe_expw", "afe_fer2013", "rafdb_expw", "rafdb_fer2013")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--setup", required=True, choices=SETUPS, help="which of the paper's setups")
    p.add_argument("--source-root", required=True, help="the source dataset's root folder")
    p.add_argument("--target-root", required=True, help="the target dataset's root folder")
    add_arguments(p, default_preset=None)
    args = p.parse_args(argv)
    values = overrides(args, {"source_root": args.source_root, "target_root": args.target_root,
                              "output_dir": f"outputs/{args.setup}"})
    return launch(args.setup, values, resume=args.resume)


if __name__ == "__main__":
    sys.exit(main())
