"""Training throughput on this machine: Ray Train vs plain PyTorch, data vs model, 1 vs 2 workers.

Builds a source store from the embedded synthetic benchmark (RAF-DB layout, 32 px), then:

1. a plain PyTorch loop and Ray Train with 1 worker, same model (``small``), data, batch
   size and augmentation: steady-state images/s (epochs after the first) and wall time;
2. the data pipeline alone (FaceStore arrays -> augmented float batches) vs the model step
   alone (forward + backward + SGD on a fixed batch): images/s and their ratio;
3. Ray Train with 2 workers x 1 CPU (DDP, gloo) on the same 2-core machine.

Usage: ``python benchmarks/bench_train.py [--rows 2048] [--epochs 3] [--batch-size 64]``
(``--smoke`` runs it tiny). Prints one table.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import torch  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from distfer.config import AugmentConfig, PrepareConfig, SynthConfig, TrainSourceConfig  # noqa: E402
from distfer.data.augment import supervised_augment, to_float  # noqa: E402
from distfer.data.store import FaceStore, prepare  # noqa: E402
from distfer.data.synth import generate  # noqa: E402
from distfer.models import FERModel  # noqa: E402


def build_store(work: Path, rows: int) -> FaceStore:
    out = generate(SynthConfig(out=str(work / "synth"), preset="tiny", source_train=rows, image_size=32))
    return prepare(PrepareConfig(format="rafdb", root=str(out / "rafdb"), out=str(work / "stores"),
                                 name="bench", size=32), quiet=True)


def plain_loop(store: FaceStore, epochs: int, batch: int, threads: int) -> tuple[float, float]:
    """(steady-state images/s, wall s) of the same loop Ray Train runs, without Ray."""
    torch.set_num_threads(threads)
    t_wall = time.perf_counter()
    images, labels, _ = store.load_arrays("train")
    images, labels = torch.from_numpy(images), torch.from_numpy(labels)
    model = FERModel("small", input_size=store.image_size)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    aug, gen, rates = AugmentConfig(), torch.Generator().manual_seed(0), []
    for epoch in range(epochs):
        perm, t0 = torch.randperm(len(images), generator=torch.Generator().manual_seed(epoch)), time.perf_counter()
        n = 0
        for b in range(len(images) // batch):
            pos = perm[b * batch : (b + 1) * batch]
            x = supervised_augment(to_float(images[pos]), aug, gen)
            loss = F.cross_entropy(model(x), labels[pos], label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            n += len(pos)
        rates.append(n / (time.perf_counter() - t0))
    return _steady(rates), time.perf_counter() - t_wall


def _steady(rates: list[float]) -> float:
    return sum(rates[1:]) / len(rates[1:]) if len(rates) > 1 else rates[0]


def ray_loop(store: FaceStore, work: Path, epochs: int, batch: int, workers: int, cpus: float,
             threads: int, tag: str) -> tuple[float, float]:
    from distfer.train import train_source

    cfg = TrainSourceConfig.from_dict({
        "store": str(store.path), "out": str(work / f"out-{tag}"), "epochs": epochs, "batch_size": batch,
        "val_split": None, "lr": 0.05,
        "trainer": {"num_workers": workers, "cpus_per_worker": cpus, "torch_threads": threads,
                    "storage_path": str(work / "ray")},
    })
    t0 = time.perf_counter()
    res = train_source(cfg, run_name=f"bench-{tag}")
    return _steady([h["train/images_per_s"] for h in res.history]), time.perf_counter() - t0


def data_vs_model(store: FaceStore, batch: int, threads: int, steps: int) -> tuple[float, float]:
    torch.set_num_threads(threads)
    images, labels, _ = store.load_arrays("train")
    images, labels = torch.from_numpy(images), torch.from_numpy(labels)
    aug, gen = AugmentConfig(), torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    for _ in range(steps):
        pos = torch.randint(0, len(images), (batch,), generator=gen)
        x = supervised_augment(to_float(images[pos]), aug, gen)
    data_rate = steps * batch / (time.perf_counter() - t0)
    model = FERModel("small", input_size=store.image_size)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    y = labels[:batch]
    for _ in range(2):  # warm-up
        F.cross_entropy(model(x), y).backward()
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return data_rate, steps * batch / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2048)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: checks that it runs")
    a = ap.parse_args()
    if a.smoke:
        a.rows, a.epochs, a.steps = 256, 2, 4
    import ray

    with tempfile.TemporaryDirectory(prefix="distfer-bench-train-") as d:
        work = Path(d)
        store = build_store(work, a.rows)
        n = store.num_rows("train")
        plain_rate, plain_wall = plain_loop(store, a.epochs, a.batch_size, threads=2)
        data_rate, model_rate = data_vs_model(store, a.batch_size, threads=2, steps=a.steps)
        ray.init(num_cpus=2, include_dashboard=True, log_to_driver=False)
        try:
            ray1_rate, ray1_wall = ray_loop(store, work, a.epochs, a.batch_size, 1, 2.0, 2, "w1")
            ray2_rate, ray2_wall = ray_loop(store, work, a.epochs, a.batch_size, 2, 1.0, 1, "w2")
        finally:
            ray.shutdown()
    t = Table(title=f"bench_train: small CNN, {n} images at 32 px, batch {a.batch_size}, "
                    f"{a.epochs} epochs, {os.cpu_count()} CPUs (images/s: epochs after the first)")
    for c in ("measurement", "images/s", "wall s", "ratio", "goal"):
        t.add_column(c, justify="right" if c != "measurement" else "left")
    t.add_row("plain PyTorch loop (2 threads)", f"{plain_rate:.0f}", f"{plain_wall:.1f}", "1.00", "")
    t.add_row("Ray Train, 1 worker (2 threads)", f"{ray1_rate:.0f}", f"{ray1_wall:.1f}",
              f"{ray1_rate / plain_rate:.2f}", ">= 0.9")
    t.add_row("Ray Train, 2 workers x 1 thread (DDP gloo)", f"{ray2_rate:.0f}", f"{ray2_wall:.1f}",
              f"{ray2_rate / plain_rate:.2f}", "report")
    t.add_row("data pipeline alone (store -> augmented batch)", f"{data_rate:.0f}", "", "", "")
    t.add_row("model step alone (fwd + bwd + SGD)", f"{model_rate:.0f}", "", "", "")
    t.add_row("data / model", "", "", f"{data_rate / model_rate:.1f}", ">= 3")
    Console(width=140).print(t)


if __name__ == "__main__":
    main()
