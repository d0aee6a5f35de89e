"""Write the synthetic benchmark to disk in the RAF-DB basic and SFEW 2.0 layouts.

``<out>/rafdb`` is the posed "lab" source domain, ``<out>/sfew`` the in-the-wild target domain.
Each folder is built under a temporary name and renamed when complete (with a ``_COMPLETE``
marker and a ``synth.json`` describing what was generated), so a killed run never leaves a
folder that looks finished. Re-running with the same preset, counts, size and seed is a no-op.
Images are a deterministic function of the configuration: the parameters of every image are
drawn up front from a generator seeded by (seed, domain, split), and rendering is pure.
"""

from __future__ import annotations

import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image
from rich.progress import Progress

from distfer import __version__
from distfer.classes import CLASSES, counts_per_class
from distfer.config import SynthConfig
from distfer.data.synth.params import DOMAINS, DomainSpec, sample_domain
from distfer.data.synth.render import render_batch
from distfer.errors import DataError
from distfer.fsutil import atomic_directory, ensure_output_dir, is_complete

#: SFEW 2.0 class folder names, indexed by canonical class id.
SFEW_FOLDERS: tuple[str, ...] = ("Surprise", "Fear", "Disgust", "Happy", "Sad", "Angry", "Neutral")
META_FILE = "synth.json"
#: bump whenever rendering or sampling changes, so old outputs are not mistaken for new ones
RENDER_VERSION = 3
_CHUNK = 100  # images per rendering task
_SPLIT_CODE = {"train": 0, "test": 1, "val": 2}
_DOMAIN_CODE = {"lab": 11, "wild": 23}


