"""The project's own Optuna sweeper for Hydra: ``python train.py -m hydra/sweeper=optuna``.

Persistent studies on current Optuna, several objectives, pruning of runs through the study's
storage, and ``n_jobs`` trials kept running at once. See ``config.py`` for its settings.
"""
