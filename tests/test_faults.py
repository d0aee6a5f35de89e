"""Fault injection (issue 6, item 2): killed Ray Train worker, killed index shard, killed prepare.

- A Ray Train worker process is SIGKILLed in the middle of an epoch (found through the
  session Ray's state API, killed from the test, no hook in the loop; ``tests/test_train_resume.py``
  covers the loop's own exception hook): with ``max_failures=1`` the run restarts from its
  last registered checkpoint and ends with exactly the configured epochs.
- IndexShard actors are killed (``ray.kill(no_restart=False)``) before and during a request:
  they restart, re-read their Parquet shards, and the pseudo-labels equal those of an
  undisturbed group over the same files.
- ``distfer prepare`` is SIGKILLed while it writes: nothing under the output passes for a
  complete store, and a re-run completes.

The sweep (``--resume`` after an interrupted Tune run: finished trials are not re-run) is
tested in ``tests/test_tune_sweep.py::test_grid_then_resume_runs_only_unfinished``, the
shared-stage cache after a killed stage in ``tests/test_pipeline_cache.py``, and a second run
of the whole experiment that retrains nothing in
``tests/test_e2e.py::test_second_run_hits_cache_and_resumes_without_repeating``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distfer.errors import DataError
from distfer.fsutil import is_complete

sys.path.insert(0, str(Path(__file__).parent))
from train_helpers import make_store  # noqa: E402


def _wait_for(predicate, timeout: float, what: str, poll: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _train_worker_pids() -> list[int]:
    """PIDs of the live Ray Train worker actors of this test session's Ray (other Ray clusters
    may run on the same machine, so ask our own cluster's state API)."""
    import ray
    from ray.util.state import list_actors

    alive = [("class_name", "=", "RayTrainWorker"), ("state", "=", "ALIVE")]
    return [a.pid for a in list_actors(address=ray.get_runtime_context().gcs_address, filters=alive)]


def _registered_checkpoint(run_dir: Path) -> bool:
    """True once Ray Train's checkpoint manager has recorded a checkpoint of the run (its
    snapshot file in the run folder names a latest checkpoint)."""
    snap = run_dir / "checkpoint_manager_snapshot.json"
    try:
        return bool(json.loads(snap.read_text()).get("latest_checkpoint_result"))
    except (OSError, ValueError):
        return False


# ---- a Ray Train worker killed mid-epoch ---------------------------------------------------
@pytest.mark.slow
def test_train_worker_killed_mid_epoch_resumes_from_checkpoint(ray_session, tmp_path):
    from distfer.config import TrainerConfig, TrainSourceConfig
    from distfer.train import train_source

    epochs = 6
    store = make_store(tmp_path, per_class=20, val_per_class=1, test=0, size=16)
    storage = tmp_path / "ray_train"
    cfg = TrainSourceConfig(
        store=str(store.path), out=str(tmp_path / "model"), epochs=epochs, batch_size=4, val_split=None,
        run_name="killed-worker",
        trainer=TrainerConfig(num_workers=1, cpus_per_worker=1.0, storage_path=str(storage), max_failures=1),
    )
    result: dict = {}

    def run() -> None:
        try:
            result["res"] = train_source(cfg)
        except BaseException as e:  # reported by the assertion below
            result["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    run_dir = storage / "killed-worker"
    # kill once the controller has registered a checkpoint (it polls the workers' reports, so
    # a checkpoint folder on disk is not yet one it resumes from): mid-epoch of a later epoch
    _wait_for(lambda: _registered_checkpoint(run_dir) or not thread.is_alive(), 300, "a registered checkpoint")
    assert thread.is_alive(), f"training ended before the kill: {result}"
    pids = _train_worker_pids()
    assert len(pids) == 1, f"expected one Ray Train worker process, found {pids}"
    os.kill(pids[0], signal.SIGKILL)
    thread.join(timeout=300)
    assert not thread.is_alive(), "training did not finish after the worker was killed"
    assert "error" not in result, repr(result.get("error"))
    res = result["res"]
    assert res.start_epoch >= 1, "the restarted run did not resume from a checkpoint"
    assert [h["epoch"] for h in res.history] == list(range(1, epochs + 1))
    assert res.model_path.is_file()
    assert pids[0] not in _train_worker_pids()


# ---- IndexShard actors killed ------------------------------------------------------------
@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory) -> Path:
    """Four Parquet embedding shards: 7 blobs, teacher logits that mostly agree with them."""
    d = tmp_path_factory.mktemp("emb")
    rng = np.random.default_rng(3)
    n = 1200
    y = rng.integers(0, 7, n)
    x = (rng.normal(size=(n, 16)) + 3 * np.eye(7, 16)[y]).astype(np.float32)
    logits = (rng.normal(size=(n, 7)) + 2 * np.eye(7)[y]).astype(np.float32)
    for i, rows in enumerate(np.array_split(rng.permutation(n), 4)):
        rows = np.sort(rows)
        pq.write_table(pa.table({
            "index": pa.array(rows.astype(np.int64)),
            "features": pa.FixedSizeListArray.from_arrays(pa.array(x[rows].ravel()), 16),
            "logits": pa.FixedSizeListArray.from_arrays(pa.array(logits[rows].ravel()), 7),
            "label": pa.array(y[rows].astype(np.int8)),
        }), d / f"part-{i:05d}.parquet")
    return d


