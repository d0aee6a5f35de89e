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



# ---- training stages (owner: training): train-source, pretrain, embed, adapt, evaluate ----
_TRAINER_FLAGS = {"workers": "num_workers", "cpus_per_worker": "cpus_per_worker", "use_gpu": "use_gpu",
                  "storage_path": "storage_path", "max_failures": "max_failures"}


def _train_config(cls: Any, stage: str, args: argparse.Namespace, keys: Sequence[str]) -> Any:
    """Preset (``--preset``) < ``--config`` YAML < flags; trainer flags merge into ``trainer``."""
    from distfer.config import load_yaml_mapping
    from distfer.train import presets

    data: dict[str, Any] = presets.get(args.preset, stage) if getattr(args, "preset", None) else {}
    if getattr(args, "config", None):
        for k, v in load_yaml_mapping(args.config).items():
            data[k] = {**data.get(k, {}), **v} if isinstance(v, dict) and isinstance(data.get(k), dict) else v
    data.update(_overrides(args, keys))
    trainer = {dst: getattr(args, src) for src, dst in _TRAINER_FLAGS.items() if getattr(args, src, None) is not None}
    if trainer:
        data["trainer"] = {**dict(data.get("trainer") or {}), **trainer}
    return cls.from_dict(data)


def _add_train_flags(p: argparse.ArgumentParser, *, trainer: bool = True) -> None:
    p.add_argument("--preset", choices=["quick", "paper"], help="start from a preset (flags override it)")
    if trainer:
        p.add_argument("--workers", type=int, metavar="N", help="Ray Train workers (default 1; 0 = run in this process)")
        p.add_argument("--cpus-per-worker", type=float, metavar="C", help="CPUs per worker (default 1)")
        p.add_argument("--use-gpu", action="store_true", default=None, help="a GPU per worker (NCCL)")
        p.add_argument("--storage-path", metavar="DIR", help="Ray Train run storage (checkpoints; resume)")
        p.add_argument("--max-failures", type=int, metavar="N", help="worker-group restarts allowed")
        p.add_argument("--run-name", help="Ray Train run name (same name + storage resumes)")
        p.add_argument("--epochs", type=int, help="training epochs")
        p.add_argument("--batch-size", type=int, help="batch size per worker")
        p.add_argument("--lr", type=float, help="learning rate")
        p.add_argument("--seed", type=int, help="random seed")
    _add_config_flag(p)


def _print_train(res: Any) -> int:
    _print_json({"model": str(res.model_path), "start_epoch": res.start_epoch, "final": res.final,
                 "run": res.run_path})
    return 0


_COMMON_TRAIN_KEYS = ["store", "out", "epochs", "batch_size", "lr", "seed", "run_name"]


def _train_source_cmd(args: argparse.Namespace) -> int:
    from distfer.config import TrainSourceConfig
    from distfer.train import train_source

    keys = [*_COMMON_TRAIN_KEYS, "arch", "schedule", "label_smoothing", "weight_norm"]
    return _print_train(train_source(_train_config(TrainSourceConfig, "train-source", args, keys)))


def _add_train_source(sub: Any) -> None:
    p = sub.add_parser("train-source", help="train the supervised source model on Ray Train")
    p.add_argument("--store", metavar="STORE", help="labelled source FaceStore folder")
    p.add_argument("--out", metavar="DIR", help="writes DIR/model.pt and DIR/history.json")
    p.add_argument("--arch", help="backbone: small, resnet18[_small], resnet34[_small], resnet50[_small]")
    p.add_argument("--schedule", choices=["cosine", "exponential", "constant"], help="LR schedule")
    p.add_argument("--label-smoothing", type=float, help="label smoothing (default 0.1)")
    p.add_argument("--weight-norm", action="store_true", default=None, help="weight-normalised head")
    _add_train_flags(p)
    p.set_defaults(func=_train_source_cmd)


def _pretrain_cmd(args: argparse.Namespace) -> int:
    from distfer.config import PretrainConfig
    from distfer.train import pretrain

    keys = [*_COMMON_TRAIN_KEYS, "arch", "init", "prototypes", "local_crops", "global_size", "local_size"]
    return _print_train(pretrain(_train_config(PretrainConfig, "pretrain", args, keys)))


def _add_pretrain(sub: Any) -> None:
    p = sub.add_parser("pretrain", help="SwAV self-supervised pretraining on the target store")
    p.add_argument("--store", metavar="STORE", help="target FaceStore folder (labels unused)")
    p.add_argument("--out", metavar="DIR", help="writes DIR/model.pt (kind ssl) and DIR/history.json")
    p.add_argument("--arch", help="backbone (see train-source)")
    p.add_argument("--init", metavar="MODEL", help="start the encoder from this model.pt")
    p.add_argument("--prototypes", type=int, help="SwAV prototypes (5000 in the paper)")
    p.add_argument("--local-crops", type=int, help="number of low-resolution crops")
    p.add_argument("--global-size", type=int, help="global crop size (default: the store's)")
    p.add_argument("--local-size", type=int, help="local crop size (default: half the global)")
    _add_train_flags(p)
    p.set_defaults(func=_pretrain_cmd)


def _embed_cmd(args: argparse.Namespace) -> int:
    from distfer.config import EmbedConfig
    from distfer.train import embed

    keys = ["store", "teacher", "encoder", "out", "splits", "batch_size", "num_actors", "cpus_per_actor", "use_gpu"]
    res = embed(_train_config(EmbedConfig, "embed", args, keys))
    _print_json({"out": str(res.out), "splits": {s: str(d) for s, d in res.dirs.items()}})
    return 0


