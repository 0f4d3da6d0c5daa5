"""Keep passwords in tracking URIs out of logs, params, tags and tables (the redaction itself is
the sweeper's, one definition for both)."""

from __future__ import annotations

import logging

from hydra_plugins.lrdecay_optuna_sweeper.redact import redact_text, redact_uri

__all__ = ["redact_logging", "redact_text", "redact_uri"]

_installed = False


def redact_logging() -> None:
    """Redact URI passwords from every log record of this process from now on.

    Done through the record factory, which survives the logging reconfigurations Hydra and
    its launchers perform (handlers and filters do not).
    """
    global _installed
    if _installed:
        return
    make_record = logging.getLogRecordFactory()

    def redacting_record(*args: object, **kwargs: object) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        message = record.getMessage()
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return record

    logging.setLogRecordFactory(redacting_record)
    _installed = True
