"""Running the points: one at a time with BLAS on one thread, in local worker processes or on Dask."""

from __future__ import annotations

import json
import math
import multiprocessing
import numbers
import os
import pickle
import signal
import socket
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .provenance import _git_commit, _process_commit, _provenance
from .records import CHECKSUM_FIELD, RESULTS_FILE, RepairWarning, _encode, _parse, _record_line, _with_checksum
from .spec import Experiment, point_key
from .storage import (
    _TEMP_NAME,
    MANIFEST_FILE,
    MANIFEST_FORMAT,
    FolderChangedError,
    _append,
    _check_manifest,
    _Folder,
    _prepare_folder,
)

_DISTRIBUTED_HINT = "pip install -e .[distributed]"


_THREADPOOL_LOCK = threading.Lock()
"""Held while a point runs under ``threadpool_limits(1)``: the one piece of module state.

``threadpool_limits`` sets the BLAS/OpenMP thread count of the whole process and restores
on exit the value it saw on entry, so two points overlapping in threads of one process
(a Dask worker started with several threads) would run at the process's default thread count
once the first one ends, and could leave the limit of 1 set for good. Serialising the
limited runs of a process keeps every point at one thread and restores the setting.
"""


class SweepError(RuntimeError):
    """A sweep could not go on: a worker process died or the Dask cluster failed.

    Every point finished before the failure is saved; rerunning the sweep resumes.
    """


def _execute(run: Callable[[dict[str, Any]], dict[str, Any]], params: dict[str, Any]) -> dict[str, Any]:
    """Run one point single-threaded (in whichever process this is) and return its outcome.

    Never raises for a failure of `run`: the exception becomes an error outcome.
    """
    from threadpoolctl import threadpool_limits

    from .. import __version__

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


def _pool_context() -> multiprocessing.context.BaseContext:
    """``spawn``: every worker is a child of the sweep's process, so it can die with it.

    (With ``forkserver`` the workers are children of the fork server, which outlives a
    killed parent; ``fork`` would copy the parent's threads and locks.)
    """
    return multiprocessing.get_context("spawn")


PARENT_POLL_S = 0.2
"""How often a local worker checks that the sweep's process is still its parent."""


def _die_with_parent(parent_pid: int) -> None:
    """Initializer of each local worker: end this process when the sweep's process ends.

    On Linux the kernel sends SIGKILL when the parent dies (``prctl(PR_SET_PDEATHSIG)``);
    everywhere a daemon thread ends the process once its parent has changed (a dead
    parent's children are adopted by another process). Without this, a ``kill -9`` of
    the sweep leaves its workers blocked on their task queue, holding its stdout, so that
    ``zlnotes sweep ... | tee log`` never returns.
    """
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # the parent died before the above took effect
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, name="zlnotes-sweep-parent-watch", daemon=True).start()


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

    executor = ProcessPoolExecutor(
        max_workers=min(workers, len(todo)), mp_context=_pool_context(),
        initializer=_die_with_parent, initargs=(os.getpid(),),
    )
    finished = False
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
        finished = True
    finally:
        if not finished:  # stopped early (an error, or the caller gave up): do not wait for points in flight
            processes: dict[int, Any] = getattr(executor, "_processes", None) or {}  # pid -> Process
            for process in list(processes.values()):
                process.kill()
        executor.shutdown(wait=False, cancel_futures=True)


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(
            f"scheduler: running on a Dask cluster needs dask.distributed, which is not installed ({exc}); "
            f"install it with: {_DISTRIBUTED_HINT}"
        ) from exc
    return distributed


SCHEDULER_TIMEOUT_S = 10.0
"""Default seconds to wait for a Dask scheduler to connect and answer."""


