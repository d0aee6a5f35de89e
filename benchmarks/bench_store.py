"""FaceStore torch view vs torchvision ImageFolder + PIL: images/s into batched float tensors.

Writes N synthetic 64 px face-like images (smooth blobs + noise, so PNG/JPEG sizes are
realistic) as PNG and JPEG image folders into a temporary directory, prepares a FaceStore from
the PNG folder (same size, no resize at load time), then times one full pass of a torch
DataLoader (same batch size, same worker count, shuffled) over each source. Prints a table
with the ratio; the goal is >= 5x over ImageFolder.

    python benchmarks/bench_store.py [--images 5000] [--size 64] [--batch 64] [--workers 0]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from rich.console import Console
from rich.table import Table
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from distfer.classes import CLASSES
from distfer.config import PrepareConfig
from distfer.data.store import prepare


def write_images(root: Path, n: int, size: int, seed: int = 0) -> None:
    """``n`` images in ``root/{png,jpg}/train/<class>/`` (7 classes, round robin)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for i in range(n):
        cx, cy, r = rng.uniform(0.3, 0.7, 2).tolist() + [rng.uniform(0.2, 0.4)]
        face = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
        colour = rng.uniform(80, 230, 3)
        arr = face[..., None] * colour + rng.normal(0, 12, (size, size, 3)) + 20
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
        cls = CLASSES[i % len(CLASSES)]
        for ext in ("png", "jpg"):
            d = root / ext / "train" / cls
            d.mkdir(parents=True, exist_ok=True)
            img.save(d / f"{i:06d}.{ext}", quality=90) if ext == "jpg" else img.save(d / f"{i:06d}.png")


def images_per_second(loader: DataLoader) -> tuple[float, int]:
    """One full pass; returns (images/s, images seen). Batches are float tensors [B, 3, H, W]."""
    t0, n = time.perf_counter(), 0
    for images, _labels, *_ in loader:
        assert images.dtype == torch.float32 and images.ndim == 4
        n += images.shape[0]
    return n / (time.perf_counter() - t0), n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers (same for both)")
    args = ap.parse_args()
    console = Console()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="bench_store_") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        write_images(root, args.images, args.size)
        console.print(f"wrote {args.images} PNG + JPEG images ({args.size} px) in {time.perf_counter() - t0:.1f} s")
        cfg = PrepareConfig(format="imagefolder", root=str(root / "png"), out=str(root / "stores"), size=args.size)
        t0 = time.perf_counter()
        store = prepare(cfg, quiet=True)
        prep_s = time.perf_counter() - t0
        console.print(f"prepared the FaceStore in {prep_s:.1f} s ({args.images / prep_s:.0f} images/s, one-off)")

        def loader(ds: torch.utils.data.Dataset) -> DataLoader:
            return DataLoader(ds, batch_size=args.batch, shuffle=True, num_workers=args.workers)

        results = {"FaceStore torch view": images_per_second(loader(store.torch_dataset("train")))}
        for ext in ("png", "jpg"):
            folder = datasets.ImageFolder(str(root / ext / "train"), transform=transforms.ToTensor())
            results[f"ImageFolder + PIL ({ext.upper()})"] = images_per_second(loader(folder))
    base = results["FaceStore torch view"][0]
    table = Table(title=f"{args.images} images, {args.size} px, batch {args.batch}, {args.workers} loader workers")
    for col in ("source", "images/s", "FaceStore speed-up"):
        table.add_column(col, justify="left" if col == "source" else "right")
    for name, (rate, n) in results.items():
        assert n == args.images, (name, n)
        table.add_row(name, f"{rate:,.0f}", "1.0x" if name.startswith("FaceStore") else f"{base / rate:.1f}x")
    console.print(table)


if __name__ == "__main__":
    main()
