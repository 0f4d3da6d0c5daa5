"""Selection optimism of a search that scores each trial on one seed against one that scores it
on K seeds, at the same number of trials (and at the same number of runs).

    python benchmarks/selection_optimism.py [--repeats 10] [--trials 20] [--seeds 3]
                                            [--sigma 1.0] [--jobs 2] [--smoke]
                                            [--variants one mean more lcb] [--replay 200]

The real sweeper, through Hydra, searches ``tests/noisy_app.py``: x in [-3, 3], value
-(x - 1)² plus normal noise (sd ``sigma``) drawn from (x, seed), the random sampler seeded r in
repetition r, so that every variant of repetition r tries the same x's (a paired comparison).
Variants: one seed per trial; K seeds told as their mean; one seed per trial with K times the
trials (the same runs as K seeds); K seeds told as the lower 95 % bound (``trial_score=lcb``).
Each search ends with the confirm stage (5 fresh seeds). Its selection optimism is the winner's
search value minus the value it is confirmed at: the confirm stage's mean, and the true value
-(x* - 1)² (what infinitely many fresh seeds would confirm). Prints mean ± standard error over
the repetitions for each variant, the paired difference of the optimism against the true value
between one seed and K, and the winner's true value (how good the choice was). ``--jobs``
searches run at once; ``--variants`` picks some of the four (``one mean`` is the comparison at
the same number of trials). Then ``--replay`` repetitions of each search are replayed in-process,
without Hydra (the same sampler and seeds, the app's values, the plugin's scoring): a precise
mean for the first column, and a check that the sweeper's searches are those replays.
"""

from __future__ import annotations

import argparse
import math
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import optuna
import yaml

from hydra_plugins.lrdecay_optuna_sweeper.seeds import Scoring

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.noisy_app import true_value, value_at  # noqa: E402  (the app's own values)

APP = ROOT / "tests" / "noisy_app.py"
CONFIRM_SEEDS = 5
#: The variants by name: one seed, K seeds' mean, one seed with K times the trials, K's lcb.
VARIANTS = ("one", "mean", "more", "lcb")


@dataclass
class Variant:
    """One way to score trials, and what its searches found."""

    key: str
    name: str
    seeds: int
    trials: int
    score: str = "mean"
    optimism_true: list[float] = field(default_factory=list)
    optimism_confirm: list[float] = field(default_factory=list)
    winner_true: list[float] = field(default_factory=list)
    seconds: float = 0.0


def search(folder: Path, repeat: int, sigma: float, variant: Variant) -> tuple[dict, float]:
    """Run one search in ``folder``; returns its ``optimization_results.yaml`` and its wall
    seconds."""
    args = [
        sys.executable,
        str(APP),
        "-m",
        "hydra/sweeper=lrdecay_optuna",
        "hydra/launcher=basic",
        f"hydra.sweep.dir={folder}/multirun",
        "hydra.sweeper.study_name=bench",
        "hydra.sweeper.trial_hooks=noisy_app.NoisyTrials",
        "hydra/sweeper/sampler=random",
        f"hydra.sweeper.sampler.seed={repeat}",
        "hydra.sweeper.direction=maximize",
        f"hydra.sweeper.n_trials={variant.trials}",
        f"hydra.sweeper.seeds_per_trial={variant.seeds}",
        f"hydra.sweeper.trial_score={variant.score}",
        "hydra.sweeper.confirm.enabled=true",
        f"hydra.sweeper.confirm.seeds={CONFIRM_SEEDS}",
        "x=interval(-3, 3)",
        f"sigma={sigma}",
    ]
    folder.mkdir()
    started = time.perf_counter()
    proc = subprocess.run(args, cwd=folder, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"{variant.name}, repeat {repeat} failed:\n{proc.stderr[-3000:]}")
    results = yaml.safe_load((folder / "multirun" / "optimization_results.yaml").read_text())
    return results, seconds


def replay(variant: Variant, repeat: int, sigma: float) -> tuple[float, float]:
    """``variant``'s search of repetition ``repeat`` without Hydra or the sweeper: the random
    sampler seeded alike asks the same x's, each trial scored over the app's values at its seeds
    (the config's seed 0 and the ones after it). Returns the winner's optimism and true value."""
    sampler = optuna.samplers.RandomSampler(seed=repeat)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    scoring = Scoring(variant.seeds, variant.score)
    seeds = scoring.seeds_from(0) or [0]
    for _ in range(variant.trials):
        trial = study.ask()
        x = trial.suggest_float("x", -3.0, 3.0)
        study.tell(trial, scoring.value([value_at(x, s, sigma, 0, 0) for s in seeds], True))
    winner = true_value(study.best_trial.params["x"])
    return study.best_value - winner, winner


