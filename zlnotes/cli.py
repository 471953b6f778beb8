"""The ``zlnotes`` command.

``zlnotes notebooks [CHAPTER ...]``
    Re-execute chapters in place and normalise them (all chapters by default).
``zlnotes params CHAPTER``
    List a chapter's parameters, as declared in its ``parameters`` cell.

A CHAPTER is a path, a stem (``01_networks_cost_jacobian``) or a number (``1``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

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
        unchanged, and later chapters are not run), 2 on bad arguments.
    """
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ValueError as exc:
        parser.error(str(exc))  # exits with status 2
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as exc:
        print(f"failed; the notebook was left unchanged\n{exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
