"""The report command: reads a study's runs back from MLflow and writes its tables and figures.

    lrdecay-report --experiment lrdecay-digits            # every run of the experiment
    lrdecay-report --parent-run-id <id>                   # the runs of one sweep
    lrdecay-report --data docs/results/fashion_mnist/data # a study's exported files

writes the report (:mod:`lrdecay.report.report_files`) into ``reports/<experiment>/`` unless
``--out`` names a folder.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mlflow.exceptions import MlflowException

from lrdecay.errors import TrackingError
from lrdecay.report.item_differences import (
    from_files,
)
from lrdecay.report.runs import ReportError, default_uri, store_client
from lrdecay.tracking.environment import set_mlflow_defaults
from lrdecay.tracking.redact import redact_uri
from lrdecay.tracking.store import DEFAULT_STORE_DIR, STORE_FILE

if TYPE_CHECKING:
    pass

from lrdecay.report.report_files import write_report, write_runset_report


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lrdecay-report",
        description="Tables, figures and a claim-by-claim report of a learning-rate decay "
        "study, read back from MLflow.",
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--experiment", help="MLflow experiment name, e.g. lrdecay-digits")
    which.add_argument("--parent-run-id", help="the parent run of one sweep: report its runs")
    which.add_argument(
        "--data",
        type=Path,
        help="a study's exported files (python -m lrdecay.report.export): report them, no store",
    )
    p.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else the SQLite store "
        f"{DEFAULT_STORE_DIR}/{STORE_FILE} of the current directory)",
    )
    p.add_argument(
        "--out", type=Path, default=None, help="output folder (default: reports/<experiment>/)"
    )
    p.add_argument(
        "--target",
        type=float,
        default=None,
        help="accuracy for the epochs-to-target column "
        "(default: the runs' dataset.target_accuracy)",
    )
    p.add_argument(
        "--margin",
        type=float,
        default=None,
        help="the equivalence margin the study declared (report.margin: an accuracy difference, "
        "0.005 is half a point) for the differences over seeds and test items (default: none)",
    )
    p.add_argument(
        "--no-log", action="store_true", help="do not log the report to the sweep's parent run"
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (0, or 1 with one line on stderr)."""
    args = _parser().parse_args(argv)
    set_mlflow_defaults()
    uri = args.tracking_uri or default_uri()
    try:
        if args.target is not None and not 0 < args.target <= 1:
            raise ReportError(f"--target must be an accuracy in (0, 1], got {args.target}")
        from lrdecay.config import MAX_MARGIN

        if args.margin is not None and not 0 < args.margin <= MAX_MARGIN:
            raise ReportError(
                f"--margin must be an accuracy difference in (0, {MAX_MARGIN}] (0.005 is half "
                f"a point), got {args.margin}"
            )
        if args.data is not None:
            from lrdecay.report.export import load_exported

            runset = load_exported(args.data)
            out = args.out or Path("reports") / runset.experiment
            path = write_runset_report(
                runset, out, args.target, margin=args.margin, kept=from_files(args.data)
            )
            print(f"report written to {path}")
            return 0
        client = store_client(uri)
        out = args.out
        if out is None:
            name = args.experiment
            if name is None:
                try:
                    run = client.get_run(args.parent_run_id)
                    name = client.get_experiment(run.info.experiment_id).name
                except MlflowException as exc:
                    raise ReportError(
                        f"no run with id '{args.parent_run_id}' at "
                        f"{redact_uri(uri)}; check --parent-run-id"
                    ) from exc
            out = Path("reports") / name
        path = write_report(
            client,
            experiment=args.experiment,
            parent_run_id=args.parent_run_id,
            out_dir=out,
            target=args.target,
            log_to_parent=not args.no_log,
            margin=args.margin,
        )
    except (ReportError, TrackingError) as exc:
        print(f"lrdecay-report: {exc}", file=sys.stderr)
        return 1
    except MlflowException as exc:
        print(
            f"lrdecay-report: cannot read the MLflow store at {redact_uri(uri)}: "
            f"{str(exc).splitlines()[0]}",
            file=sys.stderr,
        )
        return 1
    print(f"report written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
