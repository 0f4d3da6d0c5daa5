"""The training core: data, models, schedules, the epoch loop and its checkpoints.

Imports torch and nothing of MLflow, Hydra or Optuna (an import contract checks it), so the
engine can be driven and tested on its own.
"""
