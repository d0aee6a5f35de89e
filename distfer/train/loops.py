"""``train_fn_per_worker`` for each training stage: source, SwAV pretraining, adaptation.

Each function receives ``{"cfg": <stage config as a dict>, ...}`` from
:func:`distfer.train.trainer.fit`, resumes from the run's latest checkpoint when there is
one, trains with torch DDP (through ``ray.train.torch.prepare_model``; or in the caller's
process with ``num_workers: 0``, see :mod:`distfer.train.common`), reports metrics and a
checkpoint every epoch and returns ``{"history": [...], "start_epoch": int}`` (rank 0's return
value reaches the caller). Metrics: ``epoch`` (1-based), ``train/loss``, ``lr`` and, with a
labelled validation split, ``val/acc`` and ``val/macro_f1``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import torch
from torch import nn
from torch.nn import functional as F

from distfer.config import AdaptConfig, PretrainConfig, TrainSourceConfig
from distfer.data.augment import multi_crop, supervised_augment, to_float
from distfer.models.checkpoint import load_model
from distfer.models.classifier import FERModel
from distfer.ssl.swav import build_swav, swav_loss
from distfer.train import common as C


def _log(ctx: C.WorkerContext, stage: str, m: dict[str, Any], epochs: int) -> None:
    if ctx.rank == 0:
        parts = " ".join(f"{k}={v:.4g}" for k, v in m.items() if k not in ("epoch",) and isinstance(v, float))
        print(f"[{stage}] epoch {m['epoch']}/{epochs} {parts}", flush=True)


def _supervised(
    config: dict[str, Any], stage: str, cfg: TrainSourceConfig | AdaptConfig, model: FERModel,
    images: torch.Tensor, targets: torch.Tensor, loss_fn: Any,
) -> dict[str, Any]:
    """The shared epoch loop of train-source and adapt (``loss_fn(logits, x, batch) -> loss``)."""
    ctx = C.setup_worker(cfg.trainer, cfg.seed, config)
    val = C.load_split(cfg.store, cfg.val_split) if config.get("val") else None
    opt = C.make_optimizer(model.parameters(), getattr(cfg, "optimizer", "sgd"), cfg.lr,
                           cfg.momentum, cfg.nesterov, cfg.weight_decay)
    sched = C.make_scheduler(opt, cfg.schedule, cfg.epochs, cfg.gamma)
    start, history, _ = C.restore(model, opt, sched, config)
    model = C.prepare_model(model, ctx, config)  # to device; DDP when world > 1
    gen = torch.Generator(device=ctx.device).manual_seed(cfg.seed * 7919 + ctx.rank)
    for epoch in range(start, cfg.epochs):
        model.train()
        total, count, t0 = 0.0, 0, time.perf_counter()
        for pos in C.shard_batches(len(images), cfg.batch_size, ctx, cfg.seed, epoch):
            x = supervised_augment(to_float(images[pos].to(ctx.device)), cfg.augment, gen)
            loss = loss_fn(model, x, targets[pos].to(ctx.device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, count = total + float(loss.detach()) * len(pos), count + len(pos)
        elapsed = time.perf_counter() - t0
        m: dict[str, Any] = {"epoch": epoch + 1, "train/loss": C.mean_across_workers(total, count, ctx),
                             "lr": opt.param_groups[0]["lr"], "time/epoch_s": elapsed,
                             "train/images_per_s": count * ctx.world / max(elapsed, 1e-9)}
        sched.step()
        if val is not None and ctx.rank == 0:
            m.update(C.evaluate_split(model, val[0], val[1], ctx.device))
        history.append(m)
        _log(ctx, stage, m, cfg.epochs)
        C.report_epoch(ctx, m, model, opt, sched, epoch, history, config=config)
        C.maybe_inject_failure(config, ctx, epoch)
    return {"history": history, "start_epoch": start}


def train_source_loop(config: dict[str, Any]) -> dict[str, Any]:
    """Supervised source training with label smoothing (one Ray Train worker's share)."""
    cfg = TrainSourceConfig.from_dict(config["cfg"])
    images, labels, _ = C.load_split(cfg.store, cfg.split)
    keep = labels >= 0
    images, labels = images[keep], labels[keep]
    model = FERModel(cfg.arch, weight_norm=cfg.weight_norm, input_size=config["input_size"])

    def loss_fn(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(net(x), y, label_smoothing=cfg.label_smoothing)

    return _supervised(config, "train-source", cfg, model, images, labels, loss_fn)


def pseudo_targets(cfg: AdaptConfig, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions into the split and targets of the selected pseudo-labels.

    Returns:
        ``(positions int64 [M], targets)`` with targets int64 [M] (hard) or float32 [M, 7] (soft).
    """
    table = pq.read_table(cfg.pseudo).to_pandas()
    table = table[table["selected"].astype(bool)]
    order = np.argsort(index)
    pos = order[np.searchsorted(index[order], table["index"].to_numpy(np.int64))]
    if cfg.targets == "soft":
        return pos, np.array(np.stack(table["soft"].to_numpy()), dtype=np.float32)
    return pos, np.array(table["label"].to_numpy(), dtype=np.int64)


def adapt_model(cfg: AdaptConfig) -> FERModel:
    """The model adaptation starts from: the init checkpoint's encoder and a fresh head."""
    init, meta = load_model(cfg.init)
    model = FERModel(meta["arch"], init.num_classes, weight_norm=cfg.weight_norm,
                     input_size=meta["input_size"], mean=meta["mean"], std=meta["std"])
    model.encoder.load_state_dict(init.encoder.state_dict())
    if cfg.keep_head:  # the checkpoint's own head (weight norm as it was trained)
        model.head, model.use_weight_norm = init.head, bool(meta["weight_norm"])
    return model


def adapt_loop(config: dict[str, Any]) -> dict[str, Any]:
    """Fine-tune on the selected pseudo-labels with mixup (alpha) and the mixaug term.

    Loss of a batch with targets ``t``, mixed with a permutation ``p`` and ``lam ~ Beta(a, a)``
    (``lam = 1`` when ``a = 0``), ``z = model(lam * x + (1 - lam) * x[p])``::

        lam * L(z, t) + (1 - lam) * L(z, t[p]) + mixaug * L(z, t)

    where L is cross-entropy (hard) or KL(t || softmax z) (soft). The last term is our reading
    of CluP's ``mixaug_alpha``: an extra pull of the mixed image towards the labels of its
    unpermuted (first) component.
    """
    cfg = AdaptConfig.from_dict(config["cfg"])
    images, _, index = C.load_split(cfg.store, cfg.split)
    pos, targets = pseudo_targets(cfg, index.numpy())
    images, targets_t = images[torch.from_numpy(pos)], torch.from_numpy(targets)
    rng = np.random.default_rng(cfg.seed + 1_000_003 * C.rank_world(config)[0])

    def crit(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if cfg.targets == "soft":
            return F.kl_div(F.log_softmax(z, 1), t, reduction="batchmean")
        return F.cross_entropy(z, t, label_smoothing=cfg.label_smoothing)

    def loss_fn(net: nn.Module, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        lam = float(rng.beta(cfg.mixup_alpha, cfg.mixup_alpha)) if cfg.mixup_alpha > 0 else 1.0
        perm = torch.from_numpy(rng.permutation(len(x))).to(x.device)
        z = net(lam * x + (1 - lam) * x[perm])
        loss = lam * crit(z, t) + (1 - lam) * crit(z, t[perm])
        return loss + cfg.mixaug * crit(z, t) if cfg.mixaug > 0 else loss

    return _supervised(config, "adapt", cfg, adapt_model(cfg), images, targets_t, loss_fn)


def pretrain_loop(config: dict[str, Any]) -> dict[str, Any]:
    """SwAV with multi-crop; prototypes receive no update for ``freeze_prototypes_steps`` steps."""
    cfg = PretrainConfig.from_dict(config["cfg"])
    ctx = C.setup_worker(cfg.trainer, cfg.seed, config)
    images, _, _ = C.load_split(cfg.store, cfg.split)
    backbone = FERModel(cfg.arch, input_size=config["input_size"])
    if cfg.init:
        backbone.encoder.load_state_dict(load_model(cfg.init, arch=cfg.arch)[0].encoder.state_dict())
    net, loss_mod = build_swav(cfg, backbone, distributed=ctx.world > 1)
    opt = C.make_optimizer(net.parameters(), "sgd", cfg.lr, cfg.momentum, False, cfg.weight_decay)
    sched = C.make_scheduler(opt, cfg.schedule, cfg.epochs)
    start, history, extra = C.restore(net, opt, sched, config)
    step = int(extra.get("step", 0))
    raw = net
    net = C.prepare_model(net, ctx, config)
    gen = torch.Generator(device=ctx.device).manual_seed(cfg.seed * 7919 + ctx.rank)
    for epoch in range(start, cfg.epochs):
        net.train()
        total, count, t0 = 0.0, 0, time.perf_counter()
        for pos in C.shard_batches(len(images), cfg.batch_size, ctx, cfg.seed, epoch):
            raw.normalize_prototypes()
            g_views, l_views = multi_crop(to_float(images[pos].to(ctx.device)), cfg, gen)
            loss = swav_loss(net, loss_mod, g_views, l_views)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if step < cfg.freeze_prototypes_steps:
                for p in raw.prototype_parameters():
                    p.grad = None
            opt.step()
            step += 1
            total, count = total + float(loss.detach()) * len(pos), count + len(pos)
        m = {"epoch": epoch + 1, "train/loss": C.mean_across_workers(total, count, ctx),
             "lr": opt.param_groups[0]["lr"], "step": step, "time/epoch_s": time.perf_counter() - t0}
        sched.step()
        history.append(m)
        _log(ctx, "pretrain", m, cfg.epochs)
        C.report_epoch(ctx, m, net, opt, sched, epoch, history, extra={"step": step}, config=config)
        C.maybe_inject_failure(config, ctx, epoch)
    return {"history": history, "start_epoch": start}
