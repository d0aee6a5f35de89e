"""Worker-side plumbing shared by the Ray Train loops: setup, data shards, optimisers,
schedules, per-epoch checkpoints (save / resume) and evaluation on a held-out split.

Everything here runs inside a Ray Train worker (``ray.train`` context available), or in the
caller's own process (``num_workers: 0``, the loop config then holds ``LOCAL_RUN_DIR``). The
in-process mode does not use Ray Train's own local mode, whose ``ray.train`` calls are disabled
inside a Ray Tune function (ray-project/ray#49454) and which keeps no checkpoints: here
:func:`setup_worker` gives rank 0 of 1, :func:`report_epoch` writes each epoch's checkpoint
into the run folder, :func:`restore` resumes from it, and the callbacks registered by
:func:`local_callbacks` (e.g. Tune's per-epoch reports) get every report.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import ray.train
import torch
import torch.distributed as dist
from torch import nn

from distfer.config import TrainerConfig
from distfer.data.augment import to_float
from distfer.data.store import FaceStore
from distfer.train.evaluate import classification_metrics

STATE_FILE = "state.pt"
#: loop-config keys :func:`distfer.train.trainer.fit` adds for an in-process run
LOCAL_RUN_DIR, LOCAL_KEEP = "_local_run_dir", "_local_num_to_keep"
_local_callbacks: list[Any] = []


class local_callbacks:  # noqa: N801 - used as a context manager
    """Register Ray Train callbacks for the reports of an in-process run."""

    def __init__(self, callbacks: Any) -> None:
        self.callbacks = list(callbacks or [])

    def __enter__(self) -> None:
        _local_callbacks[:] = self.callbacks

    def __exit__(self, *exc: Any) -> None:
        _local_callbacks.clear()


def epoch_dirs(run_dir: Path) -> list[Path]:
    """Complete per-epoch checkpoint folders of an in-process run, oldest first."""
    if not run_dir.is_dir():
        return []
    return sorted(d for d in run_dir.glob("epoch_*") if (d / STATE_FILE).is_file())


@dataclass(frozen=True)
class WorkerContext:
    rank: int
    world: int
    device: torch.device

    @property
    def distributed(self) -> bool:
        return self.world > 1 and dist.is_available() and dist.is_initialized()


def in_process(config: dict[str, Any] | None) -> bool:
    """True when the loop runs in the caller's process (``num_workers: 0``)."""
    return bool((config or {}).get(LOCAL_RUN_DIR))


def rank_world(config: dict[str, Any] | None = None) -> tuple[int, int]:
    """``(world rank, world size)`` of this worker; ``(0, 1)`` in-process."""
    if in_process(config):
        return 0, 1
    ctx = ray.train.get_context()
    return ctx.get_world_rank(), ctx.get_world_size()


def setup_worker(trainer: TrainerConfig, seed: int, config: dict[str, Any] | None = None) -> WorkerContext:
    """Threads, seeds and device of this worker (rank 0 of 1 in-process)."""
    rank, world = rank_world(config)
    if in_process(config):
        device = torch.device("cuda") if trainer.use_gpu and torch.cuda.is_available() else torch.device("cpu")
    else:
        device = ray.train.torch.get_device() if trainer.use_gpu else torch.device("cpu")
    torch.set_num_threads(trainer.torch_threads or max(1, int(trainer.cpus_per_worker)))
    torch.manual_seed(seed * 1000 + rank)
    return WorkerContext(rank, world, device)


def prepare_model(model: nn.Module, ctx: WorkerContext, config: dict[str, Any] | None = None) -> nn.Module:
    """The model on the worker's device, wrapped in DDP by Ray Train when world > 1."""
    if in_process(config):
        return model.to(ctx.device)
    return ray.train.torch.prepare_model(model)


