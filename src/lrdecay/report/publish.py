"""Publish an experiment's report as a page of the repository: the report itself (table,
figures, claims) under a front page that says where it came from (command, commits, machine,
launches and wall time), the verdicts and the generated reading of the validation loss after its
minimum, and carries a hand-written reading kept in ``reading.md``.

    python -m lrdecay.report.publish --experiment lrdecay-fashion_mnist-study \\
        --out docs/results/fashion_mnist --command "make results"

The page is rewritten from the store on every call, so its numbers are always the report's.
"""

from __future__ import annotations

import argparse
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from lrdecay.errors import LrdecayError
from lrdecay.host import available_cores
from lrdecay.provenance import git_commit
from lrdecay.report.claim_wording import Claim
from lrdecay.report.claims import check_claims
from lrdecay.report.export import (
    HISTORIES_FILE,
    MANIFEST_FILE,
    RUNS_FILE,
    STUDY_PREDICTIONS_FILE,
)
from lrdecay.report.markdown import pipe_table
from lrdecay.report.modern_claims import check_modern
from lrdecay.report.overfitting import ANCHOR as OVERFIT_ANCHOR
from lrdecay.report.overfitting import TITLE as OVERFIT_TITLE
from lrdecay.report.overfitting import loss_rises, reading
from lrdecay.report.report_files import write_report
from lrdecay.report.runs import RunSet, default_uri, launches, load_runs
from lrdecay.report.stats import SCORE_NAMES, SettingSummary, scored_by, summarise
from lrdecay.tracking.environment import set_mlflow_defaults
from lrdecay.tracking.redact import redact_uri

#: The project's Hydra config folder (the presets whose budget a page states).
CONF_DIR = Path(__file__).resolve().parents[3] / "conf"
#: The hand-written reading of a published page, kept next to it and included verbatim.
READING_FILE = "reading.md"
#: The published page (GitHub shows a folder's README.md under its listing).
PAGE_FILE = "README.md"
#: The page's exported per-run files (``python -m lrdecay.report.export --out <page>/data``).
DATA_DIR = "data"
#: Report files a repository page leaves out: the HTML copy embeds every figure again.
UNPUBLISHED = ("report.html",)
#: Colours a published figure keeps: a palette PNG is a third of the size, same to the eye.
PNG_COLOURS = 256


@dataclass(frozen=True)
class Provenance:
    """Where the runs of a page came from: code, machine, launches and time."""

    runs: int
    settings: int
    seeds: list[str]
    epochs: list[int]
    diverged: int
    commits: list[str]
    launches: int
    launch_seconds: float
    train_seconds: float
    first_start: datetime | None
    last_end: datetime | None


def _ms(value: int | None) -> datetime | None:
    return datetime.fromtimestamp(value / 1000, tz=timezone.utc) if value else None


def _launch_seconds(launches: Sequence[Run], runs: Sequence[Run]) -> float:
    """Summed wall time of ``launches``: each from its start to its end or, for a launch that
    was stopped before it could end, to the last end among the runs started during it."""
    total = 0.0
    for i, launch in enumerate(launches):
        start = launch.info.start_time
        until = launches[i + 1].info.start_time if i + 1 < len(launches) else None
        during = [
            r.info.end_time
            for r in runs
            if r.info.end_time
            and start <= r.info.start_time
            and (until is None or r.info.start_time < until)
        ]
        end = launch.info.end_time or max(during, default=0)
        if end:
            total += (end - start) / 1000
    return total


def provenance(client: MlflowClient, runset: RunSet) -> Provenance:
    """Count runs, seeds, epochs and launches, and the launches' wall time (a stopped and
    re-launched study counts each launch once, not the pause between them)."""
    runs = [client.get_run(r.run_id) for r in runset.runs]
    launched = launches(client, runset.experiment_id)
    starts = [run.info.start_time for run in runs if run.info.start_time]
    ends = [run.info.end_time for run in runs if run.info.end_time]
    epochs = sorted({int(e) for r in runset.runs if (e := r.metric("epochs_run")) is not None})
    return Provenance(
        runs=len(runset.runs),
        settings=len({r.setting for r in runset.runs}),
        seeds=sorted({r.seed for r in runset.runs}, key=lambda s: (len(s), s)),
        epochs=epochs,
        diverged=sum(r.diverged for r in runset.runs),
        commits=sorted({c for run in runs if (c := run.data.tags.get("mlflow.source.git.commit"))}),
        launches=len(launched),
        launch_seconds=_launch_seconds(launched, runs),
        train_seconds=sum(r.outcome.train_seconds or 0.0 for r in runset.runs),
        first_start=_ms(min(starts, default=None)),
        last_end=_ms(max(ends, default=None)),
    )


