"""One experiment end to end: shared stages once, then baselines and the CluP sweep on Ray Tune.

:func:`run_experiment` is the implementation behind ``experiments/tune_sfew.py``,
``experiments/clup.py`` and ``distfer sweep``. It

1. connects to Ray (``ray_address`` / ``RAY_ADDRESS``) or starts a local Ray with the dashboard on;
2. runs the cached shared stages (synth, prepare, source, pretrain, embed; see
   :mod:`distfer.pipeline.stages`);
3. creates the MLflow experiment and the sweep's parent run in the driver (before any trial);
4. starts the sweep's ShardedIndex group over the target Train embeddings (shared by trials);
5. evaluates the teacher (source-only), runs the pseudo-label baselines and the CluP trials
   through the same trainable (:func:`distfer.tune.trial.run_trial`);
6. writes ``results.json``, ``results.md`` and the K x threshold heatmap, and logs them to the
   parent run.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from distfer.config import EvaluateConfig, ExperimentConfig, TrainerConfig
from distfer.errors import ConfigError
from distfer.fsutil import ensure_output_dir
from distfer.pipeline import report
from distfer.pipeline.cache import StageCache
from distfer.pipeline.stages import (
    embed_stage,
    prepare_stage,
    pretrain_stage,
    source_stage,
    synth_stage,
    trainer_section,
)

__all__ = ["run_experiment", "init_ray"]


def init_ray(address: str | None) -> bool:
    """Connect to ``address`` (or ``RAY_ADDRESS``), else start a local Ray; True if started here."""
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, namespace="distfer", log_to_driver=True)
    else:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        # the dashboard (state API) must be on: Tune stopping Ray Train trials relies on it
        ray.init(address="local", include_dashboard=True, namespace="distfer", log_to_driver=True,
                 configure_logging=False)
    return True


class _Clock:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.seconds: dict[str, float] = {}
        self.cached: dict[str, bool] = {}

    def stage(self, name: str, artifacts: list[Any], t0: float) -> None:
        dt = time.perf_counter() - t0
        self.seconds[name] = self.seconds.get(name, 0.0) + dt
        hit = bool(artifacts) and all(a.hit for a in artifacts)
        if artifacts:
            self.cached[name] = hit
        self.console.print(f"[bold]{name}[/bold]: {'cached, ' if hit else ''}{dt:.1f} s"
                           + "".join(f"  -> {a.path}" for a in artifacts[:1]), highlight=False)


def _check_index_resources(exp: ExperimentConfig) -> None:
    """Fail clearly instead of waiting forever for index-shard resources the cluster lacks."""
    import ray

    have = ray.cluster_resources()
    for key, per_shard in exp.index_resources.items():
        if have.get(key, 0) < per_shard * exp.index_shards:
            raise ConfigError(
                f"index_resources asks for {per_shard} {key!r} per shard x {exp.index_shards} shards, but the "
                f"Ray cluster has {have.get(key, 0):g}; start nodes with that resource (cluster.yaml) or set "
                "index_resources: {} / fewer index_shards"
            )


def _check_inputs(exp: ExperimentConfig) -> None:
    """Path checks before Ray starts, so a typo fails in a second."""
    from distfer.fsutil import require_dir, require_file

    for key in ("source_root", "target_root"):
        if getattr(exp, key):
            require_dir(getattr(exp, key), what=key.replace("_", " "))
    if exp.source_checkpoint:
        require_file(exp.source_checkpoint, what="source checkpoint")


def _source_only(exp: ExperimentConfig, target: Path, teacher: Path, embeddings: Path, criterion: str,
                 out: Path) -> dict[str, Any]:
    from distfer.clustering.embeddings import load_embeddings
    from distfer.train.api import evaluate
    from distfer.tune import criteria

    ev = evaluate(EvaluateConfig(store=str(target), model=str(teacher), split="val",
                                 out=str(out / "source_only_eval_val.json")))
    emb = load_embeddings(embeddings / "train")  # the trials' criterion subset, for comparable values
    logits = emb.logits[criteria.sample_mask(emb.index, exp.sweep.criterion_samples, exp.sweep.seed)]
    return {"val_acc": ev["accuracy"], "val_macro_f1": ev["macro_f1"],
            "criterion": criteria.get(criterion)(criteria.softmax(logits)), "confusion_matrix": ev["confusion_matrix"],
            "per_class_accuracy": ev["per_class_accuracy"]}


def _provenance(exp: ExperimentConfig, *artifacts: Any) -> dict[str, str]:
    """MLflow tags of every run: the seeds and the fingerprints of the inputs (stores, teacher,
    encoder, embeddings), so a run can be traced to exactly what it was computed from."""
    from distfer.config import AdaptConfig, PseudoLabelConfig

    adapt_seed = exp.adapt.get("seed", AdaptConfig.__dataclass_fields__["seed"].default)
    tags = {"distfer.seed": str(exp.seed), "distfer.seed.pseudo": str(PseudoLabelConfig.from_dict(exp.pseudo).seed),
            "distfer.seed.adapt": str(adapt_seed)}
    names = ("source_store", "target_store", "teacher", "encoder", "embeddings")
    tags.update({f"distfer.input.{n}": a.fingerprint for n, a in zip(names, artifacts) if a is not None})
    return tags


def _rows(grid: Any, exp: ExperimentConfig) -> list[dict[str, Any]]:
    rows = []
    for r in grid:
        found = re.search(r"_([0-9a-f]{5}_\d{5})_", Path(r.path).name) if r.path else None
        trial_id = (r.metrics or {}).get("trial_id") or (found.group(1) if found else "?")
        err = None if r.error is None else f"{type(r.error).__name__}: {str(r.error).splitlines()[0][:300]}"
        rows.append(report.trial_row(r.config, r.metrics or {}, select_kind=exp.sweep.select_kind,
                                     criterion=exp.sweep.criterion, trial_id=str(trial_id), error=err))
    return rows


def run_experiment(exp: ExperimentConfig, *, resume: bool = False, console: Console | None = None) -> dict[str, Any]:
    """Run the experiment described by ``exp`` and return the results dict (also written to disk).

    Args:
        exp: the validated experiment config.
        resume: continue an interrupted sweep (finished trials are kept, not re-run).
        console: where progress goes (default: stderr).

    Raises:
        DistferError: bad inputs (data, checkpoints, config) with a message naming the fix.
    """
    import ray

    from distfer.clustering.index import ShardedIndex
    from distfer.tracking import plots
    from distfer.tracking.mlflow_store import SWEEP_TAG, Tracker, resolve_tracking_uri
    from distfer.tune.space import baseline_space, param_space
    from distfer.tune.sweep import progress_callback, run_tuner
    from distfer.tune.trial import TrialContext, run_trial

    console = console or Console(stderr=True)
    t_all = time.perf_counter()
    _check_inputs(exp)
    # Ctrl-C must stop the whole experiment (Tune's own handler would only end the current
    # Tuner and let the next one start); Tune's saved state still lets --resume continue.
    os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")
    out = ensure_output_dir(exp.output_dir)
    cache = StageCache(out / "cache")
    clock = _Clock(console)
    started = init_ray(exp.ray_address)
    index = None
    try:
        # ---- shared stages (cached) ---------------------------------------------------
        t0 = time.perf_counter()
        if exp.source_root is None:
            bench = synth_stage(cache, exp)
            clock.stage("synth", [bench], t0)
            src_root, tgt_root = bench.path / "rafdb", bench.path / "sfew"
            src_name, tgt_name = "rafdb", "sfew"
        else:
            src_root, tgt_root = Path(exp.source_root), Path(exp.target_root or "")
            src_name, tgt_name = exp.source_format, exp.target_format
        t0 = time.perf_counter()
        source_store = None if exp.source_checkpoint else prepare_stage(cache, exp, exp.source_format, src_root, "source")
        target_store = prepare_stage(cache, exp, exp.target_format, tgt_root, "target")
        clock.stage("prepare", [s for s in (source_store, target_store) if s], t0)
        t0 = time.perf_counter()
        teacher = source_stage(cache, exp, source_store)
        clock.stage("source", [teacher], t0)
        t0 = time.perf_counter()
        encoder = pretrain_stage(cache, exp, target_store, teacher)
        clock.stage("pretrain", [encoder], t0)
        t0 = time.perf_counter()
        emb = embed_stage(cache, exp, target_store, teacher, encoder)
        clock.stage("embed", [emb], t0)

        # ---- MLflow parent run (driver first: no schema race between trials) ----------
        fp = exp.fingerprint(emb.fingerprint)
        sweep_id = f"{exp.name}-{fp}"
        uri = resolve_tracking_uri(exp.tracking.tracking_uri, out)
        tracker = Tracker(uri, exp.tracking.experiment or f"{src_name}->{tgt_name}")
        parent = tracker.find_run(SWEEP_TAG, sweep_id) if resume else None
        provenance = _provenance(exp, source_store, target_store, teacher, encoder, emb)
        if parent is None:
            parent = tracker.start_run(exp.name, tags={SWEEP_TAG: sweep_id, "distfer.preset": exp.preset, **provenance},
                                       params={"experiment": exp.to_dict()})
        else:
            tracker.reopen(parent)
        for st in ("source", "pretrain"):
            art = teacher if st == "source" else encoder
            if art.cached is not None:
                hist = cache.record(st, art.fingerprint)["extra"].get("history", [])
                tracker.log_history(parent, [{f"{st}/{k}": v for k, v in h.items() if k != "epoch"} for h in hist])

        # ---- source-only, then the sweep's trials through one trainable ---------------
        t0 = time.perf_counter()
        src_only = _source_only(exp, target_store.path, teacher.path, emb.path, exp.sweep.criterion, out)
        tracker.log_metrics(parent, {"source_only/val_acc": src_only["val_acc"],
                                     "source_only/val_macro_f1": src_only["val_macro_f1"]})
        index_name = f"index-{sweep_id}"
        _check_index_resources(exp)
        index = ShardedIndex.create(index_name, emb.path / "train", exp.index_shards, detached=True,
                                    num_cpus=exp.index_cpus, resources=exp.index_resources or None)
        adapt_storage = out / "ray_train"
        ctx = TrialContext(
            output_dir=str(out), target_store=str(target_store.path), embeddings=str(emb.path),
            init=str(encoder.path if exp.adapt_init == "ssl" else teacher.path),
            index_name=index_name, pseudo=dict(exp.pseudo), adapt={k: v for k, v in exp.adapt.items() if k != "trainer"},
            adapt_trainer=TrainerConfig.from_dict(trainer_section(exp, exp.adapt, adapt_storage)).to_dict(),
            sweep=exp.sweep.to_dict(), tracking_uri=uri, experiment=tracker.experiment, parent_run_id=parent,
            log_models=exp.tracking.log_models, tags=provenance,
        )
        epochs = int(exp.adapt.get("epochs", 50))
        tune_dir = out / "tune"
        baselines: dict[str, Any] = {}
        if "source_only" in exp.baselines:
            baselines["source_only"] = {k: v for k, v in src_only.items() if k in ("val_acc", "val_macro_f1", "criterion")}
        methods = tuple(b for b in exp.baselines if b != "source_only")
        if methods:
            grid = run_tuner(run_trial, baseline_space(methods, exp.baseline_select), exp.sweep,
                             name=f"{sweep_id}-baselines", storage_path=tune_dir, max_epochs=epochs, resume=resume,
                             num_samples=1, search=False, callbacks=[progress_callback("baselines", len(methods))],
                             ctx=ctx)
            for row in _rows(grid, exp):
                baselines[row["method"]] = row
        clock.stage("baselines", [], t0)
        t0 = time.perf_counter()
        total = exp.sweep.grid_size() * (exp.sweep.num_samples or 1) if exp.sweep.search == "grid" else (exp.sweep.num_samples or 8)
        grid = run_tuner(run_trial, param_space(exp.sweep), exp.sweep, name=f"{sweep_id}-clup", storage_path=tune_dir,
                         max_epochs=epochs, resume=resume, callbacks=[progress_callback("clup", total)], ctx=ctx)
        trials = _rows(grid, exp)
        clock.stage("sweep", [], t0)

        # ---- report --------------------------------------------------------------------
        best, selection = report.best_and_pick(trials, objective=exp.sweep.objective, criterion=exp.sweep.criterion)
        for run in tracker.children(parent):
            if run.info.status == "RUNNING":  # stopped early by ASHA, or killed
                tracker.finish(run.info.run_id, "KILLED")
        ks, vs, cells = report.heatmap_grid(trials, exp.sweep.select_kind)
        heat = None
        if ks and vs:
            heat = plots.heatmap_png(ks, vs, cells, out / "heatmap_val_acc.png", col_label=exp.sweep.select_kind,
                                     title="CluP Val accuracy (best over other keys)")
        cm = plots.confusion_matrix_png(src_only["confusion_matrix"], out / "source_only_confusion_matrix.png",
                                        title=f"source-only (Val acc {src_only['val_acc']:.3f})")
        stage_seconds = {k: round(v, 2) for k, v in clock.seconds.items()}
        stage_seconds["total"] = round(time.perf_counter() - t_all, 2)
        results = {
            "experiment": {"name": exp.name, "preset": exp.preset, "source": src_name, "target": tgt_name,
                           "output_dir": str(out), "fingerprint": fp, "sweep_id": sweep_id},
            "sweep": {"objective": exp.sweep.objective, "criterion": exp.sweep.criterion,
                      "select_kind": exp.sweep.select_kind, "search": exp.sweep.search,
                      "scheduler": exp.sweep.scheduler, "clusters": list(exp.sweep.clusters),
                      "select_values": list(exp.sweep.select_values),
                      "space": {k: list(v) for k, v in exp.sweep.space.items()}},
            "baselines": baselines,
            "trials": trials,
            "best": best,
            "selection": selection,
            "by_features": report.by_feature_column(trials, str(exp.pseudo.get("column", "features"))),
            "stage_seconds": stage_seconds,
            "stage_cached": clock.cached,
            "mlflow": {"tracking_uri": uri, "experiment": tracker.experiment, "parent_run_id": parent},
            "ui_command": f"distfer ui --output {out}",
        }
        paths = report.write_results(out, results)
        tracker.log_metrics(parent, {f"stage_seconds/{k}": v for k, v in stage_seconds.items()})
        tracker.log_metrics(parent, {f"baseline/{k}/val_acc": b.get("val_acc") for k, b in baselines.items()})
        if best:
            tracker.log_metrics(parent, {"best/val_acc": best["val_acc"], "best/objective": best["objective"]})
        tracker.log_artifacts(parent, [*paths, cm, *([heat] if heat else [])])
        tracker.finish(parent)
        return results
    finally:
        if index is not None:
            index.shutdown()
        if started:
            ray.shutdown()
