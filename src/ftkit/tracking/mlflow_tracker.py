"""MLflow tracking: the resolved recipe as params (flattened), per-step and final metrics, the resolved recipe and
the model card as artifacts, tags linking the MLflow run to the ftkit run, and the MLflow run's end status.

An http(s) server is probed first (`/health`, a few seconds), so a server that is down costs one short wait and one
warning rather than MLflow's retries with back-off on every call. Unless set in the environment, MLflow's HTTP
retries are lowered to 2 and its timeout to 30 s for the same reason. A `file:` store, which MLflow 3 keeps only in
maintenance and refuses unless MLFLOW_ALLOW_FILE_STORE is set, is allowed when the recipe names it.
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from ftkit.tracking.session import RunInfo

PROBE_TIMEOUT_S = 5.0
_MAX_PARAMS_PER_CALL = 100  # MLflow's log_batch limit
_MAX_PARAM_CHARS = 6000  # MLflow's limit on a param value
_STATUS = {"succeeded": "FINISHED", "failed": "FAILED", "interrupted": "KILLED"}


def make_tracker(options: Any) -> MlflowTracker:
    """The tracker for the recipe's `tracking.mlflow` options."""
    return MlflowTracker(options.tracking_uri, options.experiment, dict(options.tags))


def public_uri(uri: str) -> str:
    """The URI without a user name or password, as it may be recorded and printed."""
    parts = urllib.parse.urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def flat_params(resolved: dict[str, Any]) -> dict[str, str]:
    """The resolved recipe as `section.key` -> text (lists and mappings inside a key as JSON)."""
    params: dict[str, str] = {}

    def walk(value: Any, prefix: str) -> None:
        if isinstance(value, dict) and value:
            for key, item in value.items():
                walk(item, f"{prefix}.{key}" if prefix else str(key))
        else:
            text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
            params[prefix] = text[:_MAX_PARAM_CHARS]

    walk(resolved, "")
    return params


class MlflowTracker:
    """Reports one ftkit run to an MLflow tracking server or store."""

    name = "mlflow"

    def __init__(self, tracking_uri: str | None, experiment: str, tags: dict[str, str]):
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.tags = tags
        self.client: Any = None
        self.run_id = ""

    def start(self, run: RunInfo) -> dict[str, Any]:
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
        for noisy in ("mlflow", "alembic"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        import mlflow
        from mlflow import MlflowClient
        from mlflow.entities import Param

        uri = self.tracking_uri or mlflow.get_tracking_uri()
        if urllib.parse.urlsplit(uri).scheme in ("file", ""):  # asked for by name: MLflow 3 refuses it unless
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # opted in (the store is in maintenance)
        if urllib.parse.urlsplit(uri).scheme in ("http", "https"):
            probe(uri)
        self.client = MlflowClient(tracking_uri=uri)
        experiment = self.client.get_experiment_by_name(self.experiment)
        experiment_id = (
            experiment.experiment_id if experiment else self.client.create_experiment(self.experiment)
        )
        tags = {
            "ftkit.run_id": run.run_id,
            "ftkit.run_name": run.run_name,
            "ftkit.method": run.method,
            "ftkit.model": run.model,
            "ftkit.config_hash": run.config_hash,
            **run.tags,
            **self.tags,
        }
        created = self.client.create_run(experiment_id, run_name=run.run_name, tags=tags)
        self.run_id = created.info.run_id
        params = [Param(key, value) for key, value in flat_params(run.resolved).items()]
        for first in range(0, len(params), _MAX_PARAMS_PER_CALL):
            self.client.log_batch(self.run_id, params=params[first : first + _MAX_PARAMS_PER_CALL])
        facts = {
            "run_id": self.run_id,
            "experiment_id": experiment_id,
            "experiment": self.experiment,
            "tracking_uri": public_uri(uri),
        }
        if urllib.parse.urlsplit(uri).scheme in ("http", "https"):
            facts["url"] = f"{public_uri(uri).rstrip('/')}/#/experiments/{experiment_id}/runs/{self.run_id}"
        return facts

    def log(self, step: int, values: dict[str, float]) -> None:
        self._log_metrics(step, values)

    def finish(self, status: str, step: int, final: dict[str, float], files: dict[str, str]) -> None:
        self._log_metrics(step, final)
        for name, text in files.items():
            self.client.log_text(self.run_id, text, name)
        self.client.set_tag(self.run_id, "ftkit.status", status)
        self.client.set_terminated(self.run_id, _STATUS.get(status, "FAILED"))

    def _log_metrics(self, step: int, values: dict[str, float]) -> None:
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        metrics = [Metric(key, value, stamp, step) for key, value in values.items()]
        for first in range(0, len(metrics), 1000):  # MLflow's log_batch limit on metrics
            self.client.log_batch(self.run_id, metrics=metrics[first : first + 1000])


def probe(uri: str) -> None:
    """Raise ConnectionError unless an MLflow server answers at `uri` within PROBE_TIMEOUT_S."""
    url = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S) as answer:  # noqa: S310 - the user's server
            answer.read(64)
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", None) or error
        raise ConnectionError(f"no MLflow server answers at {public_uri(uri)} ({reason})") from None
