"""An Optuna sweeper for Hydra: ``hydra/sweeper=lrdecay_optuna`` in any app's config.

Persistent studies on current Optuna, several objectives, pruning of runs through the study's
storage, and ``n_jobs`` trials kept running at once. See ``config.py`` for its settings and
``trial_hooks.py`` for what an app may plug in (by config: ``hydra.sweeper.trial_hooks``).
"""