def load_split(store: str, split: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(images uint8 [N, H, W, 3], labels int64 [N], index int64 [N])`` as tensors."""
    images, labels, index = FaceStore.open(store).load_arrays(split)
    return torch.from_numpy(images), torch.from_numpy(labels), torch.from_numpy(index)


def shard_batches(
    n: int, batch_size: int, ctx: WorkerContext, seed: int, epoch: int
) -> Iterator[torch.Tensor]:
    """Row positions of this worker's batches for one epoch (same count on every worker).

    The epoch's permutation (seeded by ``seed`` and ``epoch``, identical on all workers) is
    padded by wrapping to a multiple of ``world`` and dealt round-robin, as DistributedSampler
    does; the last incomplete batch is dropped (BatchNorm needs > 1 sample).
    """
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    perm = torch.randperm(n, generator=g)
    per_rank = math.ceil(n / ctx.world)
    perm = torch.cat([perm, perm[: per_rank * ctx.world - n]])[ctx.rank :: ctx.world]
    for b in range(max(1, per_rank // batch_size)):
        yield perm[b * batch_size : (b + 1) * batch_size]


def make_optimizer(params: Any, kind: str, lr: float, momentum: float, nesterov: bool, wd: float) -> torch.optim.Optimizer:
    if kind == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0, weight_decay=wd)


def make_scheduler(opt: torch.optim.Optimizer, schedule: str, epochs: int, gamma: float = 0.9) -> Any:
    """A per-epoch LR schedule: cosine to 0 over ``epochs``, exponential(``gamma``) or constant."""
    if schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    if schedule == "exponential":
        return torch.optim.lr_scheduler.ExponentialLR(opt, gamma=gamma)
    return torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0, total_iters=0)


def unwrap(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model)


def restore(
    model: nn.Module, opt: torch.optim.Optimizer, sched: Any, config: dict[str, Any] | None = None,
) -> tuple[int, list[dict[str, Any]], dict[str, Any]]:
    """Load the run's latest checkpoint, if any, into the (unwrapped) model, optimiser and schedule.

    Args:
        config: the loop config; for an in-process run its ``LOCAL_RUN_DIR`` holds the checkpoints.

    Returns:
        ``(start_epoch (0-based), history, extra)``; ``(0, [], {})`` for a fresh run.
    """
    if in_process(config):
        found = epoch_dirs(Path(config[LOCAL_RUN_DIR]))  # type: ignore[index]
        if not found:
            return 0, [], {}
        state = torch.load(found[-1] / STATE_FILE, map_location="cpu", weights_only=True)
    else:
        ckpt = ray.train.get_checkpoint()
        if ckpt is None:
            return 0, [], {}
        with ckpt.as_directory() as d:
            state = torch.load(Path(d) / STATE_FILE, map_location="cpu", weights_only=True)
    unwrap(model).load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    return int(state["epoch"]) + 1, list(state["history"]), dict(state.get("extra", {}))


def mean_across_workers(total: float, count: int, ctx: WorkerContext) -> float:
    """Global mean of a per-worker ``total / count``."""
    t = torch.tensor([total, float(count)], dtype=torch.float64)
    if ctx.distributed:
        t = t.to(ctx.device)
        dist.all_reduce(t)
    return float(t[0] / max(t[1], 1.0))


def report_epoch(
    ctx: WorkerContext, metrics: dict[str, Any], model: nn.Module, opt: torch.optim.Optimizer,
    sched: Any, epoch: int, history: list[dict[str, Any]], extra: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
) -> None:
    """Report ``metrics`` and a checkpoint of the epoch (written by rank 0); a barrier for all."""
    if ctx.rank != 0:
        ray.train.report(metrics, checkpoint=None)
        return
    state = {
        "model": {k: v.detach().cpu() for k, v in unwrap(model).state_dict().items()},
        "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
        "epoch": epoch, "history": history, "extra": dict(extra or {}),
    }
    name = f"epoch_{epoch + 1:04d}"
    if in_process(config):
        _report_local(Path(config[LOCAL_RUN_DIR]), name, state, metrics, int(config.get(LOCAL_KEEP, 2)))  # type: ignore[index, union-attr]
        return
    with tempfile.TemporaryDirectory() as d:
        torch.save(state, Path(d) / STATE_FILE)
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(d), checkpoint_dir_name=name)


def _report_local(run_dir: Path, name: str, state: dict[str, Any], metrics: dict[str, Any], keep: int) -> None:
    """In-process: checkpoint into ``run_dir/name`` atomically, keep the newest ``keep``, call back."""
    import shutil

    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=run_dir))
    torch.save(state, tmp / STATE_FILE)
    final = run_dir / name
    if final.exists():  # an epoch redone after a crash
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in epoch_dirs(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    ckpt = ray.train.Checkpoint.from_directory(str(final))
    for cb in _local_callbacks:
        cb.after_report(None, [dict(metrics)], ckpt)


def maybe_inject_failure(config: dict[str, Any], ctx: WorkerContext, epoch: int) -> None:
    """Test hook: crash once after ``config['inject_failure_after_epoch']`` (1-based epoch).

    A marker file (``config['failure_marker']``) makes the crash happen only on the first
    attempt, so a run with ``max_failures >= 1`` restarts and resumes from its checkpoint.
    """
    after, marker = config.get("inject_failure_after_epoch"), config.get("failure_marker")
    if after is None or epoch + 1 != after or ctx.rank != 0 or marker is None or os.path.exists(marker):
        return
    Path(marker).write_text("failed once\n")
    raise RuntimeError(f"injected failure after epoch {after} (test hook)")


@torch.no_grad()
def predict(
    model: nn.Module, images: torch.Tensor, batch_size: int, device: torch.device
) -> tuple[np.ndarray, np.ndarray]:
    """``(logits float32 [N, C], features float32 [N, D])`` of uint8 images ``[N, H, W, 3]``."""
    model = unwrap(model)
    was_training = model.training
    model.eval()
    logits, feats = [], []
    for s in range(0, len(images), batch_size):
        x = to_float(images[s : s + batch_size].to(device))
        lo, fe = model.forward_with_features(x)
        logits.append(lo.float().cpu())
        feats.append(fe.float().cpu())
    model.train(was_training)
    if not logits:
        return np.zeros((0, 0), np.float32), np.zeros((0, 0), np.float32)
    return torch.cat(logits).numpy(), torch.cat(feats).numpy()


def evaluate_split(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, device: torch.device, prefix: str = "val"
) -> dict[str, float]:
    """``{prefix/acc, prefix/macro_f1}`` of ``model`` on a labelled split (rank 0 only)."""
    logits, _ = predict(model, images, 256, device)
    m = classification_metrics(labels.numpy(), logits.argmax(1))
    return {f"{prefix}/acc": m["accuracy"], f"{prefix}/macro_f1": m["macro_f1"]}
