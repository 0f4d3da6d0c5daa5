"""Sweeps: the Hydra callbacks around a multirun, each job's outcome file, the Optuna pruning
bridge. The launching process imports no torch (an import contract checks it)."""
