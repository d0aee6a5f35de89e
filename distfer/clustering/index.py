"""ShardedIndex: global k-means and purity reduce over S ``IndexShard`` Ray actors.

Each shard actor reads ITS OWN Parquet embedding files (it is handed paths, never vectors),
prepares the feature column asked for, and answers three calls with the centroids broadcast
through the object store: ``step`` (per-cluster sums, counts, inertia), ``rows`` (vectors at
given positions, for the initial centroids only) and ``table`` (per-sample cluster ids, teacher
predictions, true labels). A coordinator actor, the group's driver, runs the Lloyd loop with
the pure steps of :mod:`distfer.clustering.kmeans` (so S=1 is bit-identical to
:func:`~distfer.clustering.kmeans.kmeans`), reduces, and caches results by
(column, prep, K, niter, seed, spherical, init, excluded ids), so Tune trials that ask again get the
cached answer. Actors are named (namespace ``distfer``), optionally detached, and restartable:
a restarted shard re-reads its files and gives identical answers.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import ray

from distfer.clustering import kmeans as km
from distfer.clustering.embeddings import embedding_files
from distfer.clustering.shard import ShardData
from distfer.errors import DataError

__all__ = ["IndexShard", "ShardedIndex", "exclude_token", "temporary_index"]

log = logging.getLogger(__name__)
NAMESPACE = "distfer"


def exclude_token(exclude: np.ndarray | None) -> str:
    """Content hash of a set of excluded sample ids ("" for none)."""
    if exclude is None or len(exclude) == 0:
        return ""
    ids = np.unique(np.asarray(exclude, dtype=np.int64))
    return hashlib.sha256(ids.tobytes()).hexdigest()[:16]


#: the shard actor: :class:`~distfer.clustering.shard.ShardData` run by Ray
IndexShard = ray.remote(ShardData)


@ray.remote
class _Coordinator:
    """Runs distributed Lloyd over the shard actors and caches the results."""

    def __init__(self, name: str, groups: list[list[str]], shard_options: dict[str, Any],
                 threads: int | None, device: str, max_cached: int = 32) -> None:
        self._groups = groups
        self._max_cached = max_cached
        self._shards = [
            IndexShard.options(name=f"{name}.shard{i}", get_if_exists=True, **shard_options)
            .remote(files, threads, device)
            for i, files in enumerate(groups)
        ]
        # least-recently-used results first; each holds K x d centroids and, once a table was
        # asked for, N per-sample ids, so the cache is bounded (a sweep revisits few settings)
        self._cache: OrderedDict[tuple, dict[str, Any]] = OrderedDict()

    def groups(self) -> list[list[str]]:
        return self._groups

    def shards(self) -> list[Any]:
        return self._shards

    def info(self) -> list[dict[str, Any]]:
        return ray.get([s.info.remote() for s in self._shards])

    def cached(self) -> int:
        return len(self._cache)

    def kmeans(self, column: str, prep: str, k: int, niter: int, seed: int, spherical: bool,
               init: str, exclude: np.ndarray | None) -> dict[str, Any]:
        token = exclude_token(exclude)
        key = (column, prep, k, niter, seed, spherical, init, token)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        ex = ray.put(None if not token else np.unique(exclude))
        sizes = ray.get([s.count.remote(column, prep, token, ex) for s in self._shards])
        n = sum(r for r, _ in sizes)
        if k < 1 or k > n:
            raise DataError(f"cannot make {k} clusters from {n} samples; use 1..{n} clusters")
        pos = km.init_sample_positions(n, k, seed, init)
        bounds = np.cumsum([0] + [r for r, _ in sizes])
        which = np.searchsorted(bounds, pos, side="right") - 1
        parts = ray.get([s.rows.remote(column, prep, token, ex, pos[which == i] - bounds[i])
                         for i, s in enumerate(self._shards)])
        sample = np.empty((len(pos), sizes[0][1]), dtype=np.float32)
        for i, part in enumerate(parts):
            sample[which == i] = part
        cent = km.init_centroids(sample, k, seed, init)
        history, seconds, splits = [], [], 0
        for it in range(niter):
            t0 = time.perf_counter()
            ref = ray.put(cent)
            outs = ray.get([s.step.remote(column, prep, token, ex, ref) for s in self._shards])
            sums = outs[0][0].copy()
            counts = outs[0][1].copy()
            for s_, c_, _ in outs[1:]:
                sums += s_
                counts += c_
            history.append(float(sum(o[2] for o in outs)))
            cent, n_split = km.update(sums, counts, seed=seed, iteration=it, spherical=spherical)
            splits += n_split
            seconds.append(time.perf_counter() - t0)
            log.info("k-means %s K=%d iteration %d/%d inertia %.6g", column, k, it + 1, niter, history[-1])
        result = {"centroids": cent, "history": np.asarray(history), "splits": splits, "n": n,
                  "seconds": np.asarray(seconds)}
        self._cache[key] = result
        while len(self._cache) > self._max_cached:
            self._cache.popitem(last=False)
        return result

    def table(self, column: str, prep: str, k: int, niter: int, seed: int, spherical: bool,
              init: str, exclude: np.ndarray | None) -> dict[str, Any]:
        res = self.kmeans(column, prep, k, niter, seed, spherical, init, exclude)
        token = exclude_token(exclude)
        if "table" not in res:
            ex = ray.put(None if not token else np.unique(exclude))
            ref = ray.put(res["centroids"])
            parts = ray.get([s.table.remote(column, prep, token, ex, ref) for s in self._shards])
            tab = {c: np.concatenate([p[c] for p in parts]) for c in ("index", "cluster", "predictions", "labels")}
            res["table"] = tab
            res["inertia"] = float(sum(p["inertia"] for p in parts))
            res["histogram"] = np.sum([p["histogram"] for p in parts], axis=0)  # K x 7 reduce
        return res


class ShardedIndex:
    """Handle on a named group of index shard actors (picklable: pass it to Tune trials)."""

    def __init__(self, coordinator: Any, name: str, namespace: str = NAMESPACE) -> None:
        self._coord = coordinator
        self.name = name
        self.namespace = namespace

    @classmethod
    def create(
        cls,
        name: str,
        source: str | Path | Sequence[str | Path],
        num_shards: int,
        *,
        namespace: str = NAMESPACE,
        detached: bool = True,
        num_cpus: float = 0.5,
        num_gpus: float | None = None,
        threads: int | None = None,
        max_restarts: int = 3,
        device: str = "auto",
        resources: dict[str, float] | None = None,
        max_cached: int = 32,
    ) -> ShardedIndex:
        """Start (or join, if it exists with the same files) the named actor group.

        Args:
            name: group name (one per sweep); actors are ``name``, ``name.shard{i}``.
            source: an embedding directory, or a list of Parquet files.
            num_shards: S >= 1; the files are split into S contiguous groups.
            detached: keep the actors alive after this driver exits (call :meth:`shutdown`).
            num_cpus: CPUs per shard actor; num_gpus: GPUs per shard (default 1 when the Ray
                cluster has GPUs, else 0); threads: faiss OpenMP threads per shard.
            max_restarts: restarts per actor (calls are retried as often).
            resources: custom Ray resources per shard actor, e.g. ``{"index_shard": 1}`` with one
                unit per GPU node (cluster.yaml) so the S shards land on S different nodes.
            max_cached: clusterings kept by the coordinator (least recently used dropped first).

        Raises:
            DataError: fewer Parquet files than shards, or a group of that name already
                exists over different files.
        """
        files = (embedding_files(source) if isinstance(source, (str, Path))
                 else [Path(f) for f in source])
        if num_shards < 1 or len(files) < num_shards:
            raise DataError(
                f"{len(files)} embedding file(s) cannot feed {num_shards} shards; write at least "
                f"{num_shards} Parquet shards or use 1..{len(files)} shards"
            )
        groups = [[str(Path(f).resolve()) for f in g]
                  for g in np.array_split(np.array(files, dtype=object), num_shards)]
        if num_gpus is None:
            num_gpus = 1 if ray.cluster_resources().get("GPU", 0) >= num_shards else 0
        life = {"lifetime": "detached"} if detached else {}
        opts = {"namespace": namespace, "num_cpus": num_cpus, "num_gpus": num_gpus,
                "max_restarts": max_restarts, "max_task_retries": max_restarts, **life}
        if resources:
            opts["resources"] = dict(resources)
        coord = _Coordinator.options(
            name=name, namespace=namespace, get_if_exists=True, num_cpus=0,
            max_restarts=max_restarts, max_task_retries=max_restarts, **life,
        ).remote(name, groups, opts, threads, device, max_cached)
        have = ray.get(coord.groups.remote())
        if have != groups:
            raise DataError(
                f"an index group named {name!r} already exists over other files; "
                "shut it down or pick another name"
            )
        return cls(coord, name, namespace)

    @classmethod
    def connect(cls, name: str, namespace: str = NAMESPACE) -> ShardedIndex:
        """Join a running group by name.

        Raises:
            DataError: no group of that name is running.
        """
        try:
            coord = ray.get_actor(name, namespace=namespace)
        except ValueError:
            raise DataError(f"no index group named {name!r} in namespace {namespace!r}; create it first") from None
        return cls(coord, name, namespace)

    def _args(self, k: int, column: str, prep: str, niter: int, seed: int, spherical: bool,
              init: str, exclude: np.ndarray | None) -> tuple:
        return (column, prep, int(k), int(niter), int(seed), bool(spherical), str(init),
                None if exclude is None else np.asarray(exclude, dtype=np.int64))

    def kmeans(self, k: int, *, column: str = "features", prep: str = "append_one", niter: int = 20,
               seed: int = 0, spherical: bool = False, init: str = "random",
               exclude: np.ndarray | None = None) -> km.KMeansResult:
        """Global k-means over the included rows (all but the ``exclude`` sample ids).

        Returns:
            :class:`KMeansResult` (``assignments`` empty, ``inertia`` of the final centroids).
        """
        res = ray.get(self._coord.table.remote(*self._args(k, column, prep, niter, seed, spherical, init, exclude)))
        return km.KMeansResult(res["centroids"], np.zeros(0, np.int64), res["inertia"], res["history"], res["splits"])

    def table(self, k: int, **kw: Any) -> dict[str, np.ndarray]:
        """Per-sample ``index, cluster, predictions, labels`` (int64 [N] each) in shard order."""
        return ray.get(self._coord.table.remote(*self._args(k, **_kw(kw))))["table"]

    def assignments(self, k: int, **kw: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(index int64 [N], cluster int64 [N])``."""
        t = self.table(k, **kw)
        return t["index"], t["cluster"]

    def purity(self, k: int, **kw: Any) -> np.ndarray:
        """In-cluster teacher-prediction histogram, int64 [K, 7], summed over the shards'
        own K x 7 histograms."""
        return ray.get(self._coord.table.remote(*self._args(k, **_kw(kw))))["histogram"]

    def result(self, k: int, **kw: Any) -> dict[str, Any]:
        """Everything cached for one request: ``centroids, history, seconds`` (per Lloyd
        iteration), ``splits, n, table, inertia, histogram``."""
        return ray.get(self._coord.table.remote(*self._args(k, **_kw(kw))))

    def info(self) -> list[dict[str, Any]]:
        """Per-shard rows, files, RSS and peak RSS (bytes)."""
        return ray.get(self._coord.info.remote())

    def shards(self) -> list[Any]:
        """The shard actor handles (e.g. to kill one in a fault test)."""
        return ray.get(self._coord.shards.remote())

    def shutdown(self) -> None:
        """Kill the coordinator and every shard actor (no restart)."""
        for s in self.shards():
            ray.kill(s, no_restart=True)
        ray.kill(self._coord, no_restart=True)


def _kw(kw: dict[str, Any]) -> dict[str, Any]:
    allowed = {"column", "prep", "niter", "seed", "spherical", "init", "exclude"}
    bad = set(kw) - allowed
    if bad:
        raise TypeError(f"unexpected argument(s) {sorted(bad)}; allowed: {sorted(allowed)}")
    return {"column": "features", "prep": "append_one", "niter": 20, "seed": 0, "spherical": False,
            "init": "random", "exclude": None, **kw}


@contextlib.contextmanager
def temporary_index(source: str | Path, num_shards: int, *, device: str = "auto",
                    name: str | None = None) -> Iterator[ShardedIndex]:
    """A ShardedIndex for one job: starts a local Ray if none is running, and shuts down the
    group (unless ``name`` is given, i.e. the group is shared) and that Ray afterwards."""
    started = not ray.is_initialized()
    if started:
        ray.init(namespace=NAMESPACE, log_to_driver=False)
    try:
        index = ShardedIndex.create(name or f"pseudo-{uuid.uuid4().hex[:8]}", source, num_shards,
                                    detached=name is not None, device=device)
        try:
            yield index
        finally:
            if name is None:
                index.shutdown()
    finally:
        if started:
            ray.shutdown()
