#!/usr/bin/env python
"""Soak test of one ShardedIndex actor group under concurrent pseudo-labelling clients.

Not part of CI. C client Ray tasks (standing in for Tune trials) join one named index group
and send pseudo-label requests (k-means + purity + selection, as a trial does) for a bounded
time. Most requests repeat a small set of (K, seed) settings, as the trials of a sweep do, and
hit the coordinator's cache; a share (``--fresh``) uses a new seed and runs a full distributed
k-means on the shards. Prints requests served, errors (should be 0), latency, and the RSS of
every actor sampled over the run (the shards' should be flat; the coordinator's grows only by
its result cache, one entry per distinct request).

    python benchmarks/soak.py                      # 90 s, 4 clients, 2 shards, 20k x 64 rows
    python benchmarks/soak.py --duration 600 --clients 8 --rows 100000
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import ray

os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def write_embeddings(folder: Path, rows: int, dim: int, files: int, seed: int = 0) -> Path:
    """Parquet embedding shards (index, features, logits, label) with 7 noisy classes."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 7, rows)
    x = (rng.normal(size=(rows, dim)) + 2.0 * np.eye(7, dim)[y]).astype(np.float32)
    logits = (rng.normal(size=(rows, 7)) + 1.5 * np.eye(7)[y]).astype(np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    for i, part in enumerate(np.array_split(np.arange(rows), files)):
        pq.write_table(pa.table({
            "index": pa.array(part.astype(np.int64)),
            "features": pa.FixedSizeListArray.from_arrays(pa.array(x[part].ravel()), dim),
            "logits": pa.FixedSizeListArray.from_arrays(pa.array(logits[part].ravel()), 7),
            "label": pa.array(y[part].astype(np.int8)),
        }), folder / f"part-{i:05d}.parquet")
    return folder


@ray.remote(num_cpus=0.1, max_retries=0)
def client(name: str, deadline: float, ks: list[int], seeds: int, fresh: float, niter: int,
           client_id: int) -> dict:
    """One trial-like client: pseudo-label requests until ``deadline`` (a time.time() value)."""
    from distfer.clustering.index import ShardedIndex
    from distfer.config import PseudoLabelConfig
    from distfer.pseudo.api import pseudo_label_sharded

    rng = np.random.default_rng(client_id)
    index = ShardedIndex.connect(name)
    served, errors, latencies, fresh_served = 0, [], [], 0
    n_fresh = 0
    while time.time() < deadline:
        k = int(rng.choice(ks))
        is_fresh = rng.random() < fresh
        if is_fresh:
            seed = 10_000 + client_id * 100_000 + n_fresh  # never asked before: a full k-means
            n_fresh += 1
        else:
            seed = int(rng.integers(0, seeds))
        cfg = PseudoLabelConfig(clusters=k, niter=niter, seed=seed, select="fraction:0.3",
                                iter_clusters=1 + int(rng.random() < 0.3))
        t0 = time.perf_counter()
        try:
            out = pseudo_label_sharded(index, cfg)
            if not out.selected.any():
                raise RuntimeError("empty selection")
            served += 1
            fresh_served += int(is_fresh)
        except Exception as e:  # counted and reported, the soak goes on
            errors.append(f"{type(e).__name__}: {str(e).splitlines()[0][:200]}")
        latencies.append(time.perf_counter() - t0)
    return {"served": served, "fresh": fresh_served, "errors": errors, "latencies": latencies}


def actor_rss(index: object, address: str) -> dict[str, int]:
    """RSS (bytes) of each shard (through its own ``info``) and of the coordinator (psutil)."""
    import psutil
    from ray.util.state import list_actors

    rss = {f"shard{i}": int(info["rss"]) for i, info in enumerate(index.info())}
    alive = [("class_name", "=", "_Coordinator"), ("state", "=", "ALIVE")]
    for a in list_actors(address=address, filters=alive):
        if a.name == index.name and a.pid:
            rss["coordinator"] = psutil.Process(a.pid).memory_info().rss
    return rss


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=90.0, help="seconds of load (default 90)")
    p.add_argument("--clients", type=int, default=4, help="concurrent client tasks (default 4)")
    p.add_argument("--shards", type=int, default=2, help="IndexShard actors (default 2)")
    p.add_argument("--rows", type=int, default=20_000, help="embedding rows (default 20000)")
    p.add_argument("--dim", type=int, default=64, help="feature dimension (default 64)")
    p.add_argument("--ks", type=int, nargs="+", default=[50, 100, 200], help="cluster counts asked for")
    p.add_argument("--seeds", type=int, default=4, help="distinct seeds of the repeated requests")
    p.add_argument("--fresh", type=float, default=0.2, help="share of requests with a never-seen seed")
    p.add_argument("--niter", type=int, default=10, help="k-means iterations per request")
    p.add_argument("--sample-every", type=float, default=10.0, help="seconds between RSS samples")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray (default: all)")
    args = p.parse_args()

    from distfer.clustering.index import ShardedIndex

    address = ray.init(num_cpus=args.num_cpus, include_dashboard=True, log_to_driver=False).address_info["address"]
    with tempfile.TemporaryDirectory(prefix="distfer-soak-") as tmp:
        emb = write_embeddings(Path(tmp) / "emb", args.rows, args.dim, files=2 * args.shards)
        name = f"soak-{os.getpid()}"
        index = ShardedIndex.create(name, emb, args.shards, detached=False, num_cpus=0.25)
        try:
            index.kmeans(args.ks[0], niter=args.niter, seed=0)  # warm: features loaded, faiss ready
            samples = [(0.0, actor_rss(index, address))]
            t_start = time.time()
            deadline = t_start + args.duration
            refs = [client.remote(name, deadline, args.ks, args.seeds, args.fresh, args.niter, c)
                    for c in range(args.clients)]
            pending = list(refs)
            while pending:
                _, pending = ray.wait(pending, timeout=args.sample_every)
                if pending:
                    samples.append((time.time() - t_start, actor_rss(index, address)))
            samples.append((time.time() - t_start, actor_rss(index, address)))
            results = ray.get(refs)
            cached = ray.get(index._coord.cached.remote())
        finally:
            index.shutdown()
    ray.shutdown()

    lat = np.concatenate([r["latencies"] for r in results]) if results else np.zeros(0)
    errors = [e for r in results for e in r["errors"]]
    served = sum(r["served"] for r in results)
    print(f"soak: {args.duration:.0f} s, {args.clients} clients, {args.shards} shards, "
          f"{args.rows} x {args.dim} rows, K in {args.ks}, fresh share {args.fresh}")
    print(f"requests served: {served} ({sum(r['fresh'] for r in results)} fresh k-means, "
          f"{served - sum(r['fresh'] for r in results)} repeated/cached); per client "
          f"{[r['served'] for r in results]}")
    print(f"errors: {len(errors)}" + (f" e.g. {errors[0]}" if errors else ""))
    if len(lat):
        print(f"latency s: p50 {np.percentile(lat, 50):.3f}  p95 {np.percentile(lat, 95):.3f}  "
              f"max {lat.max():.3f}")
    print(f"coordinator cache entries at the end: {cached}")
    mib = 1 << 20
    print("actor RSS MiB over time (t s: " + ", ".join(samples[0][1]) + ")")
    for t, rss in samples:
        print(f"  t={t:6.1f}: " + "  ".join(f"{v / mib:7.1f}" for v in rss.values()))
    first, last = samples[0][1], samples[-1][1]
    for key in first:
        if key in last:
            print(f"RSS growth {key}: {first[key] / mib:.1f} -> {last[key] / mib:.1f} MiB "
                  f"({(last[key] - first[key]) / mib:+.1f} MiB)")


if __name__ == "__main__":
    main()
