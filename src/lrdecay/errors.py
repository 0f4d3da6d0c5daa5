"""Errors a user can cause and fix: shown as one clear message, never as a traceback."""


class LrdecayError(Exception):
    """Base of every user-fixable error; its message names the fix."""


class ConfigError(LrdecayError):
    """A composed config that fails type or range checks."""


class DataError(LrdecayError):
    """Data files that are missing, unreadable or cannot be downloaded."""


class TrackingError(LrdecayError):
    """An MLflow store that cannot be reached or used."""