def _add_embed(sub: Any) -> None:
    p = sub.add_parser("embed", help="teacher logits/features (+ SSL features) into Parquet shards")
    p.add_argument("--store", metavar="STORE", help="target FaceStore folder")
    p.add_argument("--teacher", metavar="MODEL", help="source model.pt (or a torchvision ResNet state dict)")
    p.add_argument("--encoder", metavar="MODEL", help="SSL model.pt: adds ssl_features")
    p.add_argument("--out", metavar="DIR", help="writes DIR/<split>/part-*.parquet")
    p.add_argument("--splits", nargs="+", help="splits to embed (default train val)")
    p.add_argument("--batch-size", type=int, help="rows per actor batch (default 256)")
    p.add_argument("--num-actors", type=int, help="actor pool size (default 2)")
    p.add_argument("--cpus-per-actor", type=float, help="CPUs per actor (default 0.5)")
    p.add_argument("--use-gpu", action="store_true", default=None, help="a GPU per actor")
    _add_train_flags(p, trainer=False)
    p.set_defaults(func=_embed_cmd)


def _adapt_cmd(args: argparse.Namespace) -> int:
    from distfer.config import AdaptConfig
    from distfer.train import adapt

    keys = [*_COMMON_TRAIN_KEYS, "init", "pseudo", "targets", "mixup_alpha", "mixaug", "keep_head", "weight_norm"]
    return _print_train(adapt(_train_config(AdaptConfig, "adapt", args, keys)))


def _add_adapt(sub: Any) -> None:
    p = sub.add_parser("adapt", help="fine-tune an encoder + fresh head on selected pseudo-labels")
    p.add_argument("--store", metavar="STORE", help="target FaceStore folder")
    p.add_argument("--init", metavar="MODEL", help="SSL (or source) model.pt whose encoder starts adaptation")
    p.add_argument("--pseudo", metavar="FILE", help="pseudo-label Parquet (index, label, soft, selected, ...)")
    p.add_argument("--out", metavar="DIR", help="writes DIR/model.pt (kind adapted) and DIR/history.json")
    p.add_argument("--targets", choices=["hard", "soft"], help="hard labels (CE) or soft (KL)")
    p.add_argument("--mixup-alpha", type=float, help="mixup Beta(a, a); 0 disables (default 0.2)")
    p.add_argument("--mixaug", type=float, help="weight of the mixed batch's loss on its dominant labels")
    p.add_argument("--keep-head", action="store_true", default=None, help="keep the init model's head")
    p.add_argument("--weight-norm", action="store_true", default=None, help="weight-normalised head")
    _add_train_flags(p)
    p.set_defaults(func=_adapt_cmd)


def _evaluate_cmd(args: argparse.Namespace) -> int:
    from distfer.config import EvaluateConfig
    from distfer.train import evaluate

    m = evaluate(_train_config(EvaluateConfig, "evaluate", args, ["store", "model", "split", "out", "batch_size"]))
    _print_json({k: m[k] for k in ("accuracy", "macro_f1", "mean_class_accuracy", "per_class_accuracy", "n", "out")})
    return 0


def _add_evaluate(sub: Any) -> None:
    p = sub.add_parser("evaluate", help="accuracy, macro-F1, per-class accuracy, confusion matrix")
    p.add_argument("--store", metavar="STORE", help="FaceStore folder")
    p.add_argument("--model", metavar="MODEL", help="model.pt to evaluate")
    p.add_argument("--split", help="split (default val)")
    p.add_argument("--out", metavar="FILE.json", help="metrics JSON (default next to the model)")
    p.add_argument("--batch-size", type=int, help="inference batch size (default 256)")
    _add_config_flag(p)
    p.set_defaults(func=_evaluate_cmd)

def _sweep_cmd(args: argparse.Namespace) -> int:
    from distfer.pipeline.launch import launch, overrides

    real = {}
    if args.source_root or args.target_root:
        real = {"source_root": args.source_root, "target_root": args.target_root,
                "source_format": args.source_format, "target_format": args.target_format}
    return launch(args.preset, overrides(args, real), resume=args.resume)


def _add_sweep(sub: Any) -> None:
    from distfer.pipeline.launch import add_arguments

    p = sub.add_parser("sweep", help="the whole experiment: shared stages, baselines, CluP sweep (Ray Tune + MLflow)")
    p.add_argument("--source-format", help="source dataset format (with --source-root)")
    p.add_argument("--source-root", help="source dataset folder (default: the embedded synthetic benchmark)")
    p.add_argument("--target-format", help="target dataset format (with --target-root)")
    p.add_argument("--target-root", help="target dataset folder")
    add_arguments(p, default_preset="quick")
    p.set_defaults(func=_sweep_cmd)


def _ui_cmd(args: argparse.Namespace) -> int:
    from distfer.tracking.ui import serve_ui

    return serve_ui(args.output, host=args.host, port=args.port)


def _add_ui(sub: Any) -> None:
    p = sub.add_parser("ui", help="serve the MLflow UI of an experiment's output folder on 127.0.0.1")
    p.add_argument("--output", required=True, metavar="DIR", help="the experiment's output folder (holds mlflow.db)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=5000, help="port (default 5000)")
    p.set_defaults(func=_ui_cmd)


_SUBCOMMANDS: list[Callable[[Any], None]] = [_add_synth, _add_prepare, _add_train_source, _add_pretrain, _add_embed, _add_pseudo_label, _add_adapt, _add_evaluate, _add_sweep, _add_ui]


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
        while isinstance(getattr(e, "cause", None), DistferError):
            e = e.cause  # raised inside a Ray actor/task: print the user's error, not Ray's traceback
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
