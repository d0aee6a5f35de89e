"""Build and run a Ray Train ``TorchTrainer`` from a :class:`~distfer.config.TrainerConfig`.

``fit`` is the one place the training stages touch Ray Train: scaling (workers, CPU/GPU),
run storage (name + absolute ``storage_path``; the same pair resumes from the latest
checkpoint), failure retries, checkpoint retention and user callbacks (e.g. Tune's
``TuneReportCallback`` when a stage runs inside a Tune trial).
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
