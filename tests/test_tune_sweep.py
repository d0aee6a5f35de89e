"""Tune scaffolding: the param space, grid/Optuna runs, and resuming without repeating trials."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from distfer.config import SweepConfig
from distfer.tune.space import baseline_space, param_space, trial_overrides
from distfer.tune.sweep import run_tuner


def test_trial_overrides_clup_and_baselines():
    sweep = SweepConfig(select_kind="threshold", select_values=(0.5,),
                        space={"pseudo.column": ("features", "ssl_features"), "adapt.mixup_alpha": (0.0, 0.2)})
    assert sweep.grid_size() == 2 * 1 * 2 * 2
    s = trial_overrides({"method": "clup", "clusters": 100, "select_value": 0.5,
                         "pseudo.column": "ssl_features", "adapt.mixup_alpha": 0.2}, sweep)
    assert s.pseudo == {"mode": "purity", "select": "threshold:0.5", "clusters": 100, "column": "ssl_features"}
    assert s.adapt == {"mixup_alpha": 0.2} and s.clusters == 100 and s.select == "threshold:0.5"
    b = trial_overrides({"method": "centroid", "select_kind": "fraction", "select_value": 0.5}, sweep)
    assert b.pseudo == {"mode": "centroid", "select": "fraction:0.5"} and b.clusters is None
    o = trial_overrides({"method": "oracle"}, sweep)
    assert o.pseudo == {} and o.select is None
    with pytest.raises(ValueError, match="neither"):
        trial_overrides({"method": "clup", "clusters": 10, "select_value": 0.1, "lr": 1}, sweep)
    assert baseline_space(("confidence",), "fraction:0.3")["select_value"] == 0.3
    # the longest baseline (oracle: all of target Train) is scheduled first, the rest keep their order
    grid = baseline_space(("confidence", "centroid", "oracle"), "fraction:0.5")["method"]
    assert grid == {"grid_search": ["oracle", "confidence", "centroid"]}


@pytest.fixture(autouse=True)
def _ship_this_module():
    """Tune workers cannot import test modules: pickle this one's functions by value."""
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def _counting_trainable(config, log_dir):
    """Records each execution; fails once for K=20 while the flag file exists."""
    from ray import tune

    log = Path(log_dir)
    key = f"{config['clusters']}-{config['select_value']}"
    with open(log / "runs.txt", "a") as f:
        f.write(key + "\n")
    for epoch in range(2):
        tune.report({"objective": config["clusters"] * config["select_value"] + epoch, "epoch": epoch})
    if config["clusters"] == 20 and (log / "fail").exists():
        raise RuntimeError("injected failure")


@pytest.mark.slow
def test_grid_then_resume_runs_only_unfinished(ray_session, tmp_path):
    sweep = SweepConfig(clusters=(10, 20), select_values=(1.0,))
    (tmp_path / "fail").write_text("1")
    grid = run_tuner(_counting_trainable, param_space(sweep), sweep, name="s", storage_path=tmp_path / "tune",
                     max_epochs=2, log_dir=str(tmp_path))
    assert len(grid) == 2 and len(grid.errors) == 1
    first = (tmp_path / "runs.txt").read_text().split()
    assert sorted(first) == ["10-1.0", "20-1.0"]

    (tmp_path / "fail").unlink()
    grid = run_tuner(_counting_trainable, param_space(sweep), sweep, name="s", storage_path=tmp_path / "tune",
                     max_epochs=2, resume=True, log_dir=str(tmp_path))
    again = (tmp_path / "runs.txt").read_text().split()[len(first):]
    assert again == ["20-1.0"]  # finished trials were not repeated
    assert not grid.errors
    best = grid.get_best_result()
    assert best.config["clusters"] == 20 and best.config["select_value"] == 1.0
    assert best.metrics["objective"] == pytest.approx(21.0)


@pytest.mark.slow
def test_optuna_and_asha(ray_session, tmp_path):
    sweep = SweepConfig(clusters=(10, 20, 30), select_values=(0.5, 1.0), search="optuna", num_samples=2,
                        scheduler="asha", grace_period=1)
    grid = run_tuner(_counting_trainable, param_space(sweep), sweep, name="o", storage_path=tmp_path / "tune",
                     max_epochs=2, log_dir=str(tmp_path))
    assert len(grid) == 2 and not grid.errors
    for r in grid:
        assert r.config["clusters"] in (10, 20, 30)
    runs = (tmp_path / "runs.txt").read_text().split()
    assert len(runs) == 2
    state = [json.loads(p.read_text()) for p in (tmp_path / "tune" / "o").glob("*/params.json")]
    assert len(state) == 2
