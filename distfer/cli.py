"""`distfer <stage> ...`: parse the arguments, build the stage's config, call the stage.

No logic lives here. Each subcommand is registered by an ``_add_<stage>`` function listed in
``_SUBCOMMANDS``; it defines the arguments and sets ``func`` to a handler that builds the
stage's frozen config (``--config FILE.yaml`` first, command-line flags on top) and calls the
stage's Python API. Stage modules are imported inside the handlers so ``distfer --help`` stays
fast.

User errors (:class:`~distfer.errors.DistferError`) are printed as one line, ``error: ...``,
with exit status 2 and no traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from distfer.errors import DistferError


def _overrides(args: argparse.Namespace, keys: Sequence[str]) -> dict[str, Any]:
    """The flags among ``keys`` that the user actually gave (argparse default ``None``)."""
    return {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}


def build_config(cls: Any, args: argparse.Namespace, keys: Sequence[str], **fixed: Any) -> Any:
    """``cls`` from ``--config`` (if given) with the given flags and ``fixed`` values on top."""
    values = {**_overrides(args, keys), **fixed}
    if getattr(args, "config", None):
        return cls.from_yaml(args.config, **values)
    return cls.from_dict(values)


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, sort_keys=True, default=str))


def _add_config_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE.yaml", help="YAML config; flags given here override it")


# ---- subcommands (one _add_<stage> function each, in pipeline order) -------------------


def _synth(args: argparse.Namespace) -> int:
    from distfer.config import SynthConfig
    from distfer.data.synth import generate, read_meta

    keys = ["out", "preset", "seed", "image_size", "source_train", "source_test", "target_train",
            "target_val", "workers", "overwrite"]
    out = generate(build_config(SynthConfig, args, keys))
    metas = read_meta(out)
    _print_json({layout: {"root": str(out / layout), "splits": m["splits"]} for layout, m in metas.items()})
    return 0


def _add_synth(sub: Any) -> None:
    p = sub.add_parser("synth", help="write the embedded synthetic benchmark (RAF-DB + SFEW 2.0 layouts)")
    p.add_argument("--out", metavar="DIR", help="writes DIR/rafdb (source) and DIR/sfew (target)")
    p.add_argument("--preset", choices=["tiny", "quick", "full"], help="sizes (default quick)")
    p.add_argument("--seed", type=int, help="random seed (default 0); same seed -> identical files")
    p.add_argument("--image-size", type=int, metavar="N", help="written images are N x N (default 64)")
    p.add_argument("--source-train", type=int, metavar="N", help="override the preset's RAF-DB train count")
    p.add_argument("--source-test", type=int, metavar="N", help="override the preset's RAF-DB test count")
    p.add_argument("--target-train", type=int, metavar="N", help="override the preset's SFEW Train count")
    p.add_argument("--target-val", type=int, metavar="N", help="override the preset's SFEW Val count")
    p.add_argument("--workers", type=int, metavar="N", help="rendering processes (default 2)")
    p.add_argument("--overwrite", action="store_true", default=None, help="replace a different existing output")
    _add_config_flag(p)
    p.set_defaults(func=_synth)


def _class_map(items: Sequence[str] | None) -> dict[str, str] | None:
    """``["Angry=Anger", "0=ignore"]`` -> ``{"Angry": "Anger", "0": "ignore"}``."""
    from distfer.errors import ConfigError

    if not items:
        return None
    out = {}
    for item in items:
        folder, sep, cls = item.partition("=")
        if not sep or not folder or not cls:
            raise ConfigError(f"--class-map item {item!r} must look like FOLDER=CLASS (e.g. Angry=Anger or misc=ignore)")
        out[folder] = cls
    return out


def _prepare(args: argparse.Namespace) -> int:
    from rich.console import Console

    from distfer.config import PrepareConfig
    from distfer.data.store import prepare

    keys = ["format", "root", "out", "name", "size", "skip_bad", "workers", "image_encoding", "val_fraction", "split_seed"]
    cfg = build_config(PrepareConfig, args, keys, **({"class_map": cm} if (cm := _class_map(args.class_map)) else {}))
    store = prepare(cfg)
    Console().print(store.counts_table())
    return 0


def _add_prepare(sub: Any) -> None:
    from distfer.config import DATASET_FORMATS

    p = sub.add_parser("prepare", help="decode, crop and resize a dataset once into a FaceStore")
    p.add_argument("--format", choices=DATASET_FORMATS, help="the dataset's on-disk layout")
    p.add_argument("--root", metavar="PATH", help="the dataset's root folder")
    p.add_argument("--out", metavar="STORE", help="folder of stores; writes STORE/NAME")
    p.add_argument("--name", help="store name (default: the format name)")
    p.add_argument("--size", type=int, metavar="N", help="output images are N x N (default 112, at least 8)")
    p.add_argument("--skip-bad", action="store_true", default=None, help="skip corrupt or missing images and report the count")
    p.add_argument("--workers", type=int, metavar="N", help="decoding processes (default: all cores)")
    p.add_argument("--class-map", nargs="+", metavar="FOLDER=CLASS", help="folder -> class (or ignore) for imagefolder/sfew")
    p.add_argument("--image-encoding", choices=["raw", "png"], help="image column: raw uint8 bytes (default) or PNG")
    p.add_argument("--val-fraction", type=float, help="val share for formats without a split (ExpW; default 0.2)")
    p.add_argument("--split-seed", type=int, help="seed of that split (default 0)")
    _add_config_flag(p)
    p.set_defaults(func=_prepare)


def _pseudo_label(args: argparse.Namespace) -> int:
    from distfer.config import PseudoLabelConfig
    from distfer.pseudo.api import run

    keys = ["mode", "select", "clusters", "niter", "seed", "spherical", "init", "column", "feature_prep",
            "drop_outliers", "min_per_class", "iter_clusters", "centroid_cycles", "shards", "device"]
    cfg = build_config(PseudoLabelConfig, args, keys)
    if not args.features or not args.out:
        from distfer.errors import ConfigError

        raise ConfigError("pseudo-label needs --features F (.npy or Parquet embedding dir) and --out OUT.parquet")
    output = run(cfg, args.features, args.out, logits=args.logits, assignments=args.assignments, progress=True)
    s = output.stats
    _print_json({"out": args.out, "selected": s.selected, "selected_fraction": s.selected_fraction,
                 "per_class_after": s.per_class_after, "accuracy_selected": s.accuracy_selected,
                 "inertia": s.inertia})
    return 0


def _add_pseudo_label(sub: Any) -> None:
    p = sub.add_parser("pseudo-label", help="cluster target features and pseudo-label them (CluP)")
    p.add_argument("--features", metavar="F", help="features .npy [N, d] or a Parquet embedding directory")
    p.add_argument("--logits", metavar="L", help="teacher logits .npy [N, 7] (Parquet inputs carry their own)")
    p.add_argument("--out", metavar="OUT.parquet", help="output table; OUT.stats.json is written beside it")
    p.add_argument("--assignments", metavar="A.npy", help="cluster ids [N]: skip k-means")
    p.add_argument("--clusters", type=int, metavar="K", help="k-means clusters (default 1000, at least 7)")
    p.add_argument("--mode", choices=["purity", "soft-purity", "centroid", "confidence"], help="labelling rule (default purity)")
    p.add_argument("--select", metavar="SPEC", help="fraction:RHO (per class, default fraction:0.1) or threshold:TAU")
    p.add_argument("--niter", type=int, help="k-means iterations (default 20)")
    p.add_argument("--seed", type=int, help="k-means seed (default 0)")
    p.add_argument("--spherical", action="store_true", default=None, help="spherical k-means")
    p.add_argument("--init", choices=["random", "kmeans++"], help="k-means init (default random)")
    p.add_argument("--column", choices=["features", "ssl_features", "concat"], help="Parquet feature column to cluster")
    p.add_argument("--feature-prep", choices=["append_one", "l2", "none"], help="feature preparation (default append_one)")
    p.add_argument("--drop-outliers", action="store_true", default=None, help="confidence 0 where the teacher disagrees")
    p.add_argument("--min-per-class", type=int, metavar="N", help="keep at least N samples of every class")
    p.add_argument("--iter-clusters", type=int, metavar="T", help="re-cluster the unselected samples T times (default 1)")
    p.add_argument("--centroid-cycles", type=int, metavar="N", help="refinement cycles of mode centroid")
    p.add_argument("--shards", type=int, metavar="S", help="cluster on S Ray index actors (Parquet inputs; 0 = in-process)")
    p.add_argument("--device", choices=["auto", "cpu", "gpu"], help="faiss device (default auto)")
    _add_config_flag(p)
    p.set_defaults(func=_pseudo_label)


_SUBCOMMANDS: list[Callable[[Any], None]] = [_add_synth, _add_prepare, _add_pseudo_label]


def build_parser() -> argparse.ArgumentParser:
    from distfer import __version__

    parser = argparse.ArgumentParser(
        prog="distfer",
        description="Source-free domain adaptation for facial expression recognition (CluP) on Ray.",
    )
    parser.add_argument("--version", action="version", version=f"distfer {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<stage>", required=True)
    for add in _SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except DistferError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