def split_params(seed: int, spec: DomainSpec, split: str, n: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Labels and render parameters of one split (deterministic in ``seed``, domain, split)."""
    rng = np.random.default_rng([seed, _DOMAIN_CODE[spec.name], _SPLIT_CODE[split]])
    return sample_domain(rng, n, spec)


def _write_chunk(task: tuple[dict[str, np.ndarray], list[str], int, str]) -> int:
    """Render one chunk of images and write them to ``paths`` (runs in a worker process)."""
    params, paths, size, fmt = task
    images = render_batch(params, size)
    for img, path in zip(images, paths):
        if fmt == "jpg":  # RAF-DB ships JPEGs; fixed settings keep the bytes deterministic
            Image.fromarray(img).save(path, format="JPEG", quality=95, subsampling=0)
        else:
            Image.fromarray(img).save(path, format="PNG", compress_level=6)
    return len(paths)


def _rafdb_paths(root: Path, split: str, n: int) -> tuple[list[str], list[str]]:
    names = [f"{split}_{i + 1:05d}.jpg" for i in range(n)]
    files = [str(root / "Image" / "aligned" / f"{split}_{i + 1:05d}_aligned.jpg") for i in range(n)]
    return names, files


def _sfew_paths(root: Path, split: str, labels: np.ndarray) -> list[str]:
    top = "Train" if split == "train" else "Val"
    return [
        str(root / top / f"{top}_Aligned_Faces" / SFEW_FOLDERS[c] / f"synth_{split}_{i + 1:05d}.png")
        for i, c in enumerate(labels)
    ]


def _render_all(jobs: list[tuple[dict[str, np.ndarray], list[str], str]], cfg: SynthConfig, what: str) -> None:
    """Render ``jobs`` ((params, paths, fmt) per split) in chunks, with a progress bar."""
    tasks = []
    for params, paths, fmt in jobs:
        for s in range(0, len(paths), _CHUNK):
            chunk = {k: v[s:s + _CHUNK] for k, v in params.items()}
            tasks.append((chunk, paths[s:s + _CHUNK], cfg.image_size, fmt))
    total = sum(len(t[1]) for t in tasks)
    with Progress(transient=True) as bar:
        job = bar.add_task(f"synth {what}", total=total)
        if cfg.workers == 1:
            for t in tasks:
                bar.advance(job, _write_chunk(t))
            return
        ctx = multiprocessing.get_context("spawn")  # safe inside Ray/torch processes
        with ProcessPoolExecutor(max_workers=cfg.workers, mp_context=ctx) as pool:
            for done in pool.map(_write_chunk, tasks):
                bar.advance(job, done)


def _meta(cfg: SynthConfig, spec: DomainSpec, layout: str, splits: dict[str, np.ndarray]) -> dict:
    return {
        "generator": "distfer synth", "version": __version__, "render_version": RENDER_VERSION, "layout": layout,
        "domain": spec.name, "fingerprint": _fingerprint(cfg), "preset": cfg.preset,
        "seed": cfg.seed, "image_size": cfg.image_size, "classes": list(CLASSES),
        "priors": list(spec.priors),
        "splits": {s: {"count": len(y), "per_class": counts_per_class(y)} for s, y in splits.items()},
    }


def _fingerprint(cfg: SynthConfig) -> str:
    return cfg.fingerprint(f"render-v{RENDER_VERSION}")


def _up_to_date(root: Path, cfg: SynthConfig) -> bool:
    """True when ``root`` is a complete synth folder of exactly this configuration."""
    if not is_complete(root):
        return False
    try:
        return json.loads((root / META_FILE).read_text())["fingerprint"] == _fingerprint(cfg)
    except (OSError, ValueError, KeyError):
        return False


def _describe(root: Path) -> str:
    """What an existing folder holds, for error messages."""
    try:
        m = json.loads((root / META_FILE).read_text())
        state = "complete" if is_complete(root) else "incomplete"
        return f"{state} synth output, preset {m['preset']!r}, seed {m['seed']}, size {m['image_size']}"
    except (OSError, ValueError, KeyError):
        return "not a synth output"


def _build(root: Path, cfg: SynthConfig, layout: str) -> None:
    counts = cfg.counts()
    if layout == "rafdb":
        spec, plan = DOMAINS["lab"], (("train", counts["source_train"]), ("test", counts["source_test"]))
    else:
        spec, plan = DOMAINS["wild"], (("train", counts["target_train"]), ("val", counts["target_val"]))
    if root.exists() and not cfg.overwrite:
        raise DataError(
            f"{root} exists but is not a complete `distfer synth` output of this configuration "
            f"(preset {cfg.preset!r}, seed {cfg.seed}; found: {_describe(root)}); "
            "pass --overwrite to replace it, or choose another --out"
        )
    with atomic_directory(root, overwrite=True) as tmp:
        jobs, splits, label_lines = [], {}, []
        for split, n in plan:
            labels, params = split_params(cfg.seed, spec, split, n)
            splits[split] = labels
            if layout == "rafdb":
                names, paths = _rafdb_paths(tmp, split, n)
                label_lines += [f"{name} {int(c) + 1}" for name, c in zip(names, labels)]
            else:
                paths = _sfew_paths(tmp, split, labels)
            for d in sorted({str(Path(p).parent) for p in paths}):
                Path(d).mkdir(parents=True, exist_ok=True)
            jobs.append((params, paths, "jpg" if layout == "rafdb" else "png"))
        if layout == "rafdb":
            (tmp / "EmoLabel").mkdir()
            (tmp / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(label_lines) + "\n")
        _render_all(jobs, cfg, layout)
        (tmp / META_FILE).write_text(json.dumps(_meta(cfg, spec, layout, splits), indent=2) + "\n")


def generate(cfg: SynthConfig) -> Path:
    """Generate (or reuse) the benchmark under ``cfg.out``.

    Writes ``<out>/rafdb`` (RAF-DB basic layout: ``EmoLabel/list_patition_label.txt`` and
    ``Image/aligned/<split>_NNNNN_aligned.jpg``, ids 1..7) and ``<out>/sfew`` (SFEW 2.0 layout:
    ``Train/Train_Aligned_Faces/<Class>/*.png`` and ``Val/Val_Aligned_Faces/<Class>/*.png``).
    A folder already complete for this exact configuration is left untouched.

    Returns:
        The resolved output directory ``cfg.out``.

    Raises:
        DataError: ``cfg.out`` is not a writable directory, or a target folder exists with other
            contents and ``cfg.overwrite`` is false.
    """
    out = ensure_output_dir(cfg.out, what="synth output directory")
    for layout in ("rafdb", "sfew"):
        root = out / layout
        if not _up_to_date(root, cfg):
            _build(root, cfg, layout)
    return out


def read_meta(out: str | Path) -> dict[str, dict]:
    """The ``synth.json`` of both domains of a generated benchmark (keys ``rafdb``, ``sfew``).

    Raises:
        DataError: a domain folder is missing or incomplete.
    """
    metas = {}
    for layout in ("rafdb", "sfew"):
        root = Path(out) / layout
        if not is_complete(root):
            raise DataError(f"{root} is not a complete synthetic benchmark; run `distfer synth --out {out}`")
        metas[layout] = json.loads((root / META_FILE).read_text())
    return metas
