"""MLflow tracking: the store and its URI, the per-run tracker, run identity and resume, the UI's
names and colours, and keeping credentials out of everything written."""
