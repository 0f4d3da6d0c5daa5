"""A griffe extension for the API pages (mkdocs.yml): Sphinx roles as inline code.

The docstrings name objects the Sphinx way (``:class:`~lrdecay.core.listeners.Listener```), which
Markdown would show verbatim; this shows each as code, ``~`` keeping the last name only.
"""

from __future__ import annotations

import re
from typing import Any

from griffe import Extension, Object

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|data|exc|obj|const):`(~?)([^`]+)`")


def _code(match: re.Match[str]) -> str:
    tilde, target = match.groups()
    return f"`{target.rsplit('.', 1)[-1] if tilde else target}`"


class SphinxRoles(Extension):
    """Rewrites each object's docstring once it is loaded."""

    def on_instance(self, *, obj: Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(_code, obj.docstring.value)
