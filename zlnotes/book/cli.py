"""The ``zlnotes`` command.

``zlnotes notebooks [CHAPTER ...]``
    Re-execute chapters in place and normalise them (all chapters by default).
``zlnotes params CHAPTER``
    List a chapter's parameters, as declared in its ``parameters`` cell.
``zlnotes run CHAPTER [-p NAME VALUE ...] [--out DIR]``
    Check the values against the parameters cell, run the chapter through papermill into
    ``runs/`` (the chapter itself is not touched), and render the result to HTML.
``zlnotes sweep NAME --preset PRESET --out DIR [--workers N | --scheduler ADDR] [--dry-run]``
    Run an experiment over the grid of a preset into ``DIR/results.jsonl``; rerunning
    resumes (see :mod:`zlnotes.sweep`).

A CHAPTER is a path, a stem (``01_networks_cost_jacobian``) or a number (``1``).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

from . import chapters


def _notebooks(args: argparse.Namespace) -> int:
    root = chapters.find_root()
    for path in chapters.find_chapters(args.chapters, root):
        name = path.relative_to(root) if path.is_relative_to(root) else path
        print(f"executing {name}", flush=True)
        start = time.perf_counter()
        chapters.execute_notebook(path, timeout=args.timeout)
        print(f"wrote {name} in {time.perf_counter() - start:.1f} s", flush=True)
    return 0


def _params(args: argparse.Namespace) -> int:
    (path,) = chapters.find_chapters([args.chapter])
    for param in chapters.read_parameters(path):
        print(param)
    return 0


def _run(args: argparse.Namespace) -> int:
    import nbformat
    import papermill
    from nbconvert import HTMLExporter

    (path,) = chapters.find_chapters([args.chapter])
    declared = {p.name: p for p in chapters.read_parameters(path)}
    values = {}
    for name, text in args.p or []:
        if name not in declared:
            raise ValueError(f"unknown parameter {name!r}; parameters are: {', '.join(declared)}")
        values[name] = declared[name].parse(text)
    chapters.check_values(declared.values(), values)
    out_dir = Path(args.out).resolve() if args.out else path.resolve().parent.parent / "runs"
    args.out = str(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    unsafe = re.compile(r"[^\w.,-]+")
    suffix = "".join(f"_{k}-{unsafe.sub('', str(v))}" for k, v in sorted(values.items()))
    out = out_dir / f"{path.stem}{suffix}.ipynb"
    print(f"running {path.name} with {values or 'its defaults'}", flush=True)
    papermill.execute_notebook(
        str(path), str(out), parameters=values, kernel_name="python3", language="python", cwd=str(path.parent),
        progress_bar=True, execution_timeout=args.timeout,
    )
    html, _ = HTMLExporter().from_notebook_node(nbformat.read(out, as_version=4))
    html_path = out.with_suffix(".html")
    html_path.write_text(html, encoding="utf-8")
    print(f"executed notebook: {out}")
    print(f"HTML render:       {html_path}")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from .. import sweep
    from .experiments import get_experiment

    experiment = get_experiment(args.name)
    points = experiment.points(args.preset)
    if args.dry_run:
        if not points:
            return 0
        try:
            print("\n".join(sweep.point_key(params) for params in points), flush=True)
        except BrokenPipeError:  # e.g. `| head`: stop quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    if args.out is None:
        raise ValueError("--out DIR is required (except with --dry-run)")
    try:
        with warnings.catch_warnings():  # the library warns; the command shows one line per warning
            warnings.simplefilter("always", sweep.RepairWarning)
            warnings.showwarning = lambda message, *_, **__: print(f"warning: {message}", file=sys.stderr, flush=True)
            summary = sweep.run_sweep(
                experiment, args.preset, args.out, workers=args.workers, scheduler=args.scheduler,
                retry_errors=args.retry_errors, progress=True,
            )
    except (ImportError, sweep.SweepError) as exc:
        print(f"zlnotes sweep: {exc}", file=sys.stderr)
        return 1
    failed = f" ({summary.failed} failed)" if summary.failed else ""
    print(
        f"{experiment.name}/{args.preset}: {summary.total} points, {summary.already_done} already done, "
        f"{summary.run_now} run now{failed} -> {summary.results}"
    )
    if summary.errors:
        print(
            f"{summary.errors} point(s) recorded as errors (status \"error\" in {summary.results}); "
            "rerun with --retry-errors to run them again",
            file=sys.stderr,
        )
        return 1
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zlnotes",
        description="Re-execute the book's chapters and list their parameters. A CHAPTER is a path, "
        "a stem (01_networks_cost_jacobian) or a number (1).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("notebooks", help="re-execute chapters in place and normalise their metadata")
    run.add_argument("chapters", nargs="*", metavar="CHAPTER", help="path, stem or number (default: every chapter)")
    run.add_argument(
        "--timeout", type=int, default=chapters.CELL_TIMEOUT, help="seconds one cell may run (default: %(default)s)"
    )
    run.set_defaults(func=_notebooks)

    params = commands.add_parser("params", help="list a chapter's parameters: name: type = default  # help")
    params.add_argument("chapter", metavar="CHAPTER", help="path, stem or number")
    params.set_defaults(func=_params)

    run = commands.add_parser(
        "run", help="run a chapter with new parameter values into runs/ (papermill), and render it to HTML"
    )
    run.add_argument("chapter", metavar="CHAPTER", help="path, stem or number")
    run.add_argument(
        "-p", nargs=2, action="append", metavar=("NAME", "VALUE"),
        help="a parameter value, checked against the chapter's parameters cell (repeatable)",
    )
    run.add_argument("--out", default=None, help="output folder (default: runs/ in the book's root)")
    run.add_argument(
        "--timeout", type=int, default=chapters.CELL_TIMEOUT, help="seconds one cell may run (default: %(default)s)"
    )
    run.set_defaults(func=_run)

    sweep = commands.add_parser(
        "sweep", help="run an experiment over a preset's grid into DIR/results.jsonl (resumes where it stopped)",
        description="Run a named experiment (a key of zlnotes.book.experiments.EXPERIMENTS, or package.module:attribute) "
        "over the grid of a preset. One JSON line per finished point goes to DIR/results.jsonl; rerunning the same "
        "command skips the points already there.",
    )
    sweep.add_argument("name", metavar="NAME", help="experiment name, or package.module:attribute")
    sweep.add_argument("--preset", required=True, help="which grid to run: tiny (seconds), book (data/), full (a cluster)")
    sweep.add_argument("--out", metavar="DIR", default=None, help="output folder; rerunning with it resumes")
    where = sweep.add_mutually_exclusive_group()
    where.add_argument(
        "--workers", type=int, default=None, metavar="N",
        help="local worker processes (default: the number of CPUs; 1 runs in this process)",
    )
    where.add_argument(
        "--scheduler", default=None, metavar="ADDR",
        help="run on the Dask cluster at ADDR (tcp://host:8786), whose workers should run with --nthreads 1 "
        "(a worker runs one point at a time); needs: pip install -e .[distributed]",
    )
    sweep.add_argument("--dry-run", action="store_true", help="print the key of every point of the grid, one per line")
    sweep.add_argument("--retry-errors", action="store_true", help="rerun points an earlier run recorded as errors")
    sweep.set_defaults(func=_sweep)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``zlnotes`` command.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name; ``sys.argv[1:]`` by default.

    Returns
    -------
    int
        The exit status: 0 on success, 1 if a chapter failed to execute (it is left
        unchanged, and later chapters are not run) or a sweep failed or holds error
        records, 2 on bad arguments.
    """
    papermill_failed: tuple[type[Exception], ...] = ()
    chapter_failed: tuple[type[Exception], ...] = ()
    try:  # the Jupyter stack is needed by the chapter commands only, not by `zlnotes sweep`
        from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
        from papermill.exceptions import PapermillExecutionError

        papermill_failed = (PapermillExecutionError,)
        chapter_failed = (CellExecutionError, CellTimeoutError, DeadKernelError)
    except ImportError:
        pass

    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ValueError as exc:
        parser.error(str(exc))  # exits with status 2
    except papermill_failed as exc:
        where = f"cell {getattr(exc, 'cell_index', '?')}: {getattr(exc, 'ename', '')}: {getattr(exc, 'evalue', '')}"
        print(f"the chapter failed at {where}\nsee {args.out}", file=sys.stderr)
        return 1
    except chapter_failed as exc:
        print(f"failed; the notebook was left unchanged\n{exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
