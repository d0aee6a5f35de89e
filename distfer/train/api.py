"""Python API of the training stages: ``train_source``, ``pretrain``, ``adapt``, ``evaluate``.

Each stage validates its inputs in the driver (store, labels, batch size, checkpoints,
pseudo-labels) before any worker starts, runs its loop on Ray Train through
:func:`distfer.train.trainer.fit`, and writes ``<out>/model.pt`` and ``<out>/history.json``
atomically. ``callbacks`` are extra Ray Train callbacks (``TuneReportCallback()`` inside a
Tune trial); ``run_name`` names the Ray Train run (default: stage + content fingerprint, so
running the same stage again resumes or reuses it).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from distfer.config import AdaptConfig, EvaluateConfig, PretrainConfig, TrainSourceConfig
from distfer.errors import ConfigError
from distfer.fsutil import atomic_write_text, ensure_output_dir
from distfer.models import FERModel, available, load_model, save_model
from distfer.models.checkpoint import Kind
from distfer.train import checks
from distfer.train.evaluate import classification_metrics

MODEL_FILE = "model.pt"
HISTORY_FILE = "history.json"


@dataclass(frozen=True)
class TrainResult:
    """A finished training stage: the model file, per-epoch metrics and the Ray run folder."""

    model_path: Path
    history: list[dict[str, Any]]
    start_epoch: int
    run_path: str

    @property
    def final(self) -> dict[str, Any]:
        """Metrics of the last epoch."""
        return self.history[-1] if self.history else {}


def _file_hash(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def _check_arch(arch: str) -> None:
    if arch not in available():
        raise ConfigError(f"unknown architecture {arch!r}; choose one of {', '.join(available())}")


def _finish(
    stage: str, cfg: Any, fit_result: Any, model: FERModel, kind: Kind, info: dict[str, Any]
) -> TrainResult:
    """Load the last checkpoint's weights into ``model``, write model.pt + history.json."""
    from distfer.train.common import STATE_FILE

    state = torch.load(fit_result.checkpoint_dir / STATE_FILE, map_location="cpu", weights_only=True)
    sd = state["model"]
    if stage == "pretrain":  # SwAVNet state: keep the encoder; the head stays freshly initialised
        model.encoder.load_state_dict({k[8:]: v for k, v in sd.items() if k.startswith("encoder.")})
    else:
        model.load_state_dict(sd)
    history = fit_result.history or list(state["history"])
    out = ensure_output_dir(cfg.out, what=f"{stage} output folder")
    path = save_model(model, out / MODEL_FILE, kind=kind, info={**info, "final": history[-1]})
    atomic_write_text(out / HISTORY_FILE, json.dumps(history, indent=2))
    return TrainResult(path, history, fit_result.start_epoch, fit_result.run_path)


def _run(stage: str, loop: Any, cfg: Any, extra: dict[str, Any], run_name: str | None,
         callbacks: Sequence[Any] | None, hooks: dict[str, Any] | None, inputs: Sequence[str]) -> Any:
    from distfer.train.trainer import fit

    name = run_name or cfg.run_name or f"{stage}-{cfg.fingerprint(*inputs)}"
    loop_config = {"cfg": cfg.to_dict(), **extra, **(hooks or {})}
    return fit(loop, loop_config, cfg.trainer, name, callbacks=callbacks)


def train_source(
    cfg: TrainSourceConfig, *, callbacks: Sequence[Any] | None = None, run_name: str | None = None,
    _hooks: dict[str, Any] | None = None,
) -> TrainResult:
    """Train the supervised source model (``kind="source"``) on ``cfg.store``.

    Raises:
        DataError: missing/empty/unlabelled store, batch size larger than the data.
        ConfigError: unknown architecture.
    """
    from distfer.train.loops import train_source_loop

    _check_arch(cfg.arch)
    store = checks.open_split(cfg.store, cfg.split)
    n = checks.labelled_rows(store, cfg.split, stage="train-source")
    checks.batch_fits(cfg.batch_size, n, cfg.trainer.num_workers, what=f"labelled rows of split {cfg.split!r}")
    val = checks.has_labelled(store, cfg.val_split)
    res = _run("train-source", train_source_loop, cfg, {"val": val, "input_size": store.image_size},
               run_name, callbacks, _hooks, [store.fingerprint])
    model = FERModel(cfg.arch, weight_norm=cfg.weight_norm, input_size=store.image_size)
    return _finish("train-source", cfg, res, model, "source", {"store": store.fingerprint})


