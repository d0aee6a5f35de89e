"""MLflow adapter: one experiment per (source, target), a parent run per sweep, a child per trial.

This is the only module that talks to MLflow. It uses :class:`mlflow.tracking.MlflowClient`
with an explicit tracking URI (never the process-global one), so Tune trials that ``chdir``
into their own folders and several sweeps in one process cannot interfere.

Traps handled here (see the stack notes): MLflow 3 refuses the plain file store, so the
default store is a SQLite file ``sqlite:////ABS/<output>/mlflow.db`` (absolute, because trials
change directory); and two trials migrating a fresh database at once race, so the driver
creates the database, the experiment and the parent run (:class:`Tracker`) before any trial
starts. Artifacts go to ``<output>/mlartifacts`` unless the URI is a tracking server's.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from distfer.errors import ConfigError

__all__ = ["default_tracking_uri", "resolve_tracking_uri", "Tracker", "PARENT_TAG", "TRIAL_TAG"]

PARENT_TAG = "mlflow.parentRunId"
TRIAL_TAG = "distfer.trial_id"
SWEEP_TAG = "distfer.sweep_id"
_MAX_PARAM = 6000  # MLflow's limit on a param value
_BATCH = 100


def default_tracking_uri(output_dir: str | Path) -> str:
    """``sqlite:////ABS/<output_dir>/mlflow.db``."""
    return f"sqlite:///{(Path(output_dir).expanduser().resolve() / 'mlflow.db').as_posix()}"


def resolve_tracking_uri(uri: str | None, output_dir: str | Path) -> str:
    """The tracking URI to use: the default SQLite file, or ``uri`` made safe.

    A relative ``sqlite:///rel.db`` is made absolute (trials change directory); ``http(s)://``,
    ``databricks`` and absolute SQLite/SQL URIs pass through.

    Raises:
        ConfigError: ``file:`` stores or bare paths (MLflow 3 refuses the file store).
    """
    if not uri:
        return default_tracking_uri(output_dir)
    if uri.startswith("file:") or "://" not in uri and uri != "databricks":
        raise ConfigError(
            f"MLflow tracking URI {uri!r}: MLflow 3 no longer accepts the file store; use "
            "sqlite:////ABSOLUTE/path/mlflow.db (the default) or a server http://HOST:5000"
        )
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        rel = uri[len("sqlite:///"):]
        return f"sqlite:///{Path(rel).expanduser().resolve().as_posix()}"
    return uri


