"""End to end: ``experiments/tune_sfew.py --preset tiny`` (2 CluP trials + the baselines), then
``--resume``: results.json fields, the MLflow parent and children with metrics and artifacts,
and a second run that hits the stage cache and repeats no trial.

The experiment runs in a subprocess with its own local Ray (dashboard on, as Tune needs), so
it does not clash with the session Ray of ``tests/conftest.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TRIAL_FIELDS = ("clusters", "fraction", "val_acc", "val_macro_f1", "pseudo_acc", "selected_fraction",
                "objective", "mlflow_run_id")


def _run(out: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    cmd = [sys.executable, str(ROOT / "experiments" / "tune_sfew.py"), "--preset", "tiny", "--output-dir", str(out),
           *extra]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-6000:])
    return proc


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("e2e") / "tune_sfew"
    first = _run(out)
    res1 = json.loads((out / "results.json").read_text())
    second = _run(out, "--resume")
    res2 = json.loads((out / "results.json").read_text())
    return out, first, res1, second, res2


@pytest.mark.slow
def test_results_json_fields(runs):
    out, first, res, _, _ = runs
    for b in ("source_only", "confidence", "centroid", "oracle"):
        assert 0.0 <= res["baselines"][b]["val_acc"] <= 1.0
    assert len(res["trials"]) == 2
    for t in res["trials"]:
        assert t["status"] == "ok"
        for f in TRIAL_FIELDS:
            assert t[f] is not None, f
    assert sorted(t["clusters"] for t in res["trials"]) == [7, 10]
    assert res["best"]["selected_by"].startswith("oracle")
    assert res["best"]["val_acc"] == max(t["val_acc"] for t in res["trials"])
    assert set(res["selection"]) >= {"criterion", "spearman_vs_val_acc", "picked_val_acc"}
    assert res["selection"]["picked_val_acc"] in [t["val_acc"] for t in res["trials"]]
    assert set(res["stage_seconds"]) >= {"prepare", "source", "pretrain", "embed", "sweep"}
    assert res["mlflow"]["tracking_uri"] == f"sqlite:///{out.resolve()}/mlflow.db"
    assert (out / "results.md").read_text().count("| CluP") == 2
    assert (out / "heatmap_val_acc.png").read_bytes()[:4] == b"\x89PNG"
    assert "distfer ui --output" in first.stdout


@pytest.mark.slow
def test_mlflow_parent_and_children(runs):
    from mlflow.tracking import MlflowClient

    _, _, res, _, _ = runs
    client = MlflowClient(tracking_uri=res["mlflow"]["tracking_uri"])
    exp = client.get_experiment_by_name(res["mlflow"]["experiment"])
    parent = res["mlflow"]["parent_run_id"]
    kids = client.search_runs([exp.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent}'")
    by_id = {k.info.run_id: k for k in kids}
    assert len(kids) == 5  # 2 CluP trials + confidence, centroid, oracle
    for t in res["trials"]:
        run = by_id[t["mlflow_run_id"]]
        assert run.info.status == "FINISHED"
        assert run.data.params["pseudo.clusters"] == str(t["clusters"])
        assert [m.step for m in client.get_metric_history(run.info.run_id, "val/acc")] == [1]
        assert run.data.metrics["val/acc_final"] == pytest.approx(t["val_acc"])
        assert "pseudo/selected_fraction" in run.data.metrics
        arts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"confusion_matrix.png", "purity_histogram.png", "per_class_accuracy.json", "model",
                "pseudo_labels"} <= arts
        assert [a.path for a in client.list_artifacts(run.info.run_id, "model")] == ["model/model.pt"]
    parent_arts = {a.path for a in client.list_artifacts(parent)}
    assert {"results.json", "results.md", "heatmap_val_acc.png"} <= parent_arts
    assert "source_only/val_acc" in client.get_run(parent).data.metrics


@pytest.mark.slow
def test_second_run_hits_cache_and_resumes_without_repeating(runs):
    _, _, res1, second, res2 = runs
    for stage in ("synth", "prepare", "source", "pretrain", "embed"):
        assert res2["stage_cached"][stage], stage
    log = second.stdout + second.stderr
    assert "[pretrain] epoch" not in log and "[train-source] epoch" not in log  # nothing retrained
    assert "[adapt] epoch" not in log  # every trial had finished: none ran again
    assert sorted(t["mlflow_run_id"] for t in res2["trials"]) == sorted(t["mlflow_run_id"] for t in res1["trials"])
    assert res2["mlflow"]["parent_run_id"] == res1["mlflow"]["parent_run_id"]
