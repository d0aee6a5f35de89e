"""The Tune function trainable: pseudo-label -> adapt (Ray Train) -> evaluate, one MLflow child run.

Every CluP trial and every pseudo-label baseline (confidence, centroid, oracle) runs through
:func:`run_trial`, so they differ only in how the pseudo-labels are made:

* ``clup``: k-means over the sweep's shared :class:`~distfer.clustering.index.ShardedIndex`
  (joined by name; results cached there by (features, K, seed)), cluster purity, selection;
* ``confidence`` / ``centroid``: per-sample teacher confidence / SHOT nearest class centroid on
  the teacher features, same selection code;
* ``oracle``: the target Train split's true labels, all selected (the supervised ceiling).

The adaptation's per-epoch metrics reach Tune through :class:`EpochReport` (Ray Train's
``TuneReportCallback`` plus the ``objective`` key the sweep maximises); the trial's final report
adds Val accuracy/macro-F1, pseudo-label accuracy, selected fraction and the label-free
criterion of the adapted model's predictions on the unlabelled target Train split.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from distfer.tune.space import OBJECTIVE_KEY

__all__ = ["TrialContext", "run_trial", "EpochReport"]


@dataclass(frozen=True)
class TrialContext:
    """Everything a trial needs besides its sampled config (plain values; pickled to trials).

    Attributes:
        output_dir: the experiment's output folder (trials write to ``trials/<trial_id>/``).
        target_store: the target FaceStore folder.
        embeddings: the target embedding folder (``train/``, ``val/`` shard folders).
        init: model.pt the adaptation starts from (the SSL encoder).
        index_name: the ShardedIndex group name (namespace ``distfer``); None clusters in-process.
        pseudo: base PseudoLabelConfig overrides; adapt: base AdaptConfig overrides.
        adapt_trainer: TrainerConfig mapping of the adaptation (storage path included).
        sweep: the SweepConfig as a dict.
        tracking_uri, experiment, parent_run_id: the MLflow parent run trials hang under.
        log_models: upload each adapted model.pt.
    """

    output_dir: str
    target_store: str
    embeddings: str
    init: str
    index_name: str | None
    pseudo: dict[str, Any]
    adapt: dict[str, Any]
    adapt_trainer: dict[str, Any]
    sweep: dict[str, Any]
    tracking_uri: str
    experiment: str
    parent_run_id: str
    log_models: bool = True
    tags: dict[str, str] = field(default_factory=dict)


def _epoch_report_cls() -> type:
    from ray.tune.integration.ray_train import TuneReportCallback

    class _EpochReport(TuneReportCallback):
        """TuneReportCallback that adds ``objective`` (Val accuracy for ``oracle``, else NaN)."""

        def __init__(self, oracle: bool) -> None:
            super().__init__()
            self.oracle = oracle

        def after_report(self, run_context: Any, metrics: list[dict[str, Any]], checkpoint: Any) -> None:
            super().after_report(run_context, [_with_objective(metrics[0], self.oracle), *metrics[1:]], checkpoint)

    return _EpochReport


def _with_objective(metrics: dict[str, Any], oracle: bool) -> dict[str, Any]:
    out = dict(metrics)
    out[OBJECTIVE_KEY] = float(out.get("val/acc", math.nan)) if oracle else math.nan
    return out


class _InProcessEpochReport:
    """The same per-epoch reports for an adaptation running in the trial's own process
    (``num_workers: 0``): ``tune.report`` straight from the trial function."""

    def __init__(self, oracle: bool) -> None:
        self.oracle = oracle

    def after_report(self, run_context: Any, metrics: list[dict[str, Any]], checkpoint: Any) -> None:
        from ray import tune

        tune.report(_with_objective(metrics[0], self.oracle))


def EpochReport(oracle: bool, in_process: bool = False) -> Any:  # noqa: N802 - a factory standing in for the class
    """A Ray Train callback forwarding each epoch's metrics (+ ``objective``) to Tune."""
    return _InProcessEpochReport(oracle) if in_process else _epoch_report_cls()(oracle)


def _trial_name(settings: Any) -> str:
    if settings.method != "clup":
        return f"baseline-{settings.method}"
    extra = " ".join(f"{k}={v}" for k, v in sorted({**settings.pseudo, **settings.adapt}.items())
                     if k not in ("mode", "select", "clusters"))
    return f"clup K={settings.clusters} {settings.select}" + (f" {extra}" if extra else "")