@pytest.mark.slow
def test_killed_index_shards_restart_and_give_the_same_pseudo_labels(ray_session, shard_dir):
    import ray

    from distfer.clustering.index import ShardedIndex
    from distfer.config import PseudoLabelConfig
    from distfer.pseudo.api import pseudo_label_sharded

    cfg = PseudoLabelConfig(clusters=30, niter=25, seed=11, select="fraction:0.4", iter_clusters=2)
    calm = ShardedIndex.create("faults-calm", shard_dir, 2, detached=False, num_cpus=0.25)
    hit = ShardedIndex.create("faults-hit", shard_dir, 2, detached=False, num_cpus=0.25, max_restarts=3)
    try:
        ref = pseudo_label_sharded(calm, cfg)
        before = [i["pid"] for i in hit.info()]
        a, b = hit.shards()
        ray.kill(a, no_restart=False)  # dead before the request: restarted, rebuilt from its files
        pending = {}
        t = threading.Thread(target=lambda: pending.setdefault("out", pseudo_label_sharded(hit, cfg)))
        t.start()
        time.sleep(0.3)
        ray.kill(b, no_restart=False)  # and one during it: the coordinator's calls are retried
        t.join(timeout=180)
        assert not t.is_alive() and "out" in pending
        got = pending["out"]
        after = hit.info()
        assert all(p0 != i["pid"] for p0, i in zip(before, after)), "the shards were not restarted"
        assert [i["rows"] for i in after] == [600, 600]
        np.testing.assert_array_equal(got.index, ref.index)
        np.testing.assert_array_equal(got.result.cluster, ref.result.cluster)
        np.testing.assert_array_equal(got.result.labels, ref.result.labels)
        np.testing.assert_array_equal(got.result.confidence, ref.result.confidence)
        np.testing.assert_array_equal(got.selected, ref.selected)
        assert got.stats.inertia == ref.stats.inertia
    finally:
        calm.shutdown()
        hit.shutdown()


# ---- a killed `distfer prepare` ------------------------------------------------------------
def _sfew_raw(root: Path, per_class: int, size: int) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("Train", "Val"):
        for name in ("Surprise", "Fear", "Disgust", "Happy", "Sad", "Angry", "Neutral"):
            d = root / split / name
            d.mkdir(parents=True)
            for i in range(per_class):
                Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(d / f"{i:04d}.png")
    return root


def test_killed_prepare_leaves_nothing_complete_and_a_rerun_completes(tmp_path):
    from distfer.cli import main
    from distfer.data.store import FaceStore

    raw = _sfew_raw(tmp_path / "raw", per_class=60, size=96)
    out = tmp_path / "stores"
    argv = ["prepare", "--format", "sfew", "--root", str(raw), "--out", str(out), "--size", "64",
            "--workers", "1", "--image-encoding", "png"]
    code = f"import sys; from distfer.cli import main; sys.exit(main({argv!r}))"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # kill it half-way: the train shard is written, val is still being decoded
        _wait_for(lambda: any(out.glob(".sfew.tmp-*/train/*.parquet")) or proc.poll() is not None,
                  120, "prepare to write its first shard", poll=0.005)
        assert proc.poll() is None, f"prepare finished before it could be killed: {proc.stderr.read()!r}"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    leftovers = list(out.iterdir())
    assert leftovers, "the kill came too late to test anything"
    assert all(not is_complete(p) for p in leftovers), leftovers
    assert not (out / "sfew").exists()
    with pytest.raises(DataError):
        FaceStore.open(out / "sfew")

    assert main(argv) == 0
    store = FaceStore.open(out / "sfew")
    assert is_complete(out / "sfew")
    assert store.num_rows("train") == 7 * 60 and store.num_rows("val") == 7 * 60
    images, labels, index = store.load_arrays("train")
    assert images.shape == (420, 64, 64, 3) and sorted(set(labels.tolist())) == list(range(7))
