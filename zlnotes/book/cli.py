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
import json
import os
import re
import shlex
import signal
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
    (path,) = chapters.find_chapters([args.chapter])
    declared = {p.name: p for p in chapters.read_parameters(path)}
    values: dict[str, object] = {}
    texts: dict[str, str] = {}
    for name, text in args.p or []:
        if name not in declared:
            raise ValueError(f"unknown parameter {name!r}; parameters are: {', '.join(declared)}")
        if name in values:
            raise ValueError(
                f"parameter {name!r} is given twice (-p {name} {texts[name]} and -p {name} {text}); give it once"
            )
        values[name] = declared[name].parse(text)
        texts[name] = text
    chapters.check_values(declared.values(), values)
    root = chapters.find_root(path.parent)
    out_dir = Path(args.out) if args.out else root / "runs"
    try:
        out_dir = chapters.prepare_output_folder(out_dir)
    except OSError as exc:
        print(f"zlnotes run: {exc}", file=sys.stderr)
        return 1
    number = m[1] if (m := re.match(r"(\d+)_", path.name)) else path.stem
    command = shlex.join([".venv/bin/zlnotes", "run", number, *(w for n, t in texts.items() for w in ("-p", n, t))])
    print(f"running {path.name} with {values or 'its defaults'}", flush=True)
    try:
        result = chapters.run_chapter(path, values, out_dir, timeout=args.timeout, command=command)
    except OSError as exc:  # e.g. the folder became read-only or vanished during the run
        print(f"zlnotes run: cannot write the run into {out_dir}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:  # a second interrupt while the interrupted run was being saved
        signum = getattr(exc, "signum", int(signal.SIGINT))
        print(f"zlnotes run: interrupted again while saving; see {out_dir} for what was saved", file=sys.stderr)
        return 128 + signum
    page = result.html if result.html is not None else "(not rendered: see below)"
    if result.status == "ok":
        print(f"executed notebook: {result.notebook}")
        print(f"page:              {page}")
    else:
        what = "failed" if result.status == "failed" else "was interrupted"
        print(f"the run {what}: {result.message}", file=sys.stderr)
        print(f"page:              {page}", file=sys.stderr)
        print(f"notebook:          {result.notebook}", file=sys.stderr)
    if result.render_error:
        print(f"zlnotes run: the page could not be rendered: {result.render_error}", file=sys.stderr)
    if result.status == "interrupted":
        return 128 + (result.signum or int(signal.SIGINT))
    return 0 if result.status == "ok" and not result.render_error else 1


def _positive_int(text: str) -> int:
    if not re.fullmatch(r"\+?[0-9]+", text.strip()) or int(text) <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive whole number of seconds; got {text!r}")
    return int(text)


#: The hidden option that ``-p NAME VALUE`` becomes before argparse sees it (see :func:`_pair_params`).
_PAIR = "--zlnotes-param-pair"


def _pair_params(argv: Sequence[str]) -> list[str]:
    """Join each ``-p NAME VALUE`` of ``zlnotes run`` into one token.

    argparse takes a VALUE that starts with ``-`` (``-p sweep_widths -1,0``) for an option
    and stops with "expected 2 arguments". Joined, the value reaches the parameter's parser.
    An incomplete ``-p`` is left as it is, for argparse to report.
    """
    argv = list(argv)
    if not argv or argv[0] != "run":
        return argv
    out, rest = argv[:1], argv[1:]
    i = 0
    while i < len(rest):
        if rest[i] in ("-p", "--param") and i + 2 < len(rest):
            out.append(f"{_PAIR}={json.dumps([rest[i + 1], rest[i + 2]])}")
            i += 3
        else:
            out.append(rest[i])
            i += 1
    return out


class _ParamPair(argparse.Action):
    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object, option: str | None = None
    ) -> None:
        pairs = getattr(namespace, "p", None) or []
        pairs.append(json.loads(str(values)))
        namespace.p = pairs


def _positive_seconds(text: str) -> float:
    """argparse type: a finite number of seconds > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0; got {text!r}") from None
    if not (value > 0 and value < float("inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number of seconds > 0; got {text!r}")
    return value


def _sweep(args: argparse.Namespace) -> int:
    from .. import sweep
    from .experiments import get_experiment

    experiment = get_experiment(args.name)  # the registry only: a name never imports a module
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
                retry_errors=args.retry_errors, progress=True, scheduler_timeout=args.scheduler_timeout,
            )
    except ValueError as exc:  # refused before any point ran (a bad folder, a busy one, a bad address): one line
        print(f"zlnotes sweep: error: {exc}", file=sys.stderr)
        return 2
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
        "--timeout", type=_positive_int, default=chapters.CELL_TIMEOUT,
        help="seconds one cell may run (default: %(default)s)",
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
        "-p", "--param", dest="p", nargs=2, action="append", metavar=("NAME", "VALUE"),
        help="a parameter value, checked against the chapter's parameters cell (once per name; "
        "lists as 1,2,8 or -1,0)",
    )
    run.add_argument(_PAIR, dest="p", action=_ParamPair, help=argparse.SUPPRESS)
    run.add_argument(
        "--out", default=None, metavar="DIR",
        help="output folder (default: runs/ in the book's root); gets NAME.ipynb and NAME.html, "
        "or NAME-FAILED.* / NAME-INTERRUPTED.* for a run that did not complete",
    )
    run.add_argument(
        "--timeout", type=_positive_int, default=chapters.CELL_TIMEOUT,
        help="seconds one cell may run (default: %(default)s)",
    )
    run.set_defaults(func=_run)

    sweep = commands.add_parser(
        "sweep", help="run an experiment over a preset's grid into DIR/results.jsonl (resumes where it stopped)",
        description="Run a named experiment (a key of zlnotes.book.experiments.EXPERIMENTS) over the grid of a "
        "preset. One JSON line per finished point goes to DIR/results.jsonl; rerunning the same command skips the "
        "points already there.",
    )
    sweep.add_argument("name", metavar="NAME", help="experiment name (a key of zlnotes.book.experiments.EXPERIMENTS)")
    sweep.add_argument(
        "--preset", required=True, help="which grid to run: tiny (seconds), book (data/), full (a cluster)"
    )
    sweep.add_argument(
        "--out", metavar="DIR", default=None,
        help="output folder (created if missing; its parent must exist); rerunning with it resumes",
    )
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
    sweep.add_argument(
        "--scheduler-timeout", type=_positive_seconds, default=10.0, metavar="S",
        help="seconds to wait for the scheduler at ADDR to connect and answer as a Dask scheduler (default: 10)",
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
    chapter_failed: tuple[type[Exception], ...] = ()
    try:  # the Jupyter stack is needed by the chapter commands only, not by `zlnotes sweep`
        from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

        chapter_failed = (CellExecutionError, CellTimeoutError, DeadKernelError)
    except ImportError:
        pass

    parser = _parser()
    args = parser.parse_args(_pair_params(sys.argv[1:] if argv is None else argv))
    try:
        return args.func(args)
    except ValueError as exc:
        parser.error(str(exc))  # exits with status 2
    except chapter_failed as exc:
        print(f"failed; the notebook was left unchanged\n{exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
