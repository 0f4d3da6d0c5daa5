"""What ``lrdecay.startup`` does to the process it runs in."""

from __future__ import annotations

from tests.helpers import python_json

#: Imports torch and MLflow (plainly, or through ``import_frozen``, then again through it),
#: counting the collector's full collections meanwhile; prints what it saw as JSON.
IMPORTS = """
import gc, importlib, json, sys
full = []
def count(phase, info):
    if phase == "stop" and info["generation"] == 2:
        full.append(1)
gc.callbacks.append(count)
from lrdecay.startup import import_frozen
modules = ["torch", "mlflow"]
if sys.argv[1] == "plain":
    for name in modules:
        importlib.import_module(name)
else:
    import_frozen(modules)
seen = {"full": len(full), "frozen": gc.get_freeze_count(), "enabled": gc.isenabled()}
import_frozen(modules)
seen["frozen_again"] = gc.get_freeze_count()
try:
    import_frozen(["lrdecay_no_such_module"])
except ModuleNotFoundError:
    seen["enabled_after_a_failed_import"] = gc.isenabled()
print(json.dumps(seen))
"""


def test_imports_run_without_full_collections_and_stay_frozen() -> None:
    """Plain imports of torch and MLflow walk the growing heap several times; through
    ``import_frozen`` only the small heap before them is collected, what they built is frozen
    (no later collection, the exit's included, walks it), and the collector runs again after."""
    plain, frozen = python_json(IMPORTS, "plain"), python_json(IMPORTS, "frozen")
    assert plain["full"] >= 3 and plain["frozen"] == 0, plain
    assert frozen["full"] == 1, frozen  # the collection before the imports, on a small heap
    assert frozen["frozen"] > 100_000 and frozen["enabled"], frozen
    assert frozen["frozen_again"] == frozen["frozen"]  # all imported already: nothing to do
    assert frozen["enabled_after_a_failed_import"] is True
