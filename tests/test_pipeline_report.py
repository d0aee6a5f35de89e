"""Pure parts of the experiment system: presets, config validation, the report, the UI command."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from distfer.config import ExperimentConfig
from distfer.errors import ConfigError, DataError
from distfer.pipeline import report
from distfer.pipeline.presets import available_presets, build_experiment, merge


def test_every_preset_builds_and_paper_setups_match_the_paper():
    names = available_presets()
    assert {"quick", "paper", "tiny", "afe_expw", "afe_fer2013", "rafdb_expw", "rafdb_fer2013"} <= set(names)
    for n in names:
        assert isinstance(build_experiment(n, {}), ExperimentConfig)
    quick = build_experiment("quick", {})
    assert quick.sweep.grid_size() >= 6 and quick.image_size == 32
    expected = {"afe_expw": (1000, 0.1), "afe_fer2013": (250, 0.1), "rafdb_expw": (250, 0.3),
                "rafdb_fer2013": (1000, 0.2)}
    for name, (k, rho) in expected.items():
        e = build_experiment(name, {})
        assert e.sweep.clusters == (k,) and e.sweep.select_values == (rho,) and e.sweep.select_kind == "fraction"
        assert e.pseudo["mode"] == "purity" and e.adapt["mixup_alpha"] == 0.2 and e.adapt["epochs"] == 50
        assert (e.source_format, e.target_format) == tuple(name.split("_"))


def test_experiment_presets_take_the_stage_recipes_from_one_place():
    from distfer.train import presets as stage_presets

    for name in ("quick", "paper"):
        exp = build_experiment(name, {})
        sections = stage_presets.experiment_sections(name)
        for key, values in sections.items():
            assert {k: getattr(exp, key)[k] for k in values} == values, (name, key)
    # a YAML section still overrides the recipe key by key
    tiny = build_experiment("tiny", {})
    assert tiny.train_source["epochs"] == 1 and tiny.train_source["arch"] == stage_presets.get("quick", "train-source")["arch"]
    with pytest.raises(ConfigError, match="unknown preset 'nope'"):
        stage_presets.experiment_sections("nope")


def test_merge_and_bad_overrides():
    assert merge({"a": {"x": 1, "y": 2}, "b": 1}, {"a": {"y": 3}, "b": None}) == {"a": {"x": 1, "y": 3}, "b": 1}
    assert merge({"space": {"k": [1]}}, {"space": {}}) == {"space": {}}
    with pytest.raises(ConfigError, match="unknown preset"):
        build_experiment("nope", {})
    with pytest.raises(ConfigError, match="adapt.mixup_alph"):
        build_experiment("quick", {"adapt": {"mixup_alph": 0.1}})
    with pytest.raises(ConfigError, match="both"):
        build_experiment("quick", {"source_root": "/x"})
    with pytest.raises(ConfigError, match="baselines"):
        build_experiment("quick", {"baselines": ["shot"]})
    with pytest.raises(ConfigError, match="clusters"):
        build_experiment("quick", {"sweep": {"clusters": [3]}})


def _trials(rng, n=9):
    out = []
    for i in range(n):
        out.append({"trial_id": f"t{i}", "method": "clup", "clusters": [50, 100, 200][i % 3],
                    "fraction": [0.3, 0.6, 0.9][i // 3], "val_acc": float(rng.uniform()),
                    "objective": None, "criterion": float(rng.normal()), "status": "ok"})
        out[-1]["objective"] = out[-1]["val_acc"]
    out.append({"trial_id": "bad", "method": "clup", "clusters": 50, "fraction": 0.3, "val_acc": None,
                "objective": None, "criterion": None, "status": "error"})
    return out


def test_best_pick_and_spearman_against_brute_force():
    trials = _trials(np.random.default_rng(0))
    best, sel = report.best_and_pick(trials, objective="oracle", criterion="snd")
    ok = [t for t in trials if t["status"] == "ok"]
    assert best["trial_id"] == max(ok, key=lambda t: t["val_acc"])["trial_id"]
    assert best["selected_by"].startswith("oracle")
    pick = max(ok, key=lambda t: t["criterion"])
    assert sel["picked_val_acc"] == pick["val_acc"] and sel["picked_trial_id"] == pick["trial_id"]
    ref = spearmanr([t["criterion"] for t in ok], [t["val_acc"] for t in ok]).statistic
    assert sel["spearman_vs_val_acc"] == pytest.approx(ref)


def test_heatmap_grid_takes_best_per_cell():
    trials = _trials(np.random.default_rng(1))
    trials.append({**trials[0], "trial_id": "dup", "val_acc": 2.0})  # another column, same cell
    ks, vs, grid = report.heatmap_grid(trials, "fraction")
    assert ks == [50, 100, 200] and vs == [0.3, 0.6, 0.9]
    assert grid[0, 0] == 2.0
    for t in trials[1:9]:
        assert grid[ks.index(t["clusters"]), vs.index(t["fraction"])] == t["val_acc"]


def test_trial_row_and_markdown():
    row = report.trial_row({"method": "clup", "clusters": 100, "select_value": 0.3, "pseudo.column": "features"},
                           {"val_acc": 0.5, "objective": 0.5, "criterion_snd": 3.2, "mlflow_run_id": "abc"},
                           select_kind="fraction", criterion="snd", trial_id="x_00001")
    assert row["fraction"] == 0.3 and row["pseudo.column"] == "features" and row["criterion"] == 3.2
    stopped = report.trial_row({"method": "clup", "clusters": 10, "select_value": 0.3}, {"val/acc": 0.4},
                               select_kind="fraction", criterion="snd", trial_id="y")
    assert stopped["status"] == "stopped" and stopped["val_acc"] == 0.4
    oracle = report.trial_row({"method": "oracle", "select_value": 0.3}, {"val_acc": 0.9},
                              select_kind="fraction", criterion="snd", trial_id="z")
    assert "fraction" not in oracle and "clusters" not in oracle
    results = {"sweep": {"select_kind": "fraction", "objective": "oracle"}, "trials": [row],
               "baselines": {"source_only": {"val_acc": 0.3}}, "best": {**row, "selected_by": "oracle"},
               "selection": {"criterion": "snd", "picked_val_acc": 0.5, "spearman_vs_val_acc": None,
                             "oracle_best_val_acc": 0.5}}
    md = report.markdown_table(results)
    assert "| baseline: source_only |" in md and "| 30.0 |" in md and "50.0" in md and "n/a" in md


def test_ui_command(tmp_path):
    from distfer.tracking.ui import ui_command

    with pytest.raises(DataError, match="no MLflow store"):
        ui_command(tmp_path)
    (tmp_path / "mlflow.db").write_bytes(b"")
    cmd = ui_command(tmp_path, port=5001)
    assert cmd[1:4] == ["-m", "mlflow", "ui"] and f"sqlite:///{tmp_path.resolve()}/mlflow.db" in cmd
    assert cmd[-4:] == ["--host", "127.0.0.1", "--port", "5001"]
