"""The shared stages of an experiment, each run through the content-addressed cache.

synth (embedded benchmark only) -> prepare (source, target) -> source (train-source, or a
given checkpoint) -> pretrain (SwAV on the target) -> embed (target train + val).

Each function builds the stage's frozen config from the :class:`~distfer.config.ExperimentConfig`
sections, computes its fingerprint from that config and its inputs' fingerprints, and calls the
stage's own Python API (the same one ``distfer <stage>`` calls) inside
:meth:`StageCache.run`. Ray Train stages keep their checkpoints in the cache's scratch folder,
so a killed stage resumes from its last epoch when the experiment is run again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distfer.config import (
    EmbedConfig,
    ExperimentConfig,
    PrepareConfig,
    PretrainConfig,
    SynthConfig,
    TrainerConfig,
    TrainSourceConfig,
)
from distfer.errors import ConfigError
from distfer.fsutil import require_file
from distfer.pipeline.cache import CachedStage, StageCache

__all__ = ["Artifact", "synth_stage", "prepare_stage", "source_stage", "pretrain_stage", "embed_stage",
           "trainer_section"]


@dataclass(frozen=True)
class Artifact:
    """A stage's product: its main path, fingerprint and the cache entry (None if not cached)."""

    path: Path
    fingerprint: str
    cached: CachedStage | None

    @property
    def seconds(self) -> float:
        return 0.0 if self.cached is None else self.cached.seconds

    @property
    def hit(self) -> bool:
        return self.cached is None or self.cached.hit


def trainer_section(exp: ExperimentConfig, section: dict[str, Any], storage: Path) -> dict[str, Any]:
    """A stage's ``trainer`` mapping: experiment-wide resources, the stage's own, then storage."""
    return {**exp.trainer, **dict(section.get("trainer", {})), "storage_path": str(storage)}


def _file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def synth_stage(cache: StageCache, exp: ExperimentConfig) -> Artifact:
    """Generate the embedded synthetic benchmark (folder holding ``rafdb/`` and ``sfew/``)."""
    from distfer.data.synth import generate

    cfg = SynthConfig.from_dict({"out": "-", **exp.synth})
    fp = cfg.fingerprint()

    def build(tmp: Path, scratch: Path) -> dict[str, Any]:
        generate(cfg.replace(out=str(tmp)))
        return {"counts": cfg.counts()}

    c = cache.run("synth", fp, build, config=cfg.to_dict())
    return Artifact(c.path, fp, c)


def prepare_stage(cache: StageCache, exp: ExperimentConfig, fmt: str, root: str | Path, name: str) -> Artifact:
    """Decode a dataset once into a FaceStore; ``path`` is the store folder."""
    from distfer.data.formats import ReadOptions, get_reader
    from distfer.data.prepare import input_digest, prepare
    from distfer.fsutil import require_dir

    root = require_dir(root, what=f"{fmt} dataset root")
    cfg = PrepareConfig.from_dict({"format": fmt, "root": str(root), "out": "-", "size": exp.image_size,
                                   **exp.prepare, "name": name})
    opts = ReadOptions(class_map=dict(cfg.class_map), val_fraction=cfg.val_fraction, split_seed=cfg.split_seed)
    fp = cfg.fingerprint(input_digest(get_reader(fmt)(root, opts), root))

    def build(tmp: Path, scratch: Path) -> dict[str, Any]:
        store = prepare(cfg.replace(out=str(tmp)), quiet=False)
        return {"rows": {s: store.num_rows(s) for s in store.splits}}

    c = cache.run(f"prepare-{name}", fp, build, config=cfg.to_dict())
    return Artifact(c.path / name, fp, c)


def source_stage(cache: StageCache, exp: ExperimentConfig, source_store: Artifact | None) -> Artifact:
    """The teacher: ``exp.source_checkpoint`` as given, or a model trained on the source store."""
    if exp.source_checkpoint:
        from distfer.models import load_model

        path = require_file(exp.source_checkpoint, what="source checkpoint")
        load_model(path, num_classes=7)  # a clear error now, not in the embedding workers
        return Artifact(path, _file_hash(path), None)
    from distfer.train.api import train_source

    assert source_store is not None
    probe = TrainSourceConfig.from_dict({"store": str(source_store.path), "out": "-", **exp.train_source})
    fp = probe.fingerprint(source_store.fingerprint)

    def build(tmp: Path, scratch: Path) -> dict[str, Any]:
        cfg = probe.replace(out=str(tmp), trainer=TrainerConfig.from_dict(trainer_section(exp, exp.train_source, scratch)),
                            run_name=f"source-{fp}")
        res = train_source(cfg)
        return {"final": res.final, "history": res.history}

    c = cache.run("source", fp, build, config=probe.to_dict(), inputs=[source_store.fingerprint])
    return Artifact(c.path / "model.pt", fp, c)


def pretrain_stage(cache: StageCache, exp: ExperimentConfig, target_store: Artifact,
                   teacher: Artifact | None = None) -> Artifact:
    """The SwAV encoder pretrained on the (unlabelled) target store; ``path`` is its model.pt.

    With ``exp.pretrain_init == "source"`` SwAV starts from the teacher's encoder (still no
    source data: only the source model) instead of random weights.
    """
    from distfer.train.api import pretrain

    probe = PretrainConfig.from_dict({"store": str(target_store.path), "out": "-", **exp.pretrain})
    inputs = [target_store.fingerprint]
    if exp.pretrain_init == "source":
        if teacher is None:
            raise ConfigError("pretrain_init 'source' needs the source model (train-source or --source-checkpoint)")
        probe = probe.replace(init=str(teacher.path))
        inputs.append(teacher.fingerprint)
    elif probe.init:
        inputs.append(_file_hash(require_file(probe.init, what="pretrain init model")))
    fp = probe.fingerprint(*inputs)

    def build(tmp: Path, scratch: Path) -> dict[str, Any]:
        cfg = probe.replace(out=str(tmp), trainer=TrainerConfig.from_dict(trainer_section(exp, exp.pretrain, scratch)),
                            run_name=f"pretrain-{fp}")
        res = pretrain(cfg)
        return {"final": res.final, "history": res.history}

    c = cache.run("pretrain", fp, build, config=probe.to_dict(), inputs=inputs)
    return Artifact(c.path / "model.pt", fp, c)


def embed_stage(cache: StageCache, exp: ExperimentConfig, target_store: Artifact, teacher: Artifact,
                encoder: Artifact) -> Artifact:
    """Teacher logits/features + SSL features of the target splits; ``path`` holds ``<split>/``."""
    from distfer.train.embedding import embed

    probe = EmbedConfig.from_dict({"store": str(target_store.path), "teacher": str(teacher.path),
                                   "encoder": str(encoder.path), "out": "-", **exp.embed})
    inputs = [target_store.fingerprint, teacher.fingerprint, encoder.fingerprint]
    # paths are not content: the fingerprint covers the inputs' fingerprints instead
    fp = probe.replace(store="-", teacher="-", encoder="-").fingerprint(*inputs)

    def build(tmp: Path, scratch: Path) -> dict[str, Any]:
        res = embed(probe.replace(out=str(tmp / "embeddings")))
        return {"rows": {s: m["rows"] for s, m in res.meta.items()}}

    c = cache.run("embed", fp, build, config=probe.to_dict(), inputs=inputs)
    return Artifact(c.path / "embeddings", fp, c)
