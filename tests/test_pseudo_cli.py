"""`distfer pseudo-label` end to end: .npy and Parquet inputs, assignments, every bad input."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distfer.cli import main
from distfer.pseudo.api import read_table


@pytest.fixture()
def inputs(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 7, 400)
    x = (rng.normal(size=(400, 6)) + 2 * np.eye(7, 6)[y]).astype(np.float32)
    logits = (rng.normal(size=(400, 7)) + 2 * np.eye(7)[y]).astype(np.float32)
    np.save(tmp_path / "f.npy", x)
    np.save(tmp_path / "l.npy", logits)
    emb = tmp_path / "emb"
    emb.mkdir()
    for i, rows in enumerate(np.array_split(np.arange(400), 2)):
        pq.write_table(pa.table({
            "index": pa.array(rows.astype(np.int64) + 1000),
            "features": pa.FixedSizeListArray.from_arrays(pa.array(x[rows].ravel()), 6),
            "ssl_features": pa.FixedSizeListArray.from_arrays(pa.array(-x[rows].ravel()), 6),
            "logits": pa.FixedSizeListArray.from_arrays(pa.array(logits[rows].ravel()), 7),
            "label": pa.array(y[rows].astype(np.int8)),
        }), emb / f"part-{i:05d}.parquet")
    return tmp_path, x, logits, y


def run_cli(*argv):
    return main(["pseudo-label", *map(str, argv)])


def test_npy_inputs_write_the_contract(inputs):
    d, x, logits, _ = inputs
    out = d / "pl.parquet"
    assert run_cli("--features", d / "f.npy", "--logits", d / "l.npy", "--clusters", 20,
                   "--mode", "soft-purity", "--select", "fraction:0.5", "--seed", 1, "--out", out) == 0
    t = pq.read_table(out)
    assert t.column_names == ["index", "cluster", "label", "confidence", "soft", "selected"]
    assert t.schema.field("soft").type == pa.list_(pa.float32(), 7)
    tab = read_table(out)
    np.testing.assert_array_equal(tab["index"], np.arange(400))
    np.testing.assert_allclose(tab["soft"].sum(1), 1, rtol=1e-5)
    stats = json.loads((d / "pl.stats.json").read_text())
    assert stats["stats"]["selected"] == int(tab["selected"].sum())
    assert stats["config"]["mode"] == "soft-purity" and stats["stats"]["inertia"] > 0


def test_assignments_skip_kmeans(inputs):
    d, _, logits, _ = inputs
    a = np.arange(400) % 9
    np.save(d / "a.npy", a)
    out = d / "pl.parquet"
    assert run_cli("--features", d / "f.npy", "--logits", d / "l.npy", "--assignments", d / "a.npy",
                   "--clusters", 9, "--out", out) == 0
    tab = read_table(out)
    np.testing.assert_array_equal(tab["cluster"], a)
    for c in range(9):  # every sample carries its cluster's majority teacher class
        votes = np.bincount(logits[a == c].argmax(1), minlength=7)
        assert (tab["label"][a == c] == votes.argmax()).all()


@pytest.mark.parametrize("column", ["features", "ssl_features", "concat"])
def test_parquet_inputs_report_accuracy(inputs, column, capsys):
    d, *_ = inputs
    out = d / f"{column}.parquet"
    assert run_cli("--features", d / "emb", "--column", column, "--clusters", 14, "--out", out) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["accuracy_selected"] is not None
    np.testing.assert_array_equal(read_table(out)["index"], np.arange(400) + 1000)


def test_baseline_modes(inputs):
    d, *_ = inputs
    for mode in ("confidence", "centroid"):
        out = d / f"{mode}.parquet"
        assert run_cli("--features", d / "emb", "--mode", mode, "--select", "threshold:0.1",
                       "--centroid-cycles", 1, "--out", out) == 0
        assert (read_table(out)["cluster"] == -1).all()


@pytest.mark.slow
def test_sharded_cli(ray_session, inputs):
    d, *_ = inputs
    out, ref = d / "sh.parquet", d / "local.parquet"
    assert run_cli("--features", d / "emb", "--clusters", 14, "--shards", 1, "--out", out) == 0
    assert run_cli("--features", d / "emb", "--clusters", 14, "--out", ref) == 0
    a, b = read_table(out), read_table(ref)
    for c in ("index", "cluster", "label", "confidence", "selected"):
        np.testing.assert_array_equal(a[c], b[c])


def bad(d, name, arr):
    np.save(d / name, arr)
    return d / name


def test_bad_inputs(inputs, capsys):
    d, x, logits, _ = inputs
    f, lg, out = d / "f.npy", d / "l.npy", d / "o.parquet"
    nan = x.copy()
    nan[[5, 9, 17], 0] = np.nan
    nan[9, 1] = np.inf
    cases = [
        (("--features", f, "--logits", lg, "--clusters", 401), "cannot make 401 clusters from 400"),
        (("--features", f, "--logits", lg, "--clusters", 5), "at least as many clusters as classes"),
        (("--features", bad(d, "nan.npy", nan), "--logits", lg, "--clusters", 10),
         r"3 row\(s\) hold NaN or inf values \(first at row 5\)"),
        (("--features", bad(d, "short.npy", x[:300]), "--logits", lg, "--clusters", 10),
         "features have 300 rows but logits have 400"),
        (("--features", f, "--logits", bad(d, "l5.npy", logits[:, :5]), "--clusters", 10),
         r"logits must have shape \[N, 7\]"),
        (("--features", f, "--logits", lg, "--select", "threshold:1.2"), r"tau=1.2 must be in \[0, 1\]"),
        (("--features", f, "--logits", lg, "--select", "fraction:0"), r"rho=0.0 must be in \(0, 1\]"),
        (("--features", f, "--logits", lg, "--shards", 2), "needs Parquet embedding shards"),
        (("--features", d / "missing.npy", "--logits", lg), "does not exist"),
        (("--features", d / "emb", "--column", "ssl_features", "--mode", "centroid",
          "--iter-clusters", 2), "does not cluster"),
    ]
    for argv, msg in cases:
        assert run_cli(*argv, "--out", out) == 2, msg
        err = capsys.readouterr().err
        assert err.startswith("error: ") and __import__("re").search(msg, err), (msg, err)
        assert not out.exists()
    (d / "cfg.yaml").write_text("mode: majority\n")
    assert run_cli("--config", d / "cfg.yaml", "--features", f, "--logits", lg, "--out", out) == 2
    assert "'mode': 'majority' is not allowed" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse rejects an unknown --mode itself
        run_cli("--features", f, "--logits", lg, "--mode", "majority", "--out", out)


def test_emptied_class_warns(inputs):
    d, x, logits, _ = inputs
    lg = logits.copy()
    lg[:, 6] = -10
    lg[:3, 6] = 10  # only 3 samples predict Neutral: no cluster has Neutral as majority
    with pytest.warns(UserWarning, match="class"):
        assert run_cli("--features", d / "f.npy", "--logits", bad(d, "lg.npy", lg), "--clusters", 7,
                       "--mode", "confidence", "--select", "fraction:0.1", "--out", d / "o.parquet") == 0