def mean_se(values: list[float]) -> str:
    """``mean ± standard error`` (no error with one value)."""
    mean = statistics.mean(values)
    if len(values) < 2:
        return f"{mean:+.3f}"
    return f"{mean:+.3f} ± {statistics.stdev(values) / math.sqrt(len(values)):.3f}"


def run_searches(variants: list[Variant], repeats: int, args: argparse.Namespace) -> None:
    """Run ``repeats`` real searches of each variant and print their table."""
    plan = [(repeat, v) for repeat in range(repeats) for v in variants]
    with (
        tempfile.TemporaryDirectory(prefix="selection-optimism-") as tmp,
        ThreadPoolExecutor(max(1, args.jobs)) as pool,
    ):
        done = [
            pool.submit(search, Path(tmp) / str(i), repeat, args.sigma, variant)
            for i, (repeat, variant) in enumerate(plan)
        ]
        for (_, variant), future in zip(plan, done, strict=True):
            results, seconds = future.result()
            winner = true_value(float(results["best_params"]["x"]))
            (confirmed,) = results["confirmation"]
            variant.winner_true.append(winner)
            variant.optimism_true.append(float(results["best_value"]) - winner)
            variant.optimism_confirm.append(float(confirmed["selection_optimism"]))
            variant.seconds += seconds

    print(
        f"{'SMOKE: ' if args.smoke else ''}{repeats} search(es) per variant (random sampler, "
        f"the same x's in every variant of a repetition); value -(x-1)² + N(0, {args.sigma}²) "
        f"noise per (x, seed); confirm stage {CONFIRM_SEEDS} fresh seeds; {args.jobs} at once"
    )
    print(
        f"{'variant':<20}  {'trials':>6}  {'runs':>5}  {'optimism vs true value':>22}  "
        f"{'vs confirm stage':>18}  {'winner true value':>18}  {'wall s':>7}"
    )
    for v in variants:
        print(
            f"{v.name:<20}  {v.trials:>6}  {v.trials * v.seeds:>5}  "
            f"{mean_se(v.optimism_true):>22}  {mean_se(v.optimism_confirm):>18}  "
            f"{mean_se(v.winner_true):>18}  {v.seconds:>7.1f}"
        )
    by_key = {v.key: v for v in variants}
    if "one" in by_key and "mean" in by_key:
        one, many = by_key["one"], by_key["mean"]
        paired = [a - b for a, b in zip(one.optimism_true, many.optimism_true, strict=True)]
        print(
            f"\nOptimism (search value − true value, mean ± standard error over {repeats} "
            f"searches): {mean_se(one.optimism_true)} with 1 seed per trial, "
            f"{mean_se(many.optimism_true)} with {many.seeds} (their paired difference "
            f"{mean_se(paired)}), at {one.trials} trials each; the {many.seeds}-seed search ran "
            f"{many.seeds}x the runs."
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10, help="searches per variant")
    parser.add_argument("--trials", type=int, default=20, help="n_trials of each search")
    parser.add_argument("--seeds", type=int, default=3, help="K: seeds per trial")
    parser.add_argument("--sigma", type=float, default=1.0, help="the noise's sd")
    parser.add_argument("--jobs", type=int, default=2, help="searches run at once")
    parser.add_argument("--replay", type=int, default=200, help="in-process replays")
    parser.add_argument("--smoke", action="store_true", help="1 repeat of 3 trials")
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=VARIANTS,
        default=list(VARIANTS),
        help="one seed; K seeds' mean; one seed, K times the trials; K seeds' lcb",
    )
    args = parser.parse_args()
    repeats, trials = (1, 3) if args.smoke else (args.repeats, args.trials)
    replays = max(repeats, 5 if args.smoke else args.replay)
    k = args.seeds
    variants = [
        Variant("one", "1 seed per trial", 1, trials),
        Variant("mean", f"{k} seeds, mean", k, trials),
        Variant("more", f"1 seed, {k}x trials", 1, k * trials),
        Variant("lcb", f"{k} seeds, lcb", k, trials, "lcb"),
    ]
    variants = [v for v in variants if v.key in args.variants]
    if repeats:
        run_searches(variants, repeats, args)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print(f"\nReplayed in-process, {replays} repetitions (no Hydra, no sweeper):")
    print(f"{'variant':<20}  {'optimism vs true value':>22}  {'winner true value':>18}")
    replayed = {}
    for v in variants:
        optimism, winners = zip(*(replay(v, r, args.sigma) for r in range(replays)), strict=True)
        replayed[v.key] = list(optimism)
        print(f"{v.name:<20}  {mean_se(list(optimism)):>22}  {mean_se(list(winners)):>18}")
    same = all(
        math.isclose(a, b, abs_tol=1e-9)
        for v in variants
        for a, b in zip(v.optimism_true, replayed[v.key][:repeats], strict=True)
    )
    if repeats:
        verdict = "yes" if same else "NO"
        print(f"the sweeper's {repeats} searches per variant equal their replays: {verdict}")


if __name__ == "__main__":
    main()