def _probe_scheduler(distributed: Any, scheduler: str, timeout: float) -> None:
    """Ask the server at `scheduler` who it is, within `timeout` seconds in all.

    ``distributed.Client`` waits forever for the handshake of a server that accepts a
    connection and never answers as Dask does (an HTTP server, a silent listener), and a
    ``Client`` that failed to start may wait a minute more at exit. So before a client
    is made, one connection asks the server for its identity, with a deadline on the
    whole exchange, in a thread of its own (the caller may be running an event loop).
    ``SweepError`` if it does not answer as a Dask scheduler in time.
    """
    import asyncio
    import concurrent.futures

    from distributed.comm import connect

    args = distributed.Security().get_connection_args("client")

    async def identity() -> Any:
        comm = await connect(scheduler, timeout=timeout, **args)
        try:
            await comm.write({"op": "identity", "reply": True})
            return await comm.read()
        finally:
            comm.abort()

    def ask() -> Any:
        return asyncio.run(asyncio.wait_for(identity(), timeout))

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="zlnotes-scheduler-probe")
    try:
        reply = pool.submit(ask).result(timeout=timeout + 5)
    except (TimeoutError, asyncio.TimeoutError, concurrent.futures.TimeoutError):
        raise SweepError(
            f"cannot connect to the Dask scheduler at {scheduler}: no answer from a Dask scheduler within "
            f"{timeout:g} s (is a Dask scheduler listening there?)"
        ) from None
    except (ValueError, TypeError) as exc:
        raise ValueError(f"scheduler: {scheduler}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - refused, reset, closed, TLS failure: all "cannot connect"
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SweepError(f"cannot connect to the Dask scheduler at {scheduler}: {message}") from None
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    if not isinstance(reply, Mapping) or reply.get("type") != "Scheduler":
        raise SweepError(
            f"cannot connect to the Dask scheduler at {scheduler}: the server there is not a Dask scheduler"
        )


def _connect(scheduler: str, timeout: float = SCHEDULER_TIMEOUT_S) -> Any:
    """A ``distributed.Client`` connected to `scheduler`, within `timeout` seconds.

    ``ValueError`` naming the argument for an address Dask cannot parse, or a ``tls://``
    address without TLS certificates in Dask's configuration; ``SweepError`` (one line,
    naming the address) for one it cannot reach, or where no Dask scheduler answers.
    """
    distributed = _import_distributed()
    try:  # parse first: a Client that fails to parse its address hangs 60 s in __del__ at exit
        distributed.comm.get_address_host_port(scheduler)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"scheduler: {exc}; expected an address such as 'tcp://host:8786'") from None
    scheme = distributed.comm.parse_address(scheduler)[0]
    security = distributed.Security()
    if scheme == "tls" and security.get_connection_args("client").get("ssl_context") is None:
        raise ValueError(
            f"scheduler: {scheduler} is a TLS address, but Dask's configuration has no TLS certificates "
            "(distributed.comm.tls); configure them or use a tcp:// address"
        )
    _probe_scheduler(distributed, scheduler, timeout)
    try:
        return distributed.Client(scheduler, set_as_default=False, timeout=timeout, security=security)
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
    experiment: Experiment,
    preset: str,
    out: str | os.PathLike[str],
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool = False,
    retry_errors: bool = False,
    scheduler_timeout: float = SCHEDULER_TIMEOUT_S,
) -> SweepSummary:
    """Run the points of a preset that are not yet in ``out/results.jsonl``.

    Parameters
    ----------
    experiment : Experiment
        The experiment (the book's are registered in ``zlnotes.book.experiments``).
    preset : str
        Which grid of the experiment to run.
    out : path
        Output folder (created if missing; its parent must exist). Rerunning with the
        same folder resumes.
    workers : int, optional
        Local worker processes (default ``os.cpu_count()``). ``1`` runs the points in
        this process.
    scheduler : str, optional
        Address of a Dask scheduler (``tcp://host:8786``) to run the points on instead;
        needs the ``distributed`` extra. Exclusive with `workers`. Start its workers
        with one thread each: a worker runs its points one at a time (see Determinism
        in the module docstring).
    progress : bool
        Show a tqdm progress bar on stderr (default ``False``: the library prints
        nothing unless asked).
    retry_errors : bool
        Rerun points recorded as errors by an earlier run (their records are replaced).
    scheduler_timeout : float
        Seconds to wait for the Dask scheduler at `scheduler` to connect and answer
        (default 10); a server that does not answer as a Dask scheduler in time is a
        ``SweepError``.

    Returns
    -------
    SweepSummary

    Raises
    ------
    ValueError
        On bad arguments (unknown preset, ``workers < 1``, `out` not a folder path or
        its parent missing, `out` not writable, `out` in use by another sweep or holding
        a sweep of another experiment, preset or grid, a symbolic link, hard link or
        non-regular file planted in `out` under a name the sweep uses, a corrupt
        ``results.jsonl``, `scheduler` not an address Dask can parse or a ``tls://``
        address without certificates, `scheduler_timeout` not positive). `out` is then
        left as it was (a ``.lock`` file aside, if the folder existed).
    SweepError
        If a worker process died or the Dask cluster failed; finished points are saved.
        If the folder, its ``.lock`` or ``results.jsonl`` was removed or replaced while
        the sweep ran (it stops at its next write). Also if no Dask scheduler answers at
        `scheduler` within `scheduler_timeout`, before `out` is touched.
    ImportError
        If `scheduler` is given and dask.distributed is not installed.
    """
    if not isinstance(experiment, Experiment):
        raise TypeError(f"experiment must be a zlnotes.sweep.Experiment; got {type(experiment).__name__}")
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
    _prepare_folder(out, create=False)
    if scheduler is None and workers > 1:
        try:
            pickle.dumps(experiment.run)
        except Exception as exc:  # noqa: BLE001
            raise ValueError(
                f"the run function of experiment {experiment.name!r} cannot be sent to worker processes "
                f"(define it at module level): {exc}"
            ) from None
    if (
        isinstance(scheduler_timeout, bool) or not isinstance(scheduler_timeout, numbers.Real)
        or not math.isfinite(scheduler_timeout) or scheduler_timeout <= 0
    ):
        raise ValueError(f"scheduler_timeout must be a finite number of seconds > 0; got {scheduler_timeout!r}")
    # fails before `out` is touched
    client = _connect(scheduler, float(scheduler_timeout)) if scheduler is not None else None
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

    _prepare_folder(out, create=True)
    folder = _Folder(out)
    try:
        manifest_path, results_path = out / MANIFEST_FILE, out / RESULTS_FILE
        manifest = _check_manifest(folder, experiment, preset, grid)
        keys = {point_key(p): p for p in grid}

        data = folder.read(RESULTS_FILE) or b""
        records, good = _parse(data, results_path)
        strangers = [r["key"] for r in records if r["key"] not in keys]
        if strangers:
            raise ValueError(
                f"out: {results_path} holds {len(strangers)} point(s) not in the grid of {experiment.name!r}, "
                f"preset {preset!r} (e.g. {strangers[0]!r}); choose another output folder"
            )
        if manifest is not None and not isinstance(manifest.setdefault("runs", []), list):
            raise ValueError(f"out: 'runs' in {manifest_path} is not a list; remove the folder or choose another")

        # The folder holds this sweep: only now change anything in it.
        for stale in out.iterdir():  # left by a crash inside _write_atomic
            if _TEMP_NAME.fullmatch(stale.name) and stale.is_file() and not stale.is_symlink():
                stale.unlink()
        repaired = good < len(data)
        if repaired:
            warnings.warn(
                f"{results_path} ended with an incomplete line ({len(data) - good} bytes, "
                "a write cut short by a crash); truncated it, its point will be rerun",
                RepairWarning,
                stacklevel=3,
            )
            fd = folder.open_append(RESULTS_FILE)  # the file just read (checked), writable
            folder.check()
            os.ftruncate(fd, good)
            os.fsync(fd)
        if retry_errors and any(r["status"] == "error" for r in records):
            records = [r for r in records if r["status"] == "ok"]
            kept = [line for line in data[:good].splitlines(keepends=True) if line.strip()]
            kept = [line for line in kept if json.loads(line)["status"] == "ok"]
            folder.forget(RESULTS_FILE)
            folder.write_atomic(RESULTS_FILE, b"".join(kept).decode("ascii"))

        done = {r["key"] for r in records}
        todo = [p for k, p in keys.items() if k not in done]
        if todo and records and CHECKSUM_FIELD not in records[0]:
            # written before records carried a checksum: add them (no value changes) before appending
            folder.forget(RESULTS_FILE)
            folder.write_atomic(RESULTS_FILE, b"".join(_with_checksum(r) for r in records).decode("ascii"))
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
            manifest["format"] = MANIFEST_FORMAT
            manifest["runs"].append(run_info)
            folder.write_atomic(MANIFEST_FILE, json.dumps(manifest, indent=1, allow_nan=False) + "\n")
        errors_before = sum(r["status"] == "error" for r in records)
        failed = saved = 0
        if todo:
            fd = folder.open_append(RESULTS_FILE)
            points = _run_dask(experiment.run, todo, client) if client else _run_local(experiment.run, todo, workers)
            bar = tqdm(
                total=len(grid), initial=len(done), desc=f"{experiment.name}/{preset}", unit="pt",
                file=sys.stderr, disable=not progress, dynamic_ncols=True,
            )
            try:
                for params, outcome in points:
                    line = _record_line(point_key(params), params, outcome)
                    try:
                        folder.check()
                        _append(fd, line)
                        folder.check()
                    except FolderChangedError as exc:
                        raise SweepError(
                            f"{exc}; stopped: this run's points from now on (and perhaps the last one) are not "
                            f"saved in {out} (rerun to resume)"
                        ) from None
                    except OSError as exc:
                        raise SweepError(
                            f"cannot write {results_path}: {exc.strerror or exc}; stopped after saving "
                            f"{saved} point(s) of this run (rerun to resume)"
                        ) from None
                    saved += 1
                    failed += outcome["status"] == "error"
                    bar.update()
            finally:
                bar.close()
                if hasattr(points, "close"):
                    points.close()
        return SweepSummary(
            total=len(grid), already_done=len(done), run_now=len(todo), failed=failed,
            errors=errors_before + failed, repaired=repaired, results=results_path,
        )
    except FolderChangedError as exc:
        raise SweepError(f"{exc}; stopped before running points (rerun to resume)") from None
    finally:
        folder.release()

