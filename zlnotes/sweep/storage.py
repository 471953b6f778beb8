"""Durable writes in the output folder: atomic replacement, appends, the lock, the manifest check."""

from __future__ import annotations

import json
import os
import re
import stat
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .records import RESULTS_FILE
from .spec import Experiment

MANIFEST_FILE = "sweep.json"


LOCK_FILE = ".lock"


MANIFEST_FORMAT = 2
"""Version of the layout of ``sweep.json`` and ``results.jsonl`` (2: records carry a checksum)."""


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


class FolderChangedError(RuntimeError):
    """The output folder, its lock or its results file was removed or replaced while a sweep ran.

    Raised by :meth:`_Folder.check`; :func:`zlnotes.sweep.run_sweep` turns it into a
    :class:`zlnotes.sweep.SweepError` (the executors own that class).
    """


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


def _identity(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


class _Folder:
    """The output folder of a running sweep, locked for the life of the sweep.

    Two exclusive ``flock`` locks, taken without blocking: one on the folder itself (so
    deleting ``.lock`` does not free the folder for a second sweep) and one on
    ``DIR/.lock`` (which also holds this process's PID, for the message a second sweep
    gives). Files of the folder are opened with ``O_NOFOLLOW`` and must be regular files
    with one link: a symbolic link, hard link, FIFO or folder planted under the name of
    ``.lock``, ``results.jsonl`` or ``sweep.json`` is refused before anything is
    written, and its target is not touched. :meth:`check` (called before and after every
    write) stops the sweep when the folder, ``.lock`` or ``results.jsonl`` is no longer
    the one it locked and opened.
    """

    def __init__(self, directory: Path) -> None:
        import fcntl

        self._fcntl = fcntl
        self.path = directory
        self._absolute = directory.absolute()  # the folder is found again even if the working directory changes
        self.fds: dict[str, int] = {}  # name -> open descriptor, for identity checks
        self.identity: dict[str, tuple[int, int]] = {}
        try:
            self.dir_fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        except OSError as exc:
            raise ValueError(f"out: cannot open the folder {directory}: {exc.strerror}") from None
        self.identity["."] = _identity(os.fstat(self.dir_fd))
        try:
            try:
                fcntl.flock(self.dir_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ValueError(
                    f"out {directory} is in use by another running sweep (pid {self._holder()})"
                ) from None
            except OSError:
                pass  # a file system without flock on folders: the lock file alone
            fd = self._open(LOCK_FILE, os.O_RDWR | os.O_CREAT)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ValueError(
                    f"out {directory} is in use by another running sweep (pid {self._holder()})"
                ) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except BaseException:
            self.release()
            raise

    def _holder(self) -> str:
        """The PID in ``.lock`` of the sweep holding the folder, or ``"unknown"``."""
        try:
            fd = os.open(LOCK_FILE, os.O_RDONLY | _NOFOLLOW | _NONBLOCK, dir_fd=self.dir_fd)
        except OSError:
            return "unknown"
        try:
            text = os.read(fd, 64).decode(errors="replace").strip()
        except OSError:
            text = ""
        finally:
            os.close(fd)
        return text if text.isdigit() else "unknown"

    def _open(self, name: str, flags: int) -> int:
        """Open ``DIR/name`` without following a link; ``ValueError`` unless a regular file with one link."""
        path = self.path / name
        try:
            fd = os.open(name, flags | _NOFOLLOW | _NONBLOCK, 0o644, dir_fd=self.dir_fd)
        except OSError as exc:
            if os.path.islink(path):
                raise ValueError(
                    f"out: {path} is a symbolic link; a sweep does not follow links in its folder "
                    "(remove it or choose another output folder)"
                ) from None
            raise ValueError(f"out: cannot open {path}: {exc.strerror}") from None
        st = os.fstat(fd)
        problem = (
            "is not a regular file" if not stat.S_ISREG(st.st_mode)
            else f"has {st.st_nlink} hard links (a sweep's files have one)" if st.st_nlink != 1
            else None
        )
        if problem:
            os.close(fd)
            raise ValueError(f"out: {path} {problem}; remove it or choose another output folder")
        if _NONBLOCK:
            os.set_blocking(fd, True)
        if name in self.fds:
            os.close(self.fds.pop(name))
        self.fds[name] = fd
        self.identity[name] = _identity(st)
        return fd

    def read(self, name: str) -> bytes | None:
        """The bytes of ``DIR/name``, or None if there is no such file."""
        try:
            os.stat(name, dir_fd=self.dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        fd = self._open(name, os.O_RDONLY)
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)

    def open_append(self, name: str) -> int:
        """A descriptor appending to ``DIR/name``: the file read before, if any (else ``FolderChangedError``)."""
        before = self.identity.get(name)
        try:  # a file that was not there when the folder was read must not appear since
            fd = self._open(name, os.O_RDWR | os.O_APPEND | os.O_CREAT | (os.O_EXCL if before is None else 0))
        except ValueError:
            if before is None and os.path.lexists(self.path / name):
                raise FolderChangedError(f"{self.path / name} appeared while the sweep ran") from None
            raise
        if before is not None and self.identity[name] != before:
            raise FolderChangedError(f"{self.path / name} was replaced while the sweep ran")
        return fd

    def forget(self, name: str) -> None:
        """Stop watching ``DIR/name`` (it is about to be replaced by this sweep)."""
        self.identity.pop(name, None)
        if name in self.fds and name != LOCK_FILE:
            os.close(self.fds.pop(name))

    def check(self) -> None:
        """``FolderChangedError`` if the folder, ``.lock`` or a watched file is not what this sweep opened."""
        try:
            if _identity(os.stat(self._absolute)) != self.identity["."]:
                raise FolderChangedError(f"the folder {self.path} was replaced while the sweep ran")
        except FileNotFoundError:
            raise FolderChangedError(f"the folder {self.path} was removed while the sweep ran") from None
        for name in self.fds:
            try:
                now = _identity(os.stat(name, dir_fd=self.dir_fd, follow_symlinks=False))
            except FileNotFoundError:
                raise FolderChangedError(f"{self.path / name} was removed while the sweep ran") from None
            if now != self.identity[name]:
                raise FolderChangedError(f"{self.path / name} was replaced while the sweep ran")

    def write_atomic(self, name: str, text: str) -> None:
        """Replace ``DIR/name`` atomically, after checking that the folder is still this sweep's."""
        self.check()
        _write_atomic(self._absolute / name, text)
        self.check()
        self.identity[name] = _identity(os.stat(name, dir_fd=self.dir_fd, follow_symlinks=False))

    def release(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()
        if self.dir_fd >= 0:
            os.close(self.dir_fd)  # closing the descriptors releases their locks
            self.dir_fd = -1


def _prepare_folder(out: Path, *, create: bool) -> None:
    """``ValueError`` if `out` cannot be a sweep's folder; else create it if missing and asked to.

    Its parent must exist: a missing parent is not created (a mistyped path, or a
    mount point that is not mounted). Nothing is changed when this raises, and a folder
    that is not writable is refused before a lock file is made in it.
    """
    if os.path.lexists(out):
        if not out.is_dir():
            kind = "a broken symbolic link" if not out.exists() else "a file"
            raise ValueError(f"out must be a folder; {out} is {kind}")
    else:
        parent = out.absolute().parent
        if not parent.exists():
            raise ValueError(
                f"out: the parent folder {parent} does not exist; create it first or choose another output folder"
            )
        if not parent.is_dir():
            raise ValueError(f"out: {parent} is a file, not a folder; choose another output folder")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise ValueError(f"out: cannot create the folder {out}: its parent {parent} is not writable")
        if create:
            try:
                out.mkdir()
            except OSError as exc:
                raise ValueError(f"out: cannot create the folder {out}: {exc.strerror}") from None
        return
    if not os.access(out, os.W_OK | os.X_OK):
        raise ValueError(f"out: the folder {out} is not writable")


def _append(fd: int, line: bytes) -> None:
    """Append one whole line (a single write unless the kernel writes less) and fsync it."""
    view = memoryview(line)
    while view:
        view = view[os.write(fd, view) :]
    os.fsync(fd)


def _check_manifest(
    folder: _Folder, experiment: Experiment, preset: str, grid: list[dict[str, Any]]
) -> dict | None:
    """The existing manifest if it describes this sweep; ``ValueError`` if another; None if absent."""
    manifest_path = folder.path / MANIFEST_FILE
    data = folder.read(MANIFEST_FILE)
    if data is None:
        return None
    folder.forget(MANIFEST_FILE)  # replaced atomically by this sweep, never appended to
    try:
        manifest = json.loads(data.decode("utf-8"))
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

