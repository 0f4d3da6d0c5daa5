"""The MLflow experiment a run belongs to: its name from the config, and the experiment made
(or restored, its project tags brought up to date) in the store."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from lrdecay.tracking.ui import SHARED_VIEW_TAG, experiment_tags

if TYPE_CHECKING:
    from lrdecay.config import LrdecayConfig


def experiment_name(conf: LrdecayConfig) -> str:
    """``tracking.experiment`` or ``lrdecay-<dataset>``: one experiment per data set."""
    return conf.tracking.experiment or f"lrdecay-{conf.dataset.name}"


def ensure_experiment(client: MlflowClient, name: str, artifact_root: str | None) -> str:
    """The id of experiment ``name``, created if needed; tolerates another process racing."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            client.restore_experiment(found.experiment_id)
        for key, value in experiment_tags().items():  # made before the project wrote them
            stale = key.startswith(SHARED_VIEW_TAG) and found.tags.get(key) != value
            if key not in found.tags or stale:  # its kind, unless set; the project's view
                client.set_experiment_tag(found.experiment_id, key, value)
        return found.experiment_id
    location = f"{artifact_root}/{name}" if artifact_root else None
    try:
        return client.create_experiment(name, artifact_location=location, tags=experiment_tags())
    except MlflowException:
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id