def machine() -> str:
    """This machine in one line: CPU model and cores, OS, Python and torch versions."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        torch_version = version("torch")
    except PackageNotFoundError:
        torch_version = "not installed"
    cores = available_cores()
    return (
        f"{model}, {cores} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, torch {torch_version}"
    )


def _composed(preset: str, conf_dir: Path = CONF_DIR) -> Any:
    """The root config of the sweep preset ``experiment=<preset>``, Hydra's part included."""
    from hydra import compose, initialize_config_dir

    from lrdecay.config import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(conf_dir.resolve()), version_base="1.3"):
        return compose("config", [f"experiment={preset}"], return_hydra_config=True)


def planned(preset: str, conf_dir: Path = CONF_DIR) -> list[tuple[str, str]]:
    """The (setting, seed) pairs the sweep preset ``experiment=<preset>`` launches, read from
    its composed ``hydra.sweeper.params`` (settings and seeds it sweeps)."""
    cfg = _composed(preset, conf_dir)
    params = cfg.hydra.sweeper.params or {}
    settings = str(params.get("setting", cfg.get("setting") or "")).split(",")
    seeds = str(params.get("seed", cfg.seed)).split(",")
    return [(setting.strip(), seed.strip()) for seed in seeds for setting in settings]


def declared_margin(preset: str, conf_dir: Path = CONF_DIR) -> float | None:
    """The equivalence margin the preset declares (``report.margin``, an accuracy difference:
    0.005 is half a point); None when it declares none."""
    margin = _composed(preset, conf_dir).report.get("margin")
    return float(margin) if margin is not None else None


def coverage(runset: RunSet, plan: list[tuple[str, str]] | None = None) -> str:
    """ "complete" when every planned (setting, seed) finished and no run is left out; else the
    budget, plainly: how many of the planned runs are in, per seed, and what is left out."""
    done = {(r.setting, r.seed) for r in runset.runs}
    plan = plan or sorted(done)
    missing = [pair for pair in plan if pair not in done]
    if not missing and not runset.excluded:
        return "complete"
    settings = sorted({s for s, _ in plan})
    seeds = sorted({seed for _, seed in plan}, key=lambda s: (len(s), s))
    parts = [f"{len(done & set(plan))} of the {len(plan)} planned runs finished"]
    for seed in seeds:
        got = sum((s, seed) in done for s in settings)
        if got < len(settings):
            parts.append(f"seed {seed}: {got} of {len(settings)} settings")
    if runset.excluded:
        parts.append(
            "left out: " + ", ".join(f"{n} {why}" for why, n in sorted(runset.excluded.items()))
        )
    return "**interim** — " + "; ".join(parts) + " (the same command finishes it)"


def _commits(commits: Sequence[str]) -> str:
    return ", ".join(f"`{c[:12]}`" for c in commits) or "n/a"


def _hours(seconds: float) -> str:
    hours, rest = divmod(round(seconds), 3600)
    return f"{hours} h {rest // 60:02d} min"


def shrink_figures(out_dir: Path) -> int:
    """Re-save every PNG of ``out_dir`` with a 256-colour palette; returns the bytes of all."""
    from PIL import Image  # matplotlib's own dependency; only publishing needs it

    total = 0
    for path in sorted(out_dir.glob("*.png")):
        with Image.open(path) as image:
            small = image.convert("RGB").quantize(colors=PNG_COLOURS)
        small.save(path, optimize=True)
        total += path.stat().st_size
    return total


def render_page(
    runset: RunSet,
    prov: Provenance,
    command: str,
    commit: str,
    reading: str | None,
    plan: list[tuple[str, str]] | None = None,
    data: Path | None = None,
) -> str:
    """The front page: what ran, where and how long, the per-run files (``data``, exported
    beside it, when they are), the verdicts, the reading, the report."""
    rows = summarise(runset.runs, None)
    score = SCORE_NAMES[scored_by(rows)]
    claims = [*check_claims(rows), *check_modern(rows)]
    lines = [
        f"# Published result: {runset.experiment}",
        "",
        f"The learning-rate study on {', '.join(runset.datasets)}: {prov.runs} runs, "
        f"{prov.settings} settings × seeds {', '.join(prov.seeds)}, scored by {score}. "
        f"The full report, with the table, the figures and every verdict's numbers, is "
        f"[report.md](report.md).",
        "",
        *_facts_table(runset, prov, command, commit, plan, data),
        "",
        "## Verdicts",
        "",
        *[f"- *{c.text}* — {_scope(c, runset.datasets)}**{c.verdict}**" for c in claims],
        "",
        "The rules behind each verdict (paired tests by seed, Holm correction, 'cannot tell' "
        "when the evidence does not decide) are stated in the report's method paragraph.",
        "",
        *_overfitting(rows),
        "## Reading",
        "",
        reading.strip() if reading else "*(not written yet)*",
        "",
    ]
    return "\n".join(lines)


