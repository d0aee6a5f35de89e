#!/usr/bin/env bash
# GPU check for a lent GPU machine: faiss GPU k-means (N=1M, d=128, K=1000) and ResNet-18
# training images/s with AMP (distfer's FERModel, batch augmentation on the GPU). Prints a table.
#
#   bash benchmarks/gpu_check.sh            # from the repository root, venv in .venv (or $PYTHON)
#
# Exits 3 with a clear message when no CUDA GPU is visible. faiss must be the GPU build
# (faiss-gpu: `pip install -e ".[gpu]"` in a fresh venv; never next to faiss-cpu); with a CPU-only
# faiss the k-means row falls back to a torch k-means on the GPU and says so.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu_check: no NVIDIA GPU here (nvidia-smi missing or failing); run this on a GPU machine" >&2
  exit 3
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

"$PY" - <<'PYEOF'
import sys
import time

import numpy as np
import torch

if not torch.cuda.is_available():
    print("gpu_check: torch sees no CUDA device (torch %s, CUDA build %s); check the driver, "
          "CUDA_VISIBLE_DEVICES, and that torch is a CUDA build"
          % (torch.__version__, torch.version.cuda), file=sys.stderr)
    sys.exit(3)

from torch.nn import functional as F

from distfer.config import AugmentConfig
from distfer.data.augment import supervised_augment
from distfer.models import FERModel

dev = torch.device("cuda")
rows = []  # (measurement, value, unit, note)


def sync():
    torch.cuda.synchronize()


# ---- 1. k-means, N = 1M, d = 128, K = 1000, 20 iterations ---------------------------------
N, D, K, ITERS = 1_000_000, 128, 1000, 20
rng = np.random.default_rng(0)
centers = rng.normal(size=(K, D)).astype(np.float32) * 4
x = (centers[rng.integers(0, K, N)] + rng.normal(size=(N, D)).astype(np.float32))
try:
    import faiss

    ngpu = faiss.get_num_gpus()
except ImportError:
    faiss, ngpu = None, 0
if faiss is not None and ngpu > 0:
    km = faiss.Kmeans(D, K, niter=ITERS, seed=0, gpu=True, max_points_per_centroid=N // K + 1,
                      verbose=False)
    t0 = time.perf_counter()
    km.train(x)
    dt = time.perf_counter() - t0
    rows.append((f"faiss GPU k-means N={N:,} d={D} K={K} x{ITERS} it", f"{dt:.2f}", "s",
                 f"faiss {faiss.__version__}, {ngpu} GPU(s), inertia {km.obj[-1]:.4g}"))
else:
    why = "faiss not installed" if faiss is None else "faiss has no GPU support (faiss-cpu build)"
    xt = torch.from_numpy(x).to(dev)
    g = torch.Generator(device="cpu").manual_seed(0)
    c = xt[torch.randperm(N, generator=g)[:K].to(dev)].clone()
    sync()
    t0 = time.perf_counter()
    for _ in range(ITERS):
        d2 = (xt * xt).sum(1, keepdim=True) - 2 * xt @ c.T + (c * c).sum(1)[None]
        a = d2.argmin(1)
        sums = torch.zeros_like(c).index_add_(0, a, xt)
        cnt = torch.bincount(a, minlength=K).clamp_min(1).unsqueeze(1).float()
        c = sums / cnt
    sync()
    dt = time.perf_counter() - t0
    rows.append((f"torch GPU k-means N={N:,} d={D} K={K} x{ITERS} it", f"{dt:.2f}", "s",
                 f"FALLBACK: {why}"))
del x

# ---- 2. ResNet-18 training images/s (AMP bf16/fp16 vs fp32), distfer model + GPU augment ----
def train_rate(arch: str, size: int, batch: int, amp: str | None, steps: int = 30) -> float:
    torch.manual_seed(0)
    model = FERModel(arch, input_size=size).to(dev).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp or "", None)
    scaler = torch.amp.GradScaler("cuda", enabled=amp == "fp16")
    images = torch.randint(0, 256, (batch * 4, 3, size, size), dtype=torch.uint8, device=dev)
    labels = torch.randint(0, 7, (batch * 4,), device=dev)
    aug, gen = AugmentConfig(), torch.Generator(device=dev).manual_seed(0)

    def step(i: int) -> None:
        s = (i % 4) * batch
        xb = supervised_augment(images[s : s + batch].float().div_(255), aug, gen)
        xb = xb.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cuda", dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = F.cross_entropy(model(xb), labels[s : s + batch], label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    for i in range(5):
        step(i)
    sync()
    t0 = time.perf_counter()
    for i in range(steps):
        step(i)
    sync()
    return steps * batch / (time.perf_counter() - t0)


amp = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
for arch, size, batch in (("resnet18_small", 112, 256), ("resnet18", 224, 256)):
    fp32 = train_rate(arch, size, batch, None)
    mixed = train_rate(arch, size, batch, amp)
    rows.append((f"{arch} train {size}px batch {batch} fp32", f"{fp32:,.0f}", "images/s", ""))
    rows.append((f"{arch} train {size}px batch {batch} AMP {amp}", f"{mixed:,.0f}", "images/s",
                 f"x{mixed / fp32:.2f} vs fp32"))

name = torch.cuda.get_device_name(0)
w = max(len(r[0]) for r in rows)
print(f"\ngpu_check on {name} (torch {torch.__version__}, CUDA {torch.version.cuda})")
print(f"{'measurement':<{w}}  {'value':>10}  {'unit':<9} note")
print("-" * (w + 40))
for m, v, u, note in rows:
    print(f"{m:<{w}}  {v:>10}  {u:<9} {note}")
PYEOF
