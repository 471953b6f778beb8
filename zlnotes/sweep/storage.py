"""Durable writes in the output folder: atomic replacement, appends, the lock, the manifest check."""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .records import RESULTS_FILE
from .spec import Experiment

MANIFEST_FILE = "sweep.json"


LOCK_FILE = ".lock"


MANIFEST_FORMAT = 1
"""Version of the layout of ``sweep.json`` and ``results.jsonl``."""


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes it 0600; give it a new file's mode
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


_TEMP_NAME = re.compile(r"\.(?:%s|%s)\.[A-Za-z0-9_]{8}\.tmp" % (re.escape(MANIFEST_FILE), re.escape(RESULTS_FILE)))
"""Names of the temporary files :func:`_write_atomic` makes (``mkstemp``: 8 random characters)."""


def _umask() -> int:
    """The process's umask, read without changing it where Linux allows (``os.umask`` is racy)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class _Lock:
    """An exclusive ``flock`` on ``DIR/.lock``, held for the life of a sweep."""

    def __init__(self, directory: Path) -> None:
        import fcntl

        self._fcntl = fcntl
        self.path = directory / LOCK_FILE
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(self.fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(self.fd)
            raise ValueError(f"out {directory} is in use by another running sweep (pid {holder})") from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        self._fcntl.flock(self.fd, self._fcntl.LOCK_UN)
        os.close(self.fd)


def _append(fd: int, line: bytes) -> None:
    """Append one whole line (a single write unless the kernel writes less) and fsync it."""
    view = memoryview(line)
    while view:
        view = view[os.write(fd, view) :]
    os.fsync(fd)


def _check_manifest(
    manifest_path: Path, experiment: Experiment, preset: str, grid: list[dict[str, Any]]
) -> dict | None:
    """The existing manifest if it describes this sweep; ``ValueError`` if another; None if absent."""
    if not manifest_path.exists():
        return None
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ValueError(
            f"out: {manifest_path} is not valid JSON ({exc}); remove the folder or choose another"
        ) from None
    if not isinstance(manifest, dict):
        raise ValueError(f"out: {manifest_path} is not a sweep manifest; remove the folder or choose another")
    theirs = (manifest.get("experiment"), manifest.get("preset"))
    if theirs != (experiment.name, preset):
        raise ValueError(
            f"out {manifest_path.parent} holds a sweep of experiment {theirs[0]!r}, preset {theirs[1]!r}, "
            f"not {experiment.name!r}, preset {preset!r}; choose another output folder"
        )

    def canon(points: Sequence[Mapping[str, Any]]) -> set[str]:
        return {json.dumps(p, sort_keys=True) for p in points}

    if canon(manifest.get("grid", [])) != canon(grid):
        raise ValueError(
            f"out {manifest_path.parent} holds a sweep of {experiment.name!r}, preset {preset!r} over a different grid "
            "(the experiment changed since); choose another output folder"
        )
    return manifest