def _pseudo_labels(ctx: TrialContext, settings: Any, out: Path) -> Any:
    """Make and write the trial's pseudo-label table; returns the PseudoLabelOutput."""
    from distfer.clustering.embeddings import load_embeddings
    from distfer.config import PseudoLabelConfig
    from distfer.pseudo import api
    from distfer.pseudo.labels import PseudoLabels
    from distfer.pseudo.select import selection_stats

    train_dir = Path(ctx.embeddings) / "train"
    if settings.method == "oracle":
        emb = load_embeddings(train_dir, column="features")
        labels = emb.labels
        if labels is None or (labels < 0).any():
            from distfer.errors import DataError

            raise DataError("the oracle baseline needs a fully labelled target Train split")
        n = len(labels)
        onehot = np.eye(7, dtype=np.float32)[labels]
        res = PseudoLabels(labels.astype(np.int64), np.ones(n, np.float32), onehot, np.full(n, -1, np.int64),
                           np.ones(n, np.float32), labels.astype(np.int64), np.zeros((0, 7), np.int64))
        sel = np.ones(n, bool)
        stats = selection_stats(res, sel, mode="oracle", spec="all", true_labels=labels)
        output = api.PseudoLabelOutput(emb.index, res, sel, stats)
        api.write_table(out, output)
        return output
    base = {k: v for k, v in ctx.pseudo.items() if settings.method == "clup" or k not in ("column",)}
    cfg = PseudoLabelConfig.from_dict({**base, **settings.pseudo})
    if settings.method != "clup":
        cfg = cfg.replace(column="features")  # the baselines use the teacher's own features (SHOT)
    if cfg.mode in ("purity", "soft-purity") and ctx.index_name:
        from distfer.clustering.index import ShardedIndex

        output = api.pseudo_label_sharded(ShardedIndex.connect(ctx.index_name), cfg)
    else:
        emb = load_embeddings(train_dir, column=cfg.column)
        output = api.pseudo_label(emb.features, emb.logits, cfg, index=emb.index, true_labels=emb.labels)
    api.write_table(out, output, cfg)
    return output


def _criteria_on_train(model_path: Path, store_path: str, names: list[str], samples: int | None,
                       seed: int) -> dict[str, float]:
    """Label-free criteria of the model's softmax on target Train images (labels unused).

    At most ``samples`` images, the same seeded subset for every trial: SND compares every pair
    of predictions (O(N^2)), so on a large target a subset is what keeps it affordable.
    """
    import torch

    from distfer.data.store import FaceStore
    from distfer.models import load_model
    from distfer.train.common import predict
    from distfer.tune import criteria

    model, _ = load_model(model_path)
    images, _, index = FaceStore.open(store_path).load_arrays("train")
    images = images[criteria.sample_mask(index, samples, seed)]
    logits, _ = predict(model, torch.from_numpy(images), 256, torch.device("cpu"))
    probs = criteria.softmax(logits)
    return {name: criteria.get(name)(probs) for name in names}


