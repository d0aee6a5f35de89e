"""MLflow adapter (SQLite store, parent/child runs, artifacts) and plots."""

from __future__ import annotations

import numpy as np
import pytest

from distfer.errors import ConfigError
from distfer.tracking import plots
from distfer.tracking.mlflow_store import (
    PARENT_TAG,
    TRIAL_TAG,
    Tracker,
    default_tracking_uri,
    resolve_tracking_uri,
)

PNG = b"\x89PNG\r\n\x1a\n"


def test_uri_resolution(tmp_path, monkeypatch):
    uri = default_tracking_uri(tmp_path)
    assert uri == f"sqlite:///{tmp_path.resolve()}/mlflow.db" and uri.startswith("sqlite:////")
    assert resolve_tracking_uri(None, tmp_path) == uri
    monkeypatch.chdir(tmp_path)
    assert resolve_tracking_uri("sqlite:///rel.db", "/elsewhere") == f"sqlite:///{tmp_path.resolve()}/rel.db"
    assert resolve_tracking_uri("http://127.0.0.1:5000", tmp_path) == "http://127.0.0.1:5000"
    for bad in ("file:./mlruns", "./mlruns"):
        with pytest.raises(ConfigError, match="sqlite"):
            resolve_tracking_uri(bad, tmp_path)


def test_parent_children_metrics_artifacts(tmp_path):
    from mlflow.tracking import MlflowClient

    tr = Tracker(default_tracking_uri(tmp_path), "rafdb->sfew")
    parent = tr.start_run("sweep", params={"sweep": {"num_samples": 2}, "preset": "quick"})
    kids = []
    for k in (50, 100):
        rid = tr.start_run(f"trial-{k}", parent_id=parent, tags={TRIAL_TAG: f"t{k}"},
                           params={"clusters": k, "threshold": 0.5})
        tr.log_history(rid, [{"val/acc": 0.4, "train/loss": 1.0}, {"val/acc": 0.6, "train/loss": 0.5}])
        png = plots.confusion_matrix_png(np.eye(7) * 3 + 1, tmp_path / f"cm{k}.png")
        tr.log_artifact(rid, png, "plots")
        tr.log_dict(rid, {"per_class": [0.1] * 7}, "per_class_accuracy.json")
        tr.finish(rid)
        kids.append(rid)
    tr.log_metrics(parent, {"source_only/val_acc": 0.35, "bad": float("nan")})
    tr.finish(parent)

    # a fresh client (as the UI would) sees everything
    client = MlflowClient(tracking_uri=default_tracking_uri(tmp_path))
    exp = client.get_experiment_by_name("rafdb->sfew")
    assert exp.artifact_location.endswith("mlartifacts")
    children = Tracker(default_tracking_uri(tmp_path), "rafdb->sfew").children(parent)
    assert sorted(c.info.run_id for c in children) == sorted(kids)
    for c in children:
        assert c.data.tags[PARENT_TAG] == parent and c.info.status == "FINISHED"
        hist = client.get_metric_history(c.info.run_id, "val/acc")
        assert [(m.step, m.value) for m in hist] == [(1, 0.4), (2, 0.6)]
        arts = {a.path for a in client.list_artifacts(c.info.run_id)}
        assert {"plots", "per_class_accuracy.json"} <= arts
        assert [a.path for a in client.list_artifacts(c.info.run_id, "plots")] == [f"plots/cm{c.data.params['clusters']}.png"]
    prun = client.get_run(parent)
    assert prun.data.params["sweep.num_samples"] == "2" and "bad" not in prun.data.metrics
    assert tr.find_run(TRIAL_TAG, "t100", parent_id=parent) == kids[1]
    assert tr.find_run(TRIAL_TAG, "nope") is None


def test_plots_write_pngs(tmp_path):
    rng = np.random.default_rng(0)
    for path in (
        plots.purity_histogram_png(rng.uniform(size=40), tmp_path / "p.png", sizes=rng.integers(1, 9, 40)),
        plots.heatmap_png([50, 100], [0.3, 0.5, 0.7], np.array([[0.5, np.nan, 0.6], [0.55, 0.6, 0.62]]),
                          tmp_path / "h.png"),
        plots.curve_png({"ssl/loss": [3.0, 2.5, 2.2]}, tmp_path / "c.png"),
    ):
        assert path.read_bytes().startswith(PNG)
    with pytest.raises(ValueError, match="heatmap values"):
        plots.heatmap_png([1], [1, 2], np.zeros((2, 2)), tmp_path / "x.png")
    with pytest.raises(ValueError, match="confusion matrix"):
        plots.confusion_matrix_png(np.zeros((3, 3)), tmp_path / "x.png")
