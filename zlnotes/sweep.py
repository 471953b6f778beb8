"""Sweeps: run one experiment over a grid of parameters, resumably, locally or on Dask.

An :class:`Experiment` is a module-level function of a parameters dict (seed included) and
named presets, each a list of parameter dicts (the grid). :func:`run_sweep` runs the points
of a preset that are not yet in ``OUT/results.jsonl`` and appends one JSON line per
finished point; ``zlnotes sweep`` is its command-line front end.

Files in the output folder
--------------------------
``results.jsonl``
    One JSON object per finished point, in completion order::

        {"key": "depth=2,seed=0,width=8", "params": {...}, "status": "ok",
         "result": {...}, "error": null, "traceback": null,
         "zlnotes_version": "0.1.0", "commit": "<sha>[+dirty]" | null,
         "host": "...", "finished_at": "<UTC ISO 8601>", "elapsed_s": 0.123}

    ``zlnotes_version``, ``commit`` and ``host`` are those of the process that ran
    the point (on Dask, the worker's checkout, which may differ from the parent's;
    the commit is read once per process). Records written before this was so carry
    the parent's commit; the field is the same.

    Only the parent process writes it, one whole line per ``os.write`` on an
    ``O_APPEND`` descriptor followed by ``os.fsync``. A crash or ``kill -9`` therefore
    loses at most the points in flight; the worst it leaves is a torn last line (no
    final newline), which :func:`run_sweep` truncates on resume (with a warning on
    stderr) and :func:`load_results` ignores (with a :class:`TornLineWarning`).
    A key is never written twice.
``sweep.json``
    The manifest: experiment, preset, the full grid, and the provenance of the run
    that created it (zlnotes version, git commit of the parent process, UTC date,
    Python/numpy/scipy versions, platform); ``runs`` lists every invocation. Written atomically
    (temporary file + ``os.replace``). A sweep refuses to resume into a folder whose
    manifest names another experiment, preset or grid.
``.lock``
    Held with ``fcntl.flock`` while a sweep runs, so two sweeps never write the same
    folder (POSIX only).

Non-finite floats
-----------------
JSON has no NaN or infinity. A result float that is NaN, ``inf`` or ``-inf`` is stored
as the string ``"nan"``, ``"inf"`` or ``"-inf"``, and :func:`load_results` turns those
strings back into floats. A result may therefore not contain these three strings
itself (the point is recorded as an error). Finite floats round-trip exactly
(``repr``). Results may also hold numpy scalars, numpy arrays and tuples; they are
stored as Python numbers and lists.

Failed points
-------------
A point whose function raises is recorded with ``"status": "error"``, ``"result":
null`` and ``"error": "<ExceptionType>: <message>"`` (plus its traceback), so the rest
of the sweep finishes; :class:`SweepSummary` counts them. A resumed sweep does not
rerun them unless ``retry_errors=True``, which first removes their lines (the file is
rewritten atomically) so that no key appears twice.

Determinism
-----------
Every point runs with BLAS and OpenMP limited to one thread (``threadpoolctl``), so a
point gives bit-identical results in the parent process (``workers=1``), in a local
worker process (started with ``forkserver``, or ``spawn`` where that is unavailable;
never ``fork``) and on a Dask worker, provided the machines run the same libraries on
the same kind of CPU.

The limit is process-wide (it is set in the BLAS library, not per thread), so points
in one process must not overlap: a process-wide lock lets one point at a time run under
it. Start Dask workers with one thread each (``dask worker --nthreads 1 ADDR``, as many
workers as cores) for parallelism; a worker with several threads runs its points one
at a time, correctly but no faster.
"""

from __future__ import annotations

import functools
import importlib
import json
import re
import math
import multiprocessing
import numbers
import os
import pickle
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "Experiment",
    "SweepError",
    "SweepSummary",
    "TornLineWarning",
    "get_experiment",
    "load_results",
    "point_key",
    "run_sweep",
]

RESULTS_FILE = "results.jsonl"
MANIFEST_FILE = "sweep.json"
LOCK_FILE = ".lock"
MANIFEST_FORMAT = 1
"""Version of the layout of ``sweep.json`` and ``results.jsonl``."""

NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
"""How non-finite result floats are spelled in ``results.jsonl``."""

