"""Provenance of a sweep and of each point: zlnotes version, git commit, host, versions."""

from __future__ import annotations

import functools
import platform
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from .records import _utc_now


def _git_commit() -> str | None:
    """The commit of the zlnotes source, ``+dirty`` if tracked files changed; None outside git.

    None also when zlnotes is installed as a copy (e.g. in a virtualenv inside a work
    tree): the package's own files must be tracked by the work tree.
    """
    package = Path(__file__).resolve().parent

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(package), *args], capture_output=True, text=True, timeout=30, check=False
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    if git("ls-files", "--error-unmatch", "__init__.py") is None:
        return None
    commit = git("rev-parse", "HEAD")
    if not commit:
        return None
    status = git("status", "--porcelain", "--untracked-files=no")
    return commit + ("+dirty" if status else "")


@functools.lru_cache(maxsize=1)
def _process_commit() -> str | None:
    """:func:`_git_commit` as seen by this process, read at its first point and cached.

    A cache (three ``git`` calls per process, not per point), not state that changes
    results: the code a process runs is the code it imported, so its first reading is
    the one that describes it.
    """
    return _git_commit()


def _provenance(commit: str | None) -> dict[str, Any]:
    import scipy

    from .. import __version__

    return {
        "zlnotes_version": __version__,
        "commit": commit,
        "date": _utc_now(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "platform": platform.platform(),
    }

