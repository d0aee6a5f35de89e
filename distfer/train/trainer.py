"""Build and run a Ray Train ``TorchTrainer`` from a :class:`~distfer.config.TrainerConfig`.

``fit`` is the one place the training stages touch Ray Train: scaling (workers, CPU/GPU),
run storage (name + absolute ``storage_path``; the same pair resumes from the latest
checkpoint), failure retries, checkpoint retention and user callbacks (e.g. Tune's
``TuneReportCallback`` when a stage runs inside a Tune trial).

``num_workers: 0`` runs the loop in this process, which saves the controller and worker-group
start-up (tens of seconds per run on a small CPU machine; it matters for a laptop sweep's many
short trials). Ray Train's own local mode (``ScalingConfig(num_workers=0)``) cannot serve here:
its ``ray.train`` calls are disabled inside a Ray Tune function and it keeps no checkpoints. The
loop checkpoints into ``storage_path/run_name/epoch_*`` itself (see :mod:`distfer.train.common`),
so resuming, retention, ``max_failures`` retries and the callbacks behave as with workers.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
import ray.train
from ray.train.torch import TorchConfig, TorchTrainer

from distfer.config import TrainerConfig
from distfer.errors import DataError


@dataclass(frozen=True)
class FitResult:
    """What a training run gives back.

    Attributes:
        history: one metrics dict per epoch (1-based ``epoch``), including epochs restored
            from an earlier attempt of the same run.
        start_epoch: 0-based epoch this call started at (> 0 when it resumed).
        checkpoint_dir: local path of the latest checkpoint (holds ``state.pt``).
        run_path: the run's folder under the storage path.
    """

    history: list[dict[str, Any]]
    start_epoch: int
    checkpoint_dir: Path
    run_path: str


def storage_uri(path: str) -> str:
    """``path`` made absolute (Ray Train needs it), URIs such as ``s3://`` kept as they are."""
    if "://" in path:
        return path
    return str(Path(path).expanduser().resolve())


def ensure_ray() -> None:
    """Start a local Ray (dashboard on; Tune needs it) unless one is running or reachable."""
    if not ray.is_initialized():
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        ray.init(include_dashboard=True, log_to_driver=True, configure_logging=False)


def fit(
    train_fn: Callable[[dict[str, Any]], Any],
    loop_config: dict[str, Any],
    trainer: TrainerConfig,
    run_name: str,
    *,
    callbacks: Sequence[Any] | None = None,
) -> FitResult:
    """Run ``train_fn`` on ``trainer.num_workers`` Ray Train workers.

    Args:
        train_fn: a ``train_fn_per_worker`` from :mod:`distfer.train.loops`.
        loop_config: its ``train_loop_config`` (plain, picklable values).
        trainer: workers, CPU/GPU, storage path, retries.
        run_name: Ray Train run name; calling again with the same name and storage resumes.
        callbacks: extra Ray Train callbacks, e.g.
            ``[ray.tune.integration.ray_train.TuneReportCallback()]`` inside a Tune trial.

    Raises:
        DataError: the run produced no checkpoint.
        ray.train.TrainingFailedError: a worker failed more than ``max_failures`` times.
    """
    if trainer.num_workers == 0:
        return _fit_local(train_fn, loop_config, trainer, run_name, callbacks)
    ensure_ray()
    resources = {"CPU": trainer.cpus_per_worker}
    if trainer.use_gpu:
        resources["GPU"] = 1
    storage = storage_uri(trainer.storage_path)
    if "://" not in storage:
        Path(storage).mkdir(parents=True, exist_ok=True)
    torch_trainer = TorchTrainer(
        train_fn,
        train_loop_config=loop_config,
        torch_config=TorchConfig(backend="nccl" if trainer.use_gpu else "gloo"),
        scaling_config=ray.train.ScalingConfig(
            num_workers=trainer.num_workers, use_gpu=trainer.use_gpu, resources_per_worker=resources
        ),
        run_config=ray.train.RunConfig(
            name=run_name,
            storage_path=storage,
            failure_config=ray.train.FailureConfig(max_failures=trainer.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=trainer.num_to_keep),
            callbacks=list(callbacks or []),
        ),
    )
    result = torch_trainer.fit()
    if result.checkpoint is None:
        raise DataError(f"training run {run_name!r} in {storage} produced no checkpoint")
    out = result.return_value or {}
    ckpt_dir = Path(result.checkpoint.to_directory())
    history = list(out.get("history", []))
    return FitResult(history, int(out.get("start_epoch", 0)), ckpt_dir, str(result.path))


def _fit_local(
    train_fn: Callable[[dict[str, Any]], Any], loop_config: dict[str, Any], trainer: TrainerConfig,
    run_name: str, callbacks: Sequence[Any] | None,
) -> FitResult:
    """Run the loop in this process with per-epoch checkpoints in ``storage_path/run_name``."""
    from distfer.train import common as C

    run_dir = Path(storage_uri(trainer.storage_path)) / run_name
    run_dir.mkdir(parents=True, exist_ok=True)
    config = {**loop_config, C.LOCAL_RUN_DIR: str(run_dir), C.LOCAL_KEEP: trainer.num_to_keep}
    attempts = trainer.max_failures + 1 if trainer.max_failures >= 0 else None  # -1: retry forever
    failed = 0
    while True:
        try:
            with C.local_callbacks(callbacks):
                out = train_fn(config) or {}
            break
        except Exception:
            failed += 1
            if attempts is not None and failed >= attempts:
                raise
    found = C.epoch_dirs(run_dir)  # the latest, also when a finished run was called again
    if not found:
        raise DataError(f"training run {run_name!r} in {run_dir.parent} produced no checkpoint")
    return FitResult(list(out.get("history", [])), int(out.get("start_epoch", 0)), found[-1], str(run_dir))