def _facts_table(
    runset: RunSet,
    prov: Provenance,
    command: str,
    commit: str,
    plan: list[tuple[str, str]] | None,
    data: Path | None,
) -> list[str]:
    """The page's table of facts: command, status, runs, commits, machine, wall time, data."""
    epochs = ", ".join(str(e) for e in prov.epochs) or "n/a"
    when = (
        f"{prov.first_start:%Y-%m-%d %H:%M} to {prov.last_end:%Y-%m-%d %H:%M} UTC"
        if prov.first_start and prov.last_end
        else "n/a"
    )
    return pipe_table(
        ["", ""],
        [
            [
                "Command",
                f"`{command}` (idempotent: it reuses finished runs and resumes stopped ones)",
            ],
            ["Status", coverage(runset, plan)],
            [
                "Runs",
                f"{prov.runs} in {prov.settings} settings, seeds {', '.join(prov.seeds)}; "
                f"epochs run: {epochs}; diverged: {prov.diverged}",
            ],
            ["Trained at commit (HEAD as each run started)", _commits(prov.commits)],
            ["Page written at commit", f"`{commit[:12]}`"],
            ["Machine", machine()],
            [
                "Wall time",
                f"{_hours(prov.launch_seconds)} over {prov.launches} launch(es), "
                f"{when}; training time summed over the runs {_hours(prov.train_seconds)}",
            ],
            *([_data_row(data)] if data is not None else []),
        ],
    )


def _overfitting(rows: Sequence[SettingSummary]) -> list[str]:
    """The page's section on the validation loss after its minimum: the report's generated
    reading of it, and a link to its numbers per arm; nothing when no run logged the loss."""
    text = reading(loss_rises(rows))
    if not text:
        return []
    return [
        f"## {OVERFIT_TITLE}",
        "",
        f"{text} The numbers per arm: [report.md](report.md#{OVERFIT_ANCHOR}).",
        "",
    ]


def _data_row(data: Path) -> list[str]:
    """The page's row naming its exported per-run files, linked relative to the page."""
    names = ", ".join(f"`{name}`" for name in (RUNS_FILE, HISTORIES_FILE, STUDY_PREDICTIONS_FILE))
    return [
        "Per-run files",
        f"[{data.name}/]({data.name}/): {names} (`python -m lrdecay.report "
        f"--data {data.as_posix()}` rebuilds the report from them, no store)",
    ]


def _scope(claim: Claim, datasets: Sequence[str]) -> str:
    """ "by analogy on X: " when the claim was made on another data set than these runs'."""
    if not claim.dataset or claim.dataset in datasets:
        return ""
    return f"by analogy on {', '.join(datasets)}: "


def publish(
    client: MlflowClient, experiment: str, out_dir: Path, command: str, preset: str | None = None
) -> Path:
    """Write the report of ``experiment`` into ``out_dir`` and its front page (with the budget
    of the sweep ``preset`` launched, when named); returns the page."""
    write_report(client, experiment=experiment, out_dir=out_dir, log_to_parent=False)
    for name in UNPUBLISHED:
        (out_dir / name).unlink(missing_ok=True)
    shrink_figures(out_dir)
    runset = load_runs(client, experiment=experiment)
    reading_path = out_dir / READING_FILE
    reading = reading_path.read_text(encoding="utf-8") if reading_path.exists() else None
    page = out_dir / PAGE_FILE
    page.write_text(
        render_page(
            runset,
            provenance(client, runset),
            command,
            git_commit(Path.cwd()) or "unknown",
            reading,
            planned(preset) if preset else None,
            data if (data := out_dir / DATA_DIR).joinpath(MANIFEST_FILE).is_file() else None,
        ),
        encoding="utf-8",
    )
    return page


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: publish one experiment's report as a repository page."""
    parser = argparse.ArgumentParser(prog="lrdecay-publish", description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", required=True, help="MLflow experiment name")
    parser.add_argument("--out", type=Path, required=True, help="the page's folder")
    parser.add_argument("--tracking-uri", default=None, help="default: as lrdecay-report")
    parser.add_argument("--command", default="make results", help="the command the page names")
    parser.add_argument("--preset", default=None, help="the experiment= preset that launched it")
    args = parser.parse_args(argv)
    set_mlflow_defaults()
    uri = args.tracking_uri or default_uri()
    try:
        page = publish(
            MlflowClient(tracking_uri=uri), args.experiment, args.out, args.command, args.preset
        )
    except LrdecayError as exc:
        print(f"lrdecay-publish: {exc} (store {redact_uri(uri)})", file=sys.stderr)
        return 1
    print(f"published {page}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