_FORBIDDEN_IN_KEYS = frozenset(",=\n\r")
_DISTRIBUTED_HINT = "pip install -e .[distributed]"

_THREADPOOL_LOCK = threading.Lock()
"""Held while a point runs under ``threadpool_limits(1)``: the one piece of module state.

``threadpool_limits`` sets the BLAS/OpenMP thread count of the whole process and restores
on exit the value it saw on entry, so two points overlapping in threads of one process
(a Dask worker with ``--nthreads`` > 1) would run at the process's default thread count
once the first one ends, and could leave the limit of 1 set for good. Serialising the
limited runs of a process keeps every point at one thread and restores the setting.
"""


class SweepError(RuntimeError):
    """A sweep could not go on: a worker process died or the Dask cluster failed.

    Every point finished before the failure is saved; rerunning the sweep resumes.
    """


class TornLineWarning(UserWarning):
    """``results.jsonl`` ends with an incomplete line (a write cut short); it was ignored."""


# -- experiments and their points -------------------------------------------------------


def _scalar(name: str, value: object) -> bool | int | float | str:
    """Return a parameter value as a plain Python scalar, or raise ``ValueError``."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        x = float(value)
        if not math.isfinite(x):
            raise ValueError(f"parameter {name!r} must be finite; got {value!r}")
        return x
    if isinstance(value, str):
        if _FORBIDDEN_IN_KEYS & set(value):
            raise ValueError(f"parameter {name!r}: a string value may not contain ',', '=' or a newline; got {value!r}")
        return value
    raise ValueError(f"parameter {name!r} must be an int, float, str or bool; got {type(value).__name__} {value!r}")


def _normalise_params(params: Mapping[str, Any]) -> dict[str, bool | int | float | str]:
    """Check a point's parameters and return them as a new dict sorted by name."""
    if not isinstance(params, Mapping):
        raise ValueError(f"params must be a mapping of names to scalars; got {type(params).__name__}")
    out = {}
    for name in sorted(params, key=str):
        if not isinstance(name, str) or not name or _FORBIDDEN_IN_KEYS & set(name) or name != name.strip():
            raise ValueError(f"parameter names must be non-empty strings without ',', '=' or spaces around; got {name!r}")
        out[name] = _scalar(name, params[name])
    return out


def point_key(params: Mapping[str, Any]) -> str:
    """The canonical, readable key of one point: ``"name=value,..."`` sorted by name.

    Parameters
    ----------
    params : mapping of str to int, float, str or bool
        The point's parameters.

    Returns
    -------
    str
        For example ``"data=generic,depth=2,lr=0.01,seed=0"``: names sorted, integers
        and booleans as Python prints them, floats by ``repr`` (so ``1`` and ``1.0``
        differ and every float is exact), strings as they are.

    Raises
    ------
    ValueError
        If a value is not a finite scalar, or a name or string value contains ``,``,
        ``=`` or a newline.
    """
    return ",".join(f"{name}={_format_value(value)}" for name, value in _normalise_params(params).items())