def run_trial(config: dict[str, Any], ctx: TrialContext) -> None:
    """One trial (Tune function trainable); see the module docstring."""
    from ray import tune

    from distfer.config import AdaptConfig, EvaluateConfig, SweepConfig
    from distfer.tracking import plots
    from distfer.tracking.mlflow_store import TRIAL_TAG, Tracker
    from distfer.train.api import adapt, evaluate
    from distfer.tune.space import trial_overrides

    t0 = time.perf_counter()
    sweep = SweepConfig.from_dict(ctx.sweep)
    settings = trial_overrides(config, sweep)
    trial_id = tune.get_context().get_trial_id()
    tdir = Path(ctx.output_dir) / "trials" / trial_id
    tdir.mkdir(parents=True, exist_ok=True)
    tracker = Tracker(ctx.tracking_uri, ctx.experiment)
    run_id = tracker.find_run(TRIAL_TAG, trial_id, parent_id=ctx.parent_run_id)
    params = {"method": settings.method, **{f"pseudo.{k}": v for k, v in settings.pseudo.items()},
              **{f"adapt.{k}": v for k, v in {**ctx.adapt, **settings.adapt}.items()}}
    if run_id is None:
        run_id = tracker.start_run(_trial_name(settings), parent_id=ctx.parent_run_id,
                                   tags={TRIAL_TAG: trial_id, "distfer.method": settings.method, **ctx.tags},
                                   params=params)
    else:
        tracker.reopen(run_id)
    times: dict[str, float] = {"setup_s": time.perf_counter() - t0}
    try:
        t = time.perf_counter()
        pl = _pseudo_labels(ctx, settings, tdir / "pseudo_labels.parquet")
        times["pseudo_s"] = time.perf_counter() - t
        st = pl.stats
        pseudo_metrics = {"pseudo/accuracy": st.accuracy_selected, "pseudo/accuracy_all": st.accuracy_all,
                          "pseudo/selected_fraction": st.selected_fraction, "pseudo/selected": st.selected}
        tracker.log_metrics(run_id, pseudo_metrics, step=0)
        acfg = AdaptConfig.from_dict({
            **ctx.adapt, **settings.adapt, "store": ctx.target_store, "init": ctx.init,
            "pseudo": str(tdir / "pseudo_labels.parquet"), "out": str(tdir / "model"),
            "trainer": ctx.adapt_trainer,
        })
        t = time.perf_counter()
        report = EpochReport(sweep.objective == "oracle", in_process=acfg.trainer.num_workers == 0)
        res = adapt(acfg, callbacks=[report], run_name=f"adapt-{trial_id}")
        times["adapt_s"] = time.perf_counter() - t
        train_s = sum(float(h.get("time/epoch_s", 0.0)) for h in res.history)
        times["adapt_overhead_s"] = times["adapt_s"] - train_s
        tracker.log_history(run_id, res.history)
        t = time.perf_counter()
        ev = evaluate(EvaluateConfig(store=ctx.target_store, model=str(res.model_path), split="val",
                                     out=str(tdir / "eval_val.json")))
        names = sorted({sweep.criterion} | ({sweep.objective} - {"oracle"}))
        crit = _criteria_on_train(res.model_path, ctx.target_store, names, sweep.criterion_samples, sweep.seed)
        objective = ev["accuracy"] if sweep.objective == "oracle" else crit[sweep.objective]
        times["evaluate_s"] = time.perf_counter() - t
        final = {
            "val_acc": ev["accuracy"], "val_macro_f1": ev["macro_f1"],
            "pseudo_acc": st.accuracy_selected, "selected_fraction": st.selected_fraction,
            OBJECTIVE_KEY: objective, **{f"criterion_{k}": v for k, v in crit.items()},
            "mlflow_run_id": run_id, "trial_seconds": time.perf_counter() - t0,
            **{f"time/{k}": round(v, 2) for k, v in times.items()},
        }
        tracker.log_metrics(run_id, {"val/acc_final": ev["accuracy"], "val/macro_f1_final": ev["macro_f1"],
                                     OBJECTIVE_KEY: objective, **{f"criterion/{k}": v for k, v in crit.items()},
                                     "trial_seconds": final["trial_seconds"]})
        arts = tdir / "artifacts"
        arts.mkdir(exist_ok=True)
        plots.confusion_matrix_png(np.array(ev["confusion_matrix"]), arts / "confusion_matrix.png",
                                   title=f"{_trial_name(settings)} (Val acc {ev['accuracy']:.3f})")
        hist = pl.result.histogram
        if len(hist):
            sizes = hist.sum(1)
            keep = sizes > 0
            plots.purity_histogram_png(hist.max(1)[keep] / sizes[keep], arts / "purity_histogram.png",
                                       sizes=sizes[keep])
        (arts / "per_class_accuracy.json").write_text(json.dumps(ev["per_class_accuracy"], indent=2))
        (arts / "pseudo_label_stats.json").write_text(json.dumps(st.to_dict(), indent=2))
        tracker.log_artifacts(run_id, sorted(arts.iterdir()))
        tracker.log_artifact(run_id, tdir / "pseudo_labels.parquet", "pseudo_labels")
        if ctx.log_models:
            tracker.log_artifact(run_id, res.model_path, "model")
        (tdir / "result.json").write_text(json.dumps({"config": config, **final}, indent=2, default=str))
        tune.report({k: v for k, v in final.items() if v is not None})
    except BaseException:
        tracker.finish(run_id, "FAILED")
        raise
    tracker.finish(run_id)
