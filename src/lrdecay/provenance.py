"""What produced a result: the git commit of the code, for a run's tags and a published page."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git_commit(path: Path) -> str | None:
    """The commit checked out at ``path``, if it is a git work tree."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=path,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
