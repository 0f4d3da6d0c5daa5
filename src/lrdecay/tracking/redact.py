"""Keep passwords in tracking URIs out of logs, params, tags and tables."""

from __future__ import annotations

import logging
import re
from urllib.parse import urlsplit, urlunsplit

_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):[^@/\s]*@")


def redact_uri(uri: str) -> str:
    """``uri`` with any password replaced by ``***``, safe to print or log."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def redact_text(text: str) -> str:
    """Every ``scheme://user:password@`` in ``text`` with the password replaced by ``***``
    (also when Hydra escaped the colon as ``\\:``)."""
    return _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text.replace("\\:", ":"))


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
