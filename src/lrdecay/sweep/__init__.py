"""Sweeps: the launching process's Hydra callbacks around a multirun (launcher), each job's
result file and the sweep's folder (folder), the terminal's summary (summary), the Optuna
sweeper's application side (trials) and pruning bridge (pruning). The launching process imports
no torch (an import contract checks it)."""
