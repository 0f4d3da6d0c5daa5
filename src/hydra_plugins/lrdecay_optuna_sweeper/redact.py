"""Passwords out of storage URLs and error text before the sweeper prints or saves them."""

from __future__ import annotations

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
    netloc = f"{parts.username}:***@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def redact_text(text: str) -> str:
    """Every ``scheme://user:password@`` in ``text`` with the password replaced by ``***``
    (also when Hydra escaped the colon as ``\\:``)."""
    return _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text.replace("\\:", ":"))
