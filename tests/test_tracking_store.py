"""The tracking store's plumbing: MLflow's settings set by entry points, never on import."""

from __future__ import annotations

from lrdecay.tracking.environment import MLFLOW_DEFAULTS, set_mlflow_defaults
from tests.helpers import python_json


def test_mlflow_defaults_fill_only_what_the_user_left_unset() -> None:
    environ = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "120"}
    set_mlflow_defaults(environ)
    assert environ == {**MLFLOW_DEFAULTS, "MLFLOW_HTTP_REQUEST_TIMEOUT": "120"}


def test_importing_the_tracking_and_report_modules_sets_no_environment() -> None:
    code = (
        "import json, os\n"
        "from lrdecay.tracking.environment import MLFLOW_DEFAULTS\n"
        "for name in MLFLOW_DEFAULTS: os.environ.pop(name, None)\n"
        "import lrdecay.run, lrdecay.report.build\n"
        "print(json.dumps(sorted(set(MLFLOW_DEFAULTS) & set(os.environ))))"
    )
    assert python_json(code) == []
