"""Re-train some runs of a published study and compare them with the published numbers.

    python scripts/recheck_published.py [--runs 2] [--experiment lrdecay-fashion_mnist-study]
        [override ...]

Picks ``--runs`` finished runs of the study (spread over its settings, one seed each), trains
each again from scratch as its sweep job did (same preset, setting, seed and thread count) into
the experiment ``<experiment>-recheck``, all at once, and prints one row per run: the
published and the re-run test (or final validation) accuracy, their difference, and whether the
re-run lies inside the published setting's 95 % confidence interval (with a single seed, no
interval exists yet: then it must equal its original). Exits 1 if one does not.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

from lrdecay.report.runs import RunRecord, default_uri, load_runs
from lrdecay.report.stats import SCORE_METRICS, summarise

ROOT = Path(__file__).resolve().parents[1]
PRESET = "fashion_mnist_study"
EXPERIMENT = "lrdecay-fashion_mnist-study"


def main(argv: list[str] | None = None) -> int:
    """Re-train a sample of the study's runs and print how far each lands from its original."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default=EXPERIMENT)
    parser.add_argument("--preset", default=PRESET, help="the study's experiment= preset")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--tracking-uri", default=None)
    parser.add_argument("overrides", nargs="*", help="extra overrides the study's launch had")
    args = parser.parse_args(argv)
    client = MlflowClient(tracking_uri=args.tracking_uri or default_uri())
    runset = load_runs(client, experiment=args.experiment)
    rows = summarise(runset.runs, None)
    metric = SCORE_METRICS[rows[0].scored_by]
    step = max(1, len(rows) // args.runs)
    picked = [(row, row.ok_runs[i % len(row.ok_runs)]) for i, row in enumerate(rows[::step])]
    picked = [(row, run) for row, run in picked[: args.runs]]
    recheck = f"{args.experiment}-recheck"
    jobs = []
    started_ms = int(time.time() * 1000)
    for _, run in picked:
        cmd = [
            sys.executable,
            str(ROOT / "train.py"),
            f"experiment={args.preset}",
            f"setting={run.setting}",
            f"seed={run.seed}",
            f"threads={client.get_run(run.run_id).data.tags.get('threads', 1)}",  # as it ran
            "trainer.progress=off",
            f"tracking.experiment={recheck}",
            f"hydra.run.dir=outputs/recheck/{run.setting}-s{run.seed}",  # runs start together
            *args.overrides,
        ]
        jobs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    for job in jobs:
        _, err = job.communicate()
        if job.returncode != 0:
            print(err.decode(errors="replace")[-2000:], file=sys.stderr)
            return 1
    again = rerun_records(client, recheck, started_ms)
    print(f"{'setting':<16}{'seed':>5}{'published':>11}{'re-run':>9}{'diff':>10}  inside CI")
    bad = 0
    for row, run in picked:
        new = again[(run.setting, run.seed)].metric(metric)
        old = run.metric(metric)
        stat = row.scored
        if stat is not None and stat.half is not None and new is not None:
            inside = math.isclose(new, stat.mean, abs_tol=stat.half)
        else:  # one seed: no interval yet, so the re-run must match its original exactly
            inside = new is not None and new == old
        bad += not inside
        diff = (new - old) if new is not None and old is not None else math.nan
        print(
            f"{run.setting:<16}{run.seed:>5}{old or math.nan:>11.4f}{new or math.nan:>9.4f}"
            f"{diff:>+10.4f}  {'yes' if inside else 'NO'}"
        )
    ok = len(picked) - bad
    print(f"{metric}: {ok} of {len(picked)} re-runs inside the published CI (n=1: equal)")
    return 1 if bad else 0


def rerun_records(client: MlflowClient, experiment: str, since_ms: int) -> dict[tuple, RunRecord]:
    """The runs of ``experiment`` started at or after ``since_ms``, by (setting, seed): this
    check's re-runs, never those an earlier check left in the same experiment."""
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return {}
    fresh = {
        run.info.run_id
        for run in client.search_runs(
            [exp.experiment_id], f"attributes.start_time >= {since_ms}", max_results=10_000
        )
    }
    records = load_runs(client, experiment=experiment).runs
    return {(r.setting, r.seed): r for r in records if r.run_id in fresh}


if __name__ == "__main__":
    raise SystemExit(main())
