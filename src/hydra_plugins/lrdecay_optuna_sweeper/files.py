"""The files a search writes in its sweep dir, and where confirm jobs run (no imports: anyone
reading a sweep's files may name them)."""

#: The study's counts, best trial or Pareto front, and the confirmation's summary.
RESULTS_FILE = "optimization_results.yaml"
#: Every trial of the study, best first.
TRIALS_FILE = "trials.csv"
#: Every job of the confirm stage: the trial it confirms, its overrides, state and measures.
CONFIRM_FILE = "confirmation.csv"
#: The confirmation as printed, for whoever shows the sweep's end again (an app's summary).
CONFIRMATION_FILE = "confirmation.txt"
#: Optuna's parameter importances (fANOVA) for the first objective.
IMPORTANCES_FILE = "param_importances.csv"
#: Where each confirm job runs, under the sweep dir (apart from the trials' numbered folders).
CONFIRM_SUBDIR = "confirm-${hydra.job.num}"