def _format_value(value: bool | int | float | str) -> str:
    return repr(value) if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Experiment:
    """A named function of a parameters dict, with named grids of parameters.

    Parameters
    ----------
    name : str
        The name ``zlnotes sweep NAME`` knows it by.
    description : str
        One or two sentences: what a point computes and what the sweep shows.
    run : callable
        ``run(params) -> dict``. A module-level function (worker processes import it by
        name), pure in ``params`` (all randomness seeded from them), returning a
        JSON-serialisable dict: floats, ints, str, bool, None, lists and dicts of these
        (numpy scalars and arrays are accepted and stored as numbers and lists).
    presets : mapping of str to sequence of mappings
        Preset name (``"tiny"``, ``"book"``, ``"full"``) to its grid: a list of parameter
        dicts whose values are int, float, str or bool.
    """

    name: str
    description: str
    run: Callable[[dict[str, Any]], dict[str, Any]]
    presets: Mapping[str, Sequence[Mapping[str, Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"name must be a non-empty string; got {self.name!r}")
        if not callable(self.run):
            raise ValueError(f"run must be callable; got {self.run!r}")
        if not isinstance(self.presets, Mapping) or not self.presets:
            raise ValueError(f"presets of experiment {self.name!r} must be a non-empty mapping of names to grids")
        for preset, grid in self.presets.items():
            self._check_grid(preset, grid)

    def _check_grid(self, preset: object, grid: object) -> None:
        """``ValueError`` unless `preset` is a string and `grid` a sequence of mappings."""
        if not isinstance(preset, str) or not preset:
            raise ValueError(f"experiment {self.name!r}: preset names must be non-empty strings; got {preset!r}")
        if not isinstance(grid, Sequence) or isinstance(grid, (str, bytes)):
            raise ValueError(
                f"experiment {self.name!r}, preset {preset!r}: a grid must be a list of parameter dicts; "
                f"got {type(grid).__name__} {grid!r:.80}"
            )
        for i, params in enumerate(grid):
            if not isinstance(params, Mapping):
                raise ValueError(
                    f"experiment {self.name!r}, preset {preset!r}, point {i}: a point must be a mapping of "
                    f"parameter names to values; got {type(params).__name__} {params!r:.80}"
                )

    def points(self, preset: str) -> list[dict[str, Any]]:
        """The grid of one preset: checked, normalised parameter dicts in preset order.

        Raises
        ------
        ValueError
            If `preset` is unknown (the message lists the valid ones), or a point's
            parameters are not scalars, or two points have the same key.
        """
        if not isinstance(preset, str):
            raise ValueError(f"preset must be a string naming a grid of experiment {self.name!r}; got {preset!r}")
        if preset not in self.presets:
            raise ValueError(
                f"preset {preset!r} is not defined for experiment {self.name!r}; valid presets: {', '.join(self.presets)}"
            )
        self._check_grid(preset, self.presets[preset])  # the mapping may have changed since
        points, seen = [], {}
        for i, params in enumerate(self.presets[preset]):
            try:
                point = _normalise_params(params)
            except ValueError as exc:
                raise ValueError(f"experiment {self.name!r}, preset {preset!r}, point {i}: {exc}") from None
            key = point_key(point)
            if key in seen:
                raise ValueError(
                    f"experiment {self.name!r}, preset {preset!r}: points {seen[key]} and {i} have the same key {key!r}"
                )
            seen[key] = i
            points.append(point)
        return points


def get_experiment(name: str) -> Experiment:
    """Look up an experiment by name.

    Parameters
    ----------
    name : str
        A key of ``zlnotes.experiments.EXPERIMENTS``, or ``"package.module:attribute"``
        naming an :class:`Experiment` anywhere importable.

    Raises
    ------
    ValueError
        If the name is unknown (the message lists the known ones), malformed, the
        module cannot be imported, or the attribute is not an :class:`Experiment`.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"experiment name must be a non-empty string; got {name!r}")
    if ":" in name:
        module_name, _, attribute = name.partition(":")
        if not module_name or module_name.startswith(".") or not attribute:
            raise ValueError(f"experiment name {name!r} is malformed: expected 'package.module:attribute'")
        try:
            obj: object = importlib.import_module(module_name)
        except ImportError as exc:
            raise ValueError(f"experiment {name!r}: cannot import module {module_name!r}: {exc}") from None
        for part in attribute.split("."):
            if not hasattr(obj, part):
                raise ValueError(f"experiment {name!r}: module {module_name!r} has no attribute {attribute!r}")
            obj = getattr(obj, part)
        if not isinstance(obj, Experiment):
            raise ValueError(f"experiment {name!r} is a {type(obj).__name__}, not a zlnotes.sweep.Experiment")
        return obj
    try:
        registry = importlib.import_module("zlnotes.experiments").EXPERIMENTS
    except ModuleNotFoundError as exc:
        if exc.name != "zlnotes.experiments":
            raise
        raise ValueError(
            f"unknown experiment {name!r}: no experiments are registered (zlnotes.experiments is missing); "
            "name one as 'package.module:attribute'"
        ) from None
    if name not in registry:
        raise ValueError(f"unknown experiment {name!r}; known experiments: {', '.join(sorted(registry)) or '(none)'}")
    return registry[name]


# -- encoding records -------------------------------------------------------------------


def _encode(value: Any, where: str) -> Any:
    """A JSON-ready copy of a result: non-finite floats spelled as strings, numpy unwrapped."""
    if value is None or isinstance(value, (bool, str)):
        if isinstance(value, str) and value in NONFINITE:
            raise ValueError(f"{where} is the string {value!r}, which results.jsonl reserves for a non-finite float")
        return value
    if isinstance(value, np.ndarray):
        return _encode(value.tolist(), where)
    if isinstance(value, np.generic):
        return _encode(value.item(), where)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        x = float(value)
        return x if math.isfinite(x) else ("nan" if math.isnan(x) else ("inf" if x > 0 else "-inf"))
    if isinstance(value, (list, tuple)):
        return [_encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"{where} has a non-string key {k!r}")
            out[k] = _encode(v, f"{where}[{k!r}]")
        return out
    raise ValueError(f"{where} is a {type(value).__name__}, which JSON cannot store: {value!r}")


def _decode(value: Any) -> Any:
    """Inverse of :func:`_encode` on the parsed JSON: the strings of NONFINITE become floats."""
    if isinstance(value, str):
        return NONFINITE.get(value, value)
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, dict):
        return {k: _decode(v) for k, v in value.items()}
    return value


def _execute(run: Callable[[dict[str, Any]], dict[str, Any]], params: dict[str, Any]) -> dict[str, Any]:
    """Run one point single-threaded (in whichever process this is) and return its outcome.

    Never raises for a failure of `run`: the exception becomes an error outcome.
    """
    from threadpoolctl import threadpool_limits

    from . import __version__

    start = time.perf_counter()
    try:
        with _THREADPOOL_LOCK, threadpool_limits(limits=1):
            result = run(dict(params))
        if not isinstance(result, Mapping):
            raise TypeError(f"an experiment's run must return a dict; got {type(result).__name__}")
        outcome = {"status": "ok", "result": _encode(result, "result"), "error": None, "traceback": None}
    except Exception as exc:  # noqa: BLE001 - any failure of the point is recorded, not raised
        outcome = {
            "status": "error",
            "result": None,
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": "".join(traceback.format_exception(exc)),
        }
    elapsed = round(time.perf_counter() - start, 6)
    outcome.update(zlnotes_version=__version__, commit=_process_commit(), host=socket.gethostname(), elapsed_s=elapsed)
    return outcome


def _record_line(key: str, params: dict[str, Any], outcome: dict[str, Any]) -> bytes:
    record = {
        "key": key,
        "params": params,
        "status": outcome["status"],
        "result": outcome["result"],
        "error": outcome["error"],
        "traceback": outcome["traceback"],
        "zlnotes_version": outcome["zlnotes_version"],
        "commit": outcome["commit"],
        "host": outcome["host"],
        "finished_at": _utc_now(),
        "elapsed_s": outcome["elapsed_s"],
    }
    return (json.dumps(record, allow_nan=False) + "\n").encode("ascii")


# -- reading results --------------------------------------------------------------------


def _results_path(path_or_dir: str | os.PathLike[str]) -> Path:
    path = Path(path_or_dir)
    return path / RESULTS_FILE if path.is_dir() else path


def _parse(data: bytes, path: Path) -> tuple[list[dict[str, Any]], int]:
    """Records of the complete lines of `data`, and the length of those lines in bytes.

    A final segment without a newline is a torn write and is not parsed. A complete line
    that is not a record, or a key seen twice, means the file was not written by a sweep
    alone: ``ValueError``.
    """
    good = data.rfind(b"\n") + 1
    records, seen = [], {}
    for number, line in enumerate(data[:good].splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"{path}, line {number} is not valid JSON ({exc}); the file is corrupt") from None
        if not isinstance(record, dict) or not isinstance(record.get("key"), str) or record.get("status") not in ("ok", "error"):
            raise ValueError(f"{path}, line {number} is not a sweep record (needs 'key' and 'status')")
        if record["key"] in seen:
            raise ValueError(f"{path}: key {record['key']!r} appears twice (lines {seen[record['key']]} and {number})")
        seen[record["key"]] = number
        records.append(record)
    return records, good


def load_results(path_or_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read the records of a sweep, in the order they finished.

    Parameters
    ----------
    path_or_dir : path
        A sweep's output folder, or its ``results.jsonl``.

    Returns
    -------
    list of dict
        One record per finished point (see the module docstring for its fields), with
        ``"nan"``, ``"inf"`` and ``"-inf"`` in results turned back into floats. Error
        records (``record["status"] == "error"``) are included.

    Warns
    -----
    TornLineWarning
        If the file ends with an incomplete line (a write cut short by a crash); that
        line is ignored, and the next run of the sweep recomputes its point.

    Raises
    ------
    ValueError
        If a complete line is not a record or a key appears twice.
    FileNotFoundError
        If there is no such file.
    """
    path = _results_path(path_or_dir)
    data = path.read_bytes()
    records, good = _parse(data, path)
    if good < len(data):
        warnings.warn(
            f"{path} ends with an incomplete line ({len(data) - good} bytes, a write cut short); ignored it",
            TornLineWarning,
            stacklevel=2,
        )
    for record in records:
        record["result"] = _decode(record.get("result"))
    return records


# -- provenance -------------------------------------------------------------------------


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


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

    from . import __version__

    return {
        "zlnotes_version": __version__,
        "commit": commit,
        "date": _utc_now(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "platform": platform.platform(),
    }


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


# -- running ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepSummary:
    """What one call of :func:`run_sweep` did.

    Attributes
    ----------
    total : int
        Points in the grid.
    already_done : int
        Points found in ``results.jsonl`` and skipped (error records included, unless
        retried).
    run_now : int
        Points run by this call.
    failed : int
        Of those, points whose function raised (recorded with ``"status": "error"``).
    errors : int
        Error records in ``results.jsonl`` after this call (old ones not retried included).
    repaired : bool
        Whether a torn last line was truncated before resuming.
    results : pathlib.Path
        The ``results.jsonl`` written.
    """

    total: int
    already_done: int
    run_now: int
    failed: int
    errors: int
    repaired: bool
    results: Path


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


def _check_manifest(manifest_path: Path, experiment: Experiment, preset: str, grid: list[dict[str, Any]]) -> dict | None:
    """The existing manifest if it describes this sweep; ``ValueError`` if another; None if absent."""
    if not manifest_path.exists():
        return None
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ValueError(f"out: {manifest_path} is not valid JSON ({exc}); remove the folder or choose another") from None
    if not isinstance(manifest, dict):
        raise ValueError(f"out: {manifest_path} is not a sweep manifest; remove the folder or choose another")
    theirs = (manifest.get("experiment"), manifest.get("preset"))
    if theirs != (experiment.name, preset):
        raise ValueError(
            f"out {manifest_path.parent} holds a sweep of experiment {theirs[0]!r}, preset {theirs[1]!r}, "
            f"not {experiment.name!r}, preset {preset!r}; choose another --out"
        )

    def canon(points: Sequence[Mapping[str, Any]]) -> set[str]:
        return {json.dumps(p, sort_keys=True) for p in points}

    if canon(manifest.get("grid", [])) != canon(grid):
        raise ValueError(
            f"out {manifest_path.parent} holds a sweep of {experiment.name!r}, preset {preset!r} over a different grid "
            "(the experiment changed since); choose another --out"
        )
    return manifest


def _pool_context() -> multiprocessing.context.BaseContext:
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    return multiprocessing.get_context(method)


def _run_local(
    run: Callable[..., dict[str, Any]], todo: list[dict[str, Any]], workers: int
) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """Yield ``(params, outcome)`` as points finish: in this process or a process pool."""
    if workers == 1:
        for params in todo:
            yield params, _execute(run, params)
        return
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    executor = ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=_pool_context())
    try:
        futures = {executor.submit(_execute, run, params): params for params in todo}
        pending = set(futures)
        for future in as_completed(futures):
            try:
                outcome = future.result()
            except BrokenProcessPool as exc:
                # Points that finished but were not yielded yet are saved before stopping.
                for other in [f for f in futures if f in pending and f.done() and not f.cancelled()]:
                    if other.exception() is None:
                        pending.discard(other)
                        yield futures[other], other.result()
                raise SweepError(f"a worker process died ({exc}); finished points are saved, rerun to resume") from exc
            except Exception as exc:  # noqa: BLE001 - _execute records the point's own errors; this is the pool's
                raise SweepError(
                    f"a worker process could not run a point ({type(exc).__name__}: {exc}); "
                    "finished points are saved, rerun to resume"
                ) from exc
            pending.discard(future)
            yield futures[future], outcome
    finally:
        executor.shutdown(wait=False, cancel_futures=True)


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(
            f"--scheduler needs dask.distributed, which is not installed ({exc}); install it with: {_DISTRIBUTED_HINT}"
        ) from exc
    return distributed


def _connect(scheduler: str) -> Any:
    """A ``distributed.Client`` connected to `scheduler`.

    ``ValueError`` naming the argument for an address Dask cannot parse, ``SweepError``
    for one it cannot reach (within ``distributed.comm.timeouts.connect``).
    """
    distributed = _import_distributed()
    try:  # parse first: a Client that fails to parse its address hangs 60 s in __del__ at exit
        distributed.comm.get_address_host_port(scheduler)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"scheduler: {exc}; expected an address such as 'tcp://host:8786'") from None
    try:
        return distributed.Client(scheduler, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise SweepError(f"cannot connect to the Dask scheduler at {scheduler}: {exc}") from exc
    except (ValueError, TypeError) as exc:
        raise ValueError(f"scheduler: {exc}; expected an address such as 'tcp://host:8786'") from None


def _run_dask(
    run: Callable[..., dict[str, Any]], todo: list[dict[str, Any]], client: Any
) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """Yield ``(params, outcome)`` as points finish on the Dask cluster of `client`."""
    distributed = _import_distributed()
    futures = client.map(_execute, [run] * len(todo), todo, pure=False)
    params_of = {future.key: params for future, params in zip(futures, todo)}
    for future in distributed.as_completed(futures, loop=client.loop):
        try:
            outcome = future.result()
        except Exception as exc:  # noqa: BLE001 - a worker or the cluster failed, not the point
            raise SweepError(
                f"the Dask cluster failed to run a point ({type(exc).__name__}: {exc}); "
                "finished points are saved, rerun to resume"
            ) from exc
        yield params_of[future.key], outcome


def run_sweep(
    experiment: Experiment | str,
    preset: str,
    out: str | os.PathLike[str],
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool = True,
    retry_errors: bool = False,
) -> SweepSummary:
    """Run the points of a preset that are not yet in ``out/results.jsonl``.

    Parameters
    ----------
    experiment : Experiment or str
        The experiment, or a name for :func:`get_experiment`.
    preset : str
        Which grid of the experiment to run.
    out : path
        Output folder (created if needed). Rerunning with the same folder resumes.
    workers : int, optional
        Local worker processes (default ``os.cpu_count()``). ``1`` runs the points in
        this process.
    scheduler : str, optional
        Address of a Dask scheduler (``tcp://host:8786``) to run the points on instead;
        needs the ``distributed`` extra. Exclusive with `workers`. Start its workers
        with ``--nthreads 1``: a worker runs its points one at a time (see Determinism
        in the module docstring).
    progress : bool
        Show a tqdm progress bar on stderr.
    retry_errors : bool
        Rerun points recorded as errors by an earlier run (their records are replaced).

    Returns
    -------
    SweepSummary

    Raises
    ------
    ValueError
        On bad arguments (unknown preset, ``workers < 1``, `out` not a folder path,
        `out` in use by another sweep or holding a sweep of another experiment, preset
        or grid, `scheduler` not an address Dask can parse). `out` is then left as it
        was (a ``.lock`` file aside, if the folder existed).
    SweepError
        If a worker process died or the Dask cluster failed; finished points are saved.
        Also if the scheduler cannot be reached, before `out` is touched.
    ImportError
        If `scheduler` is given and dask.distributed is not installed.
    """
    if isinstance(experiment, str):
        experiment = get_experiment(experiment)
    if not isinstance(experiment, Experiment):
        raise ValueError(f"experiment must be an Experiment or its name; got {type(experiment).__name__}")
    grid = experiment.points(preset)
    if workers is not None and scheduler is not None:
        raise ValueError("workers and scheduler are exclusive: the Dask cluster decides how many points run at once")
    if scheduler is not None and (not isinstance(scheduler, str) or not scheduler):
        raise ValueError(f"scheduler must be an address such as 'tcp://host:8786'; got {scheduler!r}")
    if workers is None:
        workers = os.cpu_count() or 1
    elif isinstance(workers, bool) or not isinstance(workers, numbers.Integral) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1; got {workers!r}")
    if out is None or not isinstance(out, (str, os.PathLike)) or not os.fspath(out):
        raise ValueError(f"out must be the path of a folder; got {out!r}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out must be a folder; {out} is a file")
    if scheduler is None and workers > 1:
        try:
            pickle.dumps(experiment.run)
        except Exception as exc:  # noqa: BLE001
            raise ValueError(
                f"the run function of experiment {experiment.name!r} cannot be sent to worker processes "
                f"(define it at module level): {exc}"
            ) from None
    client = _connect(scheduler) if scheduler is not None else None  # fails before `out` is touched
    try:
        return _sweep_into(experiment, preset, grid, out, workers, scheduler, client, progress, retry_errors)
    finally:
        if client is not None:
            client.close()


def _sweep_into(
    experiment: Experiment, preset: str, grid: list[dict[str, Any]], out: Path, workers: int,
    scheduler: str | None, client: Any, progress: bool, retry_errors: bool,
) -> SweepSummary:
    """:func:`run_sweep` once its arguments are checked (and the Dask client connected)."""
    from tqdm import tqdm

    out.mkdir(parents=True, exist_ok=True)
    lock = _Lock(out)
    try:
        manifest_path, results_path = out / MANIFEST_FILE, out / RESULTS_FILE
        manifest = _check_manifest(manifest_path, experiment, preset, grid)
        keys = {point_key(p): p for p in grid}

        data = results_path.read_bytes() if results_path.exists() else b""
        records, good = _parse(data, results_path)
        strangers = [r["key"] for r in records if r["key"] not in keys]
        if strangers:
            raise ValueError(
                f"out: {results_path} holds {len(strangers)} point(s) not in the grid of {experiment.name!r}, "
                f"preset {preset!r} (e.g. {strangers[0]!r}); choose another --out"
            )
        if manifest is not None and not isinstance(manifest.setdefault("runs", []), list):
            raise ValueError(f"out: 'runs' in {manifest_path} is not a list; remove the folder or choose another")

        # The folder holds this sweep: only now change anything in it.
        for stale in out.iterdir():  # left by a crash inside _write_atomic
            if _TEMP_NAME.fullmatch(stale.name) and stale.is_file():
                stale.unlink()
        repaired = good < len(data)
        if repaired:
            print(
                f"warning: {results_path} ended with an incomplete line ({len(data) - good} bytes, "
                "a write cut short by a crash); truncated it, its point will be rerun",
                file=sys.stderr,
                flush=True,
            )
            with open(results_path, "r+b") as f:
                f.truncate(good)
                os.fsync(f.fileno())
        if retry_errors and any(r["status"] == "error" for r in records):
            kept = [line for line in data[:good].splitlines(keepends=True) if line.strip() and json.loads(line)["status"] == "ok"]
            _write_atomic(results_path, b"".join(kept).decode("ascii"))
            records = [r for r in records if r["status"] == "ok"]

        done = {r["key"] for r in records}
        todo = [p for k, p in keys.items() if k not in done]
        if manifest is None or todo:  # a finished sweep's manifest stays as it is
            run_info = _provenance(_git_commit()) | {"workers": None if scheduler else workers, "scheduler": scheduler}
            if manifest is None:
                manifest = {
                    "format": MANIFEST_FORMAT,
                    "experiment": experiment.name,
                    "description": experiment.description,
                    "preset": preset,
                    "grid": grid,
                    **{k: v for k, v in run_info.items() if k not in ("workers", "scheduler")},
                    "runs": [],
                }
            manifest["runs"].append(run_info)
            _write_atomic(manifest_path, json.dumps(manifest, indent=1, allow_nan=False) + "\n")
        errors_before = sum(r["status"] == "error" for r in records)
        failed = 0
        if todo:
            points = _run_dask(experiment.run, todo, client) if client else _run_local(experiment.run, todo, workers)
            fd = os.open(results_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            bar = tqdm(
                total=len(grid), initial=len(done), desc=f"{experiment.name}/{preset}", unit="pt",
                file=sys.stderr, disable=not progress, dynamic_ncols=True,
            )
            try:
                for params, outcome in points:
                    _append(fd, _record_line(point_key(params), params, outcome))
                    failed += outcome["status"] == "error"
                    bar.update()
            finally:
                bar.close()
                os.close(fd)
                if hasattr(points, "close"):
                    points.close()
        return SweepSummary(
            total=len(grid), already_done=len(done), run_now=len(todo), failed=failed,
            errors=errors_before + failed, repaired=repaired, results=results_path,
        )
    finally:
        lock.release()
