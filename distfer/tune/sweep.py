"""Ray Tune plumbing: build (or restore) a Tuner for a function trainable from a SweepConfig.

Three layers, as in Ray's own examples: the trial function (:mod:`distfer.tune.trial`) builds
the TorchTrainer of the adaptation; :func:`run_tuner` runs it over a param space with the
sweep's search algorithm (grid by default, Optuna TPE as an option), scheduler (FIFO, or ASHA
over adaptation epochs) and per-trial resources. An interrupted sweep is resumed with
``Tuner.restore`` from its experiment folder, so finished trials are not run again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from distfer.config import SweepConfig
from distfer.errors import ConfigError
from distfer.tune.space import OBJECTIVE_KEY

__all__ = ["run_tuner", "make_search_alg", "make_scheduler", "experiment_path", "progress_callback"]


def progress_callback(label: str, total: int, *, console: Any = None) -> Any:
    """A Tune callback printing one line per finished trial: ``[label 3/8] K=300 ... acc=0.61``."""
    from ray.tune import Callback

    class _Progress(Callback):
        def __init__(self) -> None:
            self.done = 0

        def _line(self, trial: Any, status: str) -> None:
            self.done += 1
            cfg = {k: v for k, v in trial.config.items() if k not in ("select_kind",)}
            res = trial.last_result or {}
            shown = "  ".join(f"{k}={v}" for k, v in cfg.items())
            acc = res.get("val_acc")
            tail = f"val_acc={acc:.3f} objective={res.get(OBJECTIVE_KEY, float('nan')):.4f}" if acc is not None else ""
            msg = f"[{label} {self.done}/{total}] {status:<8} {shown}  {tail}"
            if console is not None:
                console.print(msg, highlight=False)
            else:
                print(msg, flush=True)

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self._line(trial, "done")

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self._line(trial, "ERROR")

    return _Progress()


def experiment_path(storage_path: str | Path, name: str) -> Path:
    """The folder Tune keeps an experiment's state in (what ``--resume`` restores)."""
    return Path(storage_path) / name


def make_search_alg(sweep: SweepConfig) -> Any:
    """None (Tune's grid/random generator) or an OptunaSearch (TPE, seeded)."""
    if sweep.search == "grid":
        return None
    try:
        import optuna
        from ray.tune.search.optuna import OptunaSearch
    except ImportError:
        raise ConfigError("sweep search 'optuna' needs the optuna package: pip install 'distfer[optuna]'") from None
    # metric and mode come from the TuneConfig; concurrency from max_concurrent_trials
    return OptunaSearch(sampler=optuna.samplers.TPESampler(seed=sweep.seed))


def make_scheduler(sweep: SweepConfig, max_epochs: int) -> Any:
    """FIFO, or ASHA over adaptation epochs (``training_iteration`` counts epoch reports)."""
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    if sweep.scheduler == "fifo":
        return FIFOScheduler()
    return ASHAScheduler(
        time_attr="training_iteration",
        max_t=max(max_epochs + 1, sweep.grace_period + 1),  # +1: the trial's final report
        grace_period=sweep.grace_period, reduction_factor=sweep.reduction_factor,
    )


def run_tuner(
    trainable: Callable[..., Any],
    space: Mapping[str, Any],
    sweep: SweepConfig,
    *,
    name: str,
    storage_path: str | Path,
    max_epochs: int,
    resume: bool = False,
    num_samples: int | None = None,
    search: bool = True,
    resources: Mapping[str, float] | None = None,
    callbacks: list[Any] | None = None,
    **trainable_params: Any,
) -> Any:
    """Run (or resume) one Tune experiment and return its ``ResultGrid``.

    Args:
        trainable: the function trainable ``fn(config, **trainable_params)``.
        space: the param space (see :mod:`distfer.tune.space`).
        sweep: search, scheduler, concurrency and resources.
        name: experiment name; its state lives in ``storage_path/name``.
        storage_path: absolute local path (or ``s3://``) for Tune's state and results.
        max_epochs: adaptation epochs per trial (for ASHA's ``max_t``).
        resume: restore ``storage_path/name`` when it holds an earlier run of this experiment;
            finished trials are kept, unfinished and errored ones are run again.
        num_samples: overrides the sweep's (e.g. 1 for the baselines' grid).
        search: False forces the plain grid generator and FIFO (the baselines).
        resources: per-trial resources of the trial function itself (default
            ``{"cpu": sweep.trial_cpus}``); its Ray Train workers ask for their own.
        callbacks: Tune callbacks (e.g. :func:`progress_callback`).
        trainable_params: large or static objects passed with ``tune.with_parameters``.
    """
    from ray import tune

    fn = tune.with_parameters(trainable, **trainable_params) if trainable_params else trainable
    fn = tune.with_resources(fn, dict(resources or {"cpu": sweep.trial_cpus}))
    path = experiment_path(storage_path, name)
    if resume and tune.Tuner.can_restore(str(path)):
        tuner = tune.Tuner.restore(str(path), trainable=fn, resume_unfinished=True, resume_errored=True,
                                   param_space=dict(space))
        return tuner.fit()
    use_search = search and sweep.search != "grid"
    if num_samples is None:
        num_samples = sweep.num_samples or (8 if use_search else 1)
    tune_config = tune.TuneConfig(
        metric=OBJECTIVE_KEY,
        mode="max",
        num_samples=num_samples,
        search_alg=make_search_alg(sweep) if use_search else None,
        scheduler=make_scheduler(sweep, max_epochs) if search else None,
        max_concurrent_trials=sweep.max_concurrent,
        reuse_actors=False,
    )
    run_config = tune.RunConfig(name=name, storage_path=str(storage_path), verbose=0, callbacks=callbacks,
                                failure_config=tune.FailureConfig(max_failures=0))
    tuner = tune.Tuner(fn, param_space=dict(space), tune_config=tune_config, run_config=run_config)
    return tuner.fit()
