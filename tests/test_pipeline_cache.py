"""The content-addressed stage cache: hit, miss, killed build, fingerprint changes."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from distfer.config import Config
from distfer.fsutil import is_complete
from distfer.pipeline.cache import StageCache


@dataclass(frozen=True)
class _Cfg(Config):
    value: int = 1
    workers: int = 2
    _fingerprint_exclude = frozenset({"workers"})


def test_builds_once_then_hits(tmp_path):
    cache = StageCache(tmp_path / "cache")
    calls = []

    def build(out, scratch):
        calls.append(out)
        (out / "result.txt").write_text("42")
        assert scratch.is_dir()
        return {"rows": 3}

    cfg = _Cfg()
    fp = cfg.fingerprint("upstream-fp")
    first = cache.run("embed", fp, build, config=cfg.to_dict(), inputs=["upstream-fp"])
    assert not first.hit and first.path == tmp_path / "cache" / "embed" / fp
    assert (first.path / "result.txt").read_text() == "42" and is_complete(first.path)
    second = cache.run("embed", fp, build)
    assert second.hit and second.seconds == 0.0 and len(calls) == 1
    rec = cache.record("embed", fp)
    assert rec["inputs"] == ["upstream-fp"] and rec["extra"] == {"rows": 3}
    assert rec["config"]["value"] == 1
    assert not (tmp_path / "cache" / "embed" / f".{fp}.work").exists()


def test_fingerprint_covers_config_and_inputs_not_excluded_fields():
    base = _Cfg().fingerprint("a")
    assert _Cfg(workers=8).fingerprint("a") == base  # resources do not change results
    assert _Cfg(value=2).fingerprint("a") != base
    assert _Cfg().fingerprint("b") != base


def test_killed_build_leaves_nothing_complete_and_is_redone(tmp_path):
    cache = StageCache(tmp_path / "cache")

    def crash(out, scratch):
        (out / "half.txt").write_text("partial")
        (scratch / "ckpt").write_text("epoch 1")
        raise KeyboardInterrupt  # as if the user pressed Ctrl-C mid-stage

    with pytest.raises(KeyboardInterrupt):
        cache.run("pretrain", "abc", crash)
    assert cache.lookup("pretrain", "abc") is None
    assert not (tmp_path / "cache" / "pretrain" / "abc").exists()

    seen = {}

    def resume(out, scratch):
        seen["ckpt"] = (scratch / "ckpt").read_text()  # scratch survives for resuming
        (out / "done.txt").write_text("ok")

    res = cache.run("pretrain", "abc", resume)
    assert not res.hit and seen["ckpt"] == "epoch 1"
    assert cache.lookup("pretrain", "abc") == res.path
    assert json.loads((res.path / "stage.json").read_text())["stage"] == "pretrain"


def test_bad_names(tmp_path):
    cache = StageCache(tmp_path)
    with pytest.raises(ValueError):
        cache.path("a/b", "fp")
    with pytest.raises(FileNotFoundError):
        cache.record("embed", "missing")
