"""Content-addressed stage cache: ``<output>/cache/<stage>/<fingerprint>/``.

A stage's output folder is named by the fingerprint of its config and of its inputs'
fingerprints (:meth:`distfer.config.Config.fingerprint`), so any change upstream gives a new
folder and an unchanged stage is found again. The folder is built under a temporary name and
renamed into place after its completion marker is written
(:func:`distfer.fsutil.atomic_directory`): a re-run skips a completed stage, and a stage killed
half-way left only a ``.tmp-`` folder that nothing reads, so it is redone.

Each completed folder holds ``stage.json`` (stage name, fingerprint, config, inputs, seconds
it took), so a person can see what produced it.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distfer.fsutil import atomic_directory, atomic_write_text, is_complete

__all__ = ["StageCache", "CachedStage", "STAGE_RECORD"]

STAGE_RECORD = "stage.json"


@dataclass(frozen=True)
class CachedStage:
    """Where a stage's output lives and whether this call built it.

    Attributes:
        stage: the stage name (``prepare``, ``source``, ``pretrain``, ``embed``...).
        fingerprint: the folder's content address.
        path: the completed output folder.
        hit: True when the folder was already complete and nothing ran.
        seconds: time this call spent building it (0 for a hit).
        built_seconds: time the original build took (from ``stage.json``).
    """

    stage: str
    fingerprint: str
    path: Path
    hit: bool
    seconds: float
    built_seconds: float


class StageCache:
    """Stage outputs under ``root`` (normally ``<output>/cache``), one folder per fingerprint."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()

    def path(self, stage: str, fingerprint: str) -> Path:
        """The final folder of ``stage`` with ``fingerprint`` (complete or not)."""
        if not stage or "/" in stage or not fingerprint or "/" in fingerprint:
            raise ValueError(f"bad stage name or fingerprint: {stage!r}, {fingerprint!r}")
        return self.root / stage / fingerprint

    def scratch(self, stage: str, fingerprint: str) -> Path:
        """A persistent work folder for a stage being built (e.g. Ray Train checkpoints).

        It survives a killed run, so a re-run can resume from it; it is removed once the stage
        completes.
        """
        p = self.root / stage / f".{fingerprint}.work"
        p.mkdir(parents=True, exist_ok=True)
        return p

    def lookup(self, stage: str, fingerprint: str) -> Path | None:
        """The completed folder, or None when the stage has not completed."""
        p = self.path(stage, fingerprint)
        return p if is_complete(p) else None

    def record(self, stage: str, fingerprint: str) -> dict[str, Any]:
        """The ``stage.json`` of a completed stage.

        Raises:
            FileNotFoundError: the stage has not completed.
        """
        p = self.lookup(stage, fingerprint)
        if p is None:
            raise FileNotFoundError(f"stage {stage} {fingerprint} has not completed under {self.root}")
        return json.loads((p / STAGE_RECORD).read_text())

    def run(
        self,
        stage: str,
        fingerprint: str,
        build: Callable[[Path, Path], Mapping[str, Any] | None],
        *,
        config: Mapping[str, Any] | None = None,
        inputs: Sequence[str] = (),
    ) -> CachedStage:
        """Return the completed folder of ``stage``, building it with ``build`` if needed.

        Args:
            stage: stage name.
            fingerprint: content address (config + input fingerprints).
            build: ``build(tmp_dir, scratch_dir) -> extra`` writes the stage output into
                ``tmp_dir``; ``scratch_dir`` persists across killed runs (for resumable work);
                the optional mapping it returns is stored in ``stage.json`` under ``extra``.
            config: the stage config (plain dict) recorded in ``stage.json``.
            inputs: the upstream fingerprints, recorded in ``stage.json``.

        Returns:
            the :class:`CachedStage`; ``hit`` tells whether anything ran.
        """
        final = self.path(stage, fingerprint)
        if is_complete(final):
            rec = json.loads((final / STAGE_RECORD).read_text())
            return CachedStage(stage, fingerprint, final, True, 0.0, float(rec.get("seconds", 0.0)))
        scratch = self.scratch(stage, fingerprint)
        t0 = time.perf_counter()
        # ``final`` may exist without a marker only if something outside distfer made it
        with atomic_directory(final, overwrite=True) as tmp:
            extra = build(tmp, scratch)
            seconds = time.perf_counter() - t0
            rec = {
                "stage": stage,
                "fingerprint": fingerprint,
                "config": dict(config or {}),
                "inputs": list(inputs),
                "seconds": seconds,
                "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "extra": dict(extra or {}),
            }
            atomic_write_text(tmp / STAGE_RECORD, json.dumps(rec, indent=2, sort_keys=True, default=str))
        shutil.rmtree(scratch, ignore_errors=True)
        return CachedStage(stage, fingerprint, final, False, seconds, seconds)