def pretrain(
    cfg: PretrainConfig, *, callbacks: Sequence[Any] | None = None, run_name: str | None = None,
    _hooks: dict[str, Any] | None = None,
) -> TrainResult:
    """SwAV-pretrain an encoder on ``cfg.store`` (labels unused); writes a ``kind="ssl"`` model.

    Raises:
        DataError: missing/empty store, batch size larger than the data, a bad ``init`` model.
        ConfigError: unknown architecture.
    """
    from distfer.train.loops import pretrain_loop

    _check_arch(cfg.arch)
    store = checks.open_split(cfg.store, cfg.split)
    checks.batch_fits(cfg.batch_size, store.num_rows(cfg.split), cfg.trainer.num_workers,
                      what=f"rows of split {cfg.split!r}")
    inputs = [store.fingerprint]
    if cfg.init:
        load_model(cfg.init, arch=cfg.arch)
        inputs.append(_file_hash(cfg.init))
    size = cfg.global_size or store.image_size
    res = _run("pretrain", pretrain_loop, cfg, {"input_size": size}, run_name, callbacks, _hooks, inputs)
    return _finish("pretrain", cfg, res, FERModel(cfg.arch, input_size=size), "ssl",
                   {"store": store.fingerprint, "method": "swav"})


def adapt(
    cfg: AdaptConfig, *, callbacks: Sequence[Any] | None = None, run_name: str | None = None,
    _hooks: dict[str, Any] | None = None,
) -> TrainResult:
    """Fine-tune ``cfg.init``'s encoder + a fresh head on the selected pseudo-labels.

    Raises:
        DataError: missing store, bad init model, bad pseudo-label file, zero selected rows,
            batch size larger than the selection.
    """
    from distfer.train.loops import adapt_loop, adapt_model

    store = checks.open_split(cfg.store, cfg.split)
    _, meta = load_model(cfg.init)
    n_sel = checks.pseudo_labels(cfg, store)
    checks.batch_fits(cfg.batch_size, n_sel, cfg.trainer.num_workers, what="selected pseudo-labels")
    val = checks.has_labelled(store, cfg.val_split)
    inputs = [store.fingerprint, _file_hash(cfg.init), _file_hash(cfg.pseudo)]
    res = _run("adapt", adapt_loop, cfg, {"val": val}, run_name, callbacks, _hooks, inputs)
    return _finish("adapt", cfg, res, adapt_model(cfg), "adapted",
                   {"store": store.fingerprint, "init_kind": meta["kind"], "selected": n_sel})


@torch.no_grad()
def evaluate(cfg: EvaluateConfig) -> dict[str, Any]:
    """Metrics of ``cfg.model`` on ``cfg.split`` of ``cfg.store``, also written as JSON.

    Returns:
        :func:`~distfer.train.evaluate.classification_metrics` plus ``model``, ``store``,
        ``split`` and ``out`` (the JSON path).

    Raises:
        DataError: missing store/split/model, or a split without labels.
    """
    from distfer.train.common import predict

    store = checks.open_split(cfg.store, cfg.split)
    checks.labelled_rows(store, cfg.split, stage="evaluate")
    model, _ = load_model(cfg.model)
    images, labels, _ = store.load_arrays(cfg.split)
    logits, _ = predict(model, torch.from_numpy(images), cfg.batch_size, torch.device("cpu"))
    metrics = classification_metrics(labels, np.asarray(logits).argmax(1))
    out = Path(cfg.out) if cfg.out else Path(cfg.model).resolve().parent / f"eval_{cfg.split}.json"
    metrics.update(model=str(Path(cfg.model).resolve()), store=str(store.path), split=cfg.split, out=str(out))
    atomic_write_text(out, json.dumps(metrics, indent=2, default=lambda v: None))
    return metrics
