"""The recipe's `tracking:` section: which experiment trackers a run reports to, and their options.

Two spellings, both normalised to the mapping form before `--set` overrides apply (`normalize_raw`):

    tracking: [mlflow, tensorboard]               # each with its defaults
    tracking:
      mlflow: {tracking_uri: http://127.0.0.1:5000, experiment: my-team}
      tensorboard: {}
      wandb: {project: my-project, mode: offline}

`ftkit run --track mlflow` adds `tracking.mlflow={}` as an override when the recipe does not name it already.
Trackers never change what is trained, so `tracking` is left out of the config hash (recipe/resolve.py).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

TRACKERS = ("mlflow", "tensorboard", "wandb")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class MlflowOptions(_Strict):
    tracking_uri: str | None = Field(
        None,
        description="http(s)://HOST:PORT of an MLflow server, a file: folder, or sqlite:///DB; default: the "
        "MLFLOW_TRACKING_URI environment variable, else MLflow's own default.",
    )
    experiment: str = Field("ftkit", min_length=1, description="MLflow experiment (created when missing).")
    tags: dict[str, str] = Field(default_factory=dict, description="Extra tags set on the MLflow run.")


class TensorBoardOptions(_Strict):
    log_dir: str | None = Field(
        None, description="Folder for the event files; default OUTPUT/<run-id>/tensorboard."
    )


class WandbOptions(_Strict):
    project: str = Field("ftkit", min_length=1, description="W&B project.")
    entity: str | None = Field(None, description="W&B team or user; default: your W&B default.")
    mode: Literal["online", "offline"] | None = Field(
        None, description="offline writes files only (`wandb sync` uploads them later); default: WANDB_MODE."
    )
    dir: str | None = Field(None, description="Folder for W&B's files; default OUTPUT/<run-id>.")
    tags: list[str] = Field(default_factory=list, description="Tags on the W&B run.")


class TrackingConfig(_Strict):
    mlflow: MlflowOptions | None = Field(None, description="Report to MLflow.")
    tensorboard: TensorBoardOptions | None = Field(None, description="Write TensorBoard event files.")
    wandb: WandbOptions | None = Field(None, description="Report to Weights & Biases.")

    def enabled(self) -> list[str]:
        """The trackers this recipe reports to, in TRACKERS order."""
        return [name for name in TRACKERS if getattr(self, name) is not None]


def normalize_raw(raw: dict[str, Any]) -> None:
    """Rewrite a parsed recipe's list form `tracking: [mlflow, ...]` as the mapping form, in place. Items that are
    not tracker names stay as keys, so validation reports them at `tracking.<item>` with the known names."""
    value = raw.get("tracking")
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list):
        normal: dict[str, Any] = {}
        for item in value:
            if isinstance(item, dict):  # `- mlflow: {experiment: x}`
                normal.update(item)
            else:
                normal[str(item)] = {}
        raw["tracking"] = normal
    elif isinstance(value, dict):
        for name, options in list(value.items()):
            if options is None:  # `mlflow:` with nothing after it: the defaults
                value[name] = {}


def track_overrides(tracking: TrackingConfig, names: list[str]) -> list[str]:
    """`--set` overrides that turn on the trackers `names` (from `--track`) the recipe does not already use."""
    return [f"tracking.{name}={{}}" for name in dict.fromkeys(names) if getattr(tracking, name, None) is None]
