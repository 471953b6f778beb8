"""Sweeps: run one experiment over a grid of parameters, resumably, locally or on Dask.

An :class:`Experiment` is a module-level function of a parameters dict (seed included) and
named presets, each a list of parameter dicts (the grid). :func:`run_sweep` runs the points
of a preset that are not yet in ``OUT/results.jsonl`` and appends one JSON line per
finished point; ``zlnotes sweep`` (in :mod:`zlnotes.book.cli`) is its command-line front end.

The engine, split by job: :mod:`.spec` (an :class:`Experiment` and its points),
:mod:`.records` (``results.jsonl``: encoding, reading), :mod:`.provenance` (version, commit,
host), :mod:`.storage` (atomic writes, appends, the lock, the manifest) and
:mod:`.executors` (running the points). It takes an :class:`Experiment` object and never
looks one up by name; the book's experiments are registered in
:mod:`zlnotes.book.experiments`.

Files in the output folder
--------------------------
``results.jsonl``
    One JSON object per finished point, in completion order::

        {"key": "depth=2,seed=0,width=8", "params": {...}, "status": "ok",
         "result": {...}, "error": null, "traceback": null,
         "zlnotes_version": "0.1.0", "commit": "<sha>[+dirty]" | null,
         "host": "...", "finished_at": "<UTC ISO 8601>", "elapsed_s": 0.123,
         "checksum": "sha256:<hex>"}

    ``checksum`` is the SHA-256 of the record's canonical JSON without it (keys sorted,
    no spaces, ASCII): a record that does not match it is refused like a corrupt line.
    Files written before records carried a checksum (``sweep.json`` format 1) still
    load; a sweep that resumes one first rewrites it with checksums (atomically, values
    unchanged). A file mixing records with and without one is refused.

    ``zlnotes_version``, ``commit`` and ``host`` are those of the process that ran
    the point (on Dask, the worker's checkout, which may differ from the parent's;
    the commit is read once per process). Records written before this was so carry
    the parent's commit; the field is the same.

    Only the parent process writes it, one whole line per ``os.write`` on an
    ``O_APPEND`` descriptor followed by ``os.fsync``. A crash or ``kill -9`` therefore
    loses at most the points in flight; the worst it leaves is a torn last line (no
    final newline), which :func:`run_sweep` truncates on resume (with a
    :class:`RepairWarning`) and :func:`load_results` ignores (with a
    :class:`TornLineWarning`). The package never prints; it warns through :mod:`warnings`.
    A key is never written twice.
``sweep.json``
    The manifest: experiment, preset, the full grid, and the provenance of the run
    that created it (zlnotes version, git commit of the parent process, UTC date,
    Python/numpy/scipy versions, platform); ``runs`` lists every invocation. Written atomically
    (temporary file + ``os.replace``). A sweep refuses to resume into a folder whose
    manifest names another experiment, preset or grid.
``.lock``
    Holds the PID of the running sweep. A sweep takes an exclusive ``fcntl.flock`` on
    the folder itself and on ``.lock`` for its whole run (POSIX only), so two sweeps
    never write the same folder, even if ``.lock`` is deleted meanwhile.

The folder's files are opened without following symbolic links: a symbolic link, hard
link or non-regular file named ``.lock``, ``results.jsonl`` or ``sweep.json`` is refused
(``ValueError``) and its target is not touched. Before and after every write the sweep
checks that the folder, ``.lock`` and ``results.jsonl`` are still the ones it locked and
opened; if one was removed or replaced (``rm -rf`` of the folder mid-run), it stops with
:class:`SweepError`. The folder is created if missing, but not its parent; a folder that
cannot be written is refused before anything is changed.

Non-finite floats
-----------------
JSON has no NaN or infinity. A result float that is NaN, ``inf`` or ``-inf`` is stored
as the string ``"nan"``, ``"inf"`` or ``"-inf"``, and :func:`load_results` turns those
strings back into floats. A result may therefore not contain these three strings
itself (the point is recorded as an error). Finite floats round-trip exactly
(``repr``). Results may also hold numpy scalars, numpy arrays and tuples; they are
stored as Python numbers and lists.

Worker processes and schedulers
-------------------------------
Local workers are children of the sweep's process and die with it: on Linux the kernel
kills them when it ends (``PR_SET_PDEATHSIG``), and everywhere a thread in each worker
ends it once its parent is gone. A ``kill -9`` of the sweep leaves no worker behind (and
none holding its output pipe). A Dask scheduler must connect and answer as one within
``scheduler_timeout`` seconds (default 10), or the sweep stops with a one-line
:class:`SweepError` naming the address; a ``tls://`` address needs TLS certificates in
Dask's configuration.

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
worker process (started with ``spawn``, never ``fork``) and on a Dask worker, provided
the machines run the same libraries on the same kind of CPU.

The limit is process-wide (it is set in the BLAS library, not per thread), so points
in one process must not overlap: a process-wide lock lets one point at a time run under
it. Start Dask workers with one thread each (Dask's ``nthreads`` of 1, as many
workers as cores) for parallelism; a worker with several threads runs its points one
at a time, correctly but no faster.
"""

from .executors import SweepError, SweepSummary, run_sweep
from .records import NONFINITE, RESULTS_FILE, RepairWarning, TornLineWarning, load_results
from .spec import Experiment, point_key
from .storage import LOCK_FILE, MANIFEST_FILE, MANIFEST_FORMAT

__all__ = [
    "Experiment",
    "LOCK_FILE",
    "MANIFEST_FILE",
    "MANIFEST_FORMAT",
    "NONFINITE",
    "RESULTS_FILE",
    "RepairWarning",
    "SweepError",
    "SweepSummary",
    "TornLineWarning",
    "load_results",
    "point_key",
    "run_sweep",
]