def _flat(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out


class Tracker:
    """Runs of one MLflow experiment, created eagerly in the driver.

    Args:
        tracking_uri: from :func:`resolve_tracking_uri`.
        experiment: experiment name, e.g. ``"rafdb->sfew"``.
        artifact_root: where a new experiment keeps artifacts (default: next to a SQLite file,
            in ``mlartifacts/``; ignored for an existing experiment).
    """

    def __init__(self, tracking_uri: str, experiment: str, *, artifact_root: str | Path | None = None) -> None:
        from mlflow.tracking import MlflowClient

        self.tracking_uri = tracking_uri
        self.client = MlflowClient(tracking_uri=tracking_uri)
        exp = self.client.get_experiment_by_name(experiment)
        if exp is None:
            location = None
            if artifact_root is not None:
                location = Path(artifact_root).expanduser().resolve().as_uri()
            elif tracking_uri.startswith("sqlite:////"):
                location = (Path(tracking_uri[len("sqlite:///"):]).parent / "mlartifacts").as_uri()
            self.experiment_id = self.client.create_experiment(experiment, artifact_location=location)
        else:
            self.experiment_id = exp.experiment_id
        self.experiment = experiment

    # ---- runs ---------------------------------------------------------------------------
    def start_run(
        self,
        name: str,
        *,
        parent_id: str | None = None,
        tags: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> str:
        """Create a run (a child of ``parent_id`` when given) and return its id."""
        all_tags = dict(tags or {})
        if parent_id:
            all_tags[PARENT_TAG] = parent_id
        run = self.client.create_run(self.experiment_id, run_name=name, tags=all_tags)
        if params:
            self.log_params(run.info.run_id, params)
        return run.info.run_id

    def find_run(self, tag: str, value: str, *, parent_id: str | None = None) -> str | None:
        """Id of the newest run with ``tags.<tag> = value`` (optionally under ``parent_id``)."""
        flt = f"tags.`{tag}` = '{value}'"
        if parent_id:
            flt += f" and tags.`{PARENT_TAG}` = '{parent_id}'"
        runs = self.client.search_runs([self.experiment_id], filter_string=flt,
                                       order_by=["attributes.start_time DESC"], max_results=1)
        return runs[0].info.run_id if runs else None

    def reopen(self, run_id: str) -> str:
        """Mark an existing run as running again (a resumed sweep or trial)."""
        self.client.update_run(run_id, status="RUNNING")
        return run_id

    def children(self, parent_id: str) -> list[Any]:
        """The child runs of ``parent_id`` (MLflow ``Run`` objects), oldest first."""
        return self.client.search_runs([self.experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{parent_id}'",
                                       order_by=["attributes.start_time ASC"], max_results=10000)

    def finish(self, run_id: str, status: str = "FINISHED") -> None:
        """End a run with ``status`` (FINISHED, FAILED or KILLED)."""
        self.client.set_terminated(run_id, status=status)

    # ---- logging ------------------------------------------------------------------------
    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        """Log (nested) params; nested keys are joined with dots, long values truncated."""
        from mlflow.entities import Param

        existing = self.client.get_run(run_id).data.params
        items = [Param(k, json.dumps(v) if isinstance(v, (list, tuple)) else str(v)[:_MAX_PARAM])
                 for k, v in _flat(params).items() if k not in existing]
        for i in range(0, len(items), _BATCH):
            self.client.log_batch(run_id, params=items[i:i + _BATCH])

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], *, step: int | None = None) -> None:
        """Log finite numeric metrics (others are skipped) at ``step``."""
        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        items = [Metric(k, float(v), ts, step or 0) for k, v in _flat(metrics).items()
                 if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != float("inf")]
        for i in range(0, len(items), _BATCH):
            self.client.log_batch(run_id, metrics=items[i:i + _BATCH])

    def log_history(self, run_id: str, history: Sequence[Mapping[str, float]], *, keys: Mapping[str, str] | None = None,
                    first_step: int = 1) -> None:
        """Log per-epoch metrics: ``history[e]`` at step ``first_step + e``.

        Args:
            keys: optional rename map from history keys to MLflow keys (others are kept as-is).
        """
        keys = dict(keys or {})
        for e, row in enumerate(history):
            self.log_metrics(run_id, {keys.get(k, k): v for k, v in row.items()}, step=first_step + e)

    def log_artifact(self, run_id: str, path: str | Path, artifact_path: str | None = None) -> None:
        """Upload a file (or a whole folder) as an artifact of ``run_id``."""
        p = Path(path)
        if p.is_dir():
            self.client.log_artifacts(run_id, str(p), artifact_path)
        else:
            self.client.log_artifact(run_id, str(p), artifact_path)

    def log_artifacts(self, run_id: str, paths: Iterable[str | Path], artifact_path: str | None = None) -> None:
        for p in paths:
            self.log_artifact(run_id, p, artifact_path)

    def log_dict(self, run_id: str, data: Any, name: str) -> None:
        """Store ``data`` as a JSON (or YAML, by the name's suffix) artifact called ``name``."""
        self.client.log_dict(run_id, data, name)

    def log_text(self, run_id: str, text: str, name: str) -> None:
        self.client.log_text(run_id, text, name)

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        for k, v in tags.items():
            self.client.set_tag(run_id, k, str(v))
