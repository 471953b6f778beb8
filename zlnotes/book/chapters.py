"""Find, inspect, execute and normalise the book's chapters.

A chapter is a notebook ``chapters/NN_name.ipynb`` committed with its outputs. Its
first code cell is tagged ``parameters`` and holds one parameter per line, typed and
commented::

    width: int = 64  # hidden width
    activation: str = "tanh"  # one of zl.ACTIVATIONS

:func:`execute_notebook` re-executes a chapter in place (``make notebooks``) and
:func:`normalise` strips everything that changes between two runs of unchanged code, so
that re-executing leaves ``git status`` clean.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import filecmp
import hashlib
import io
import json
import math
import os
import re
import shutil
import signal
import tempfile
import threading
import tokenize
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # nbformat is imported where it is used: `zlnotes sweep` needs no Jupyter stack
    from nbformat import NotebookNode

__all__ = [
    "CELL_TIMEOUT",
    "KERNELSPEC",
    "LANGUAGE_INFO",
    "RUN_SUFFIX",
    "Parameter",
    "RunInterrupted",
    "RunResult",
    "check_values",
    "execute_notebook",
    "find_chapters",
    "find_root",
    "normalise",
    "parameters_cell",
    "parse_parameters",
    "read_parameters",
    "failure_message",
    "prepare_output_folder",
    "render_run",
    "run_chapter",
    "run_header",
    "run_name",
]

#: Seconds one cell may run in ``make notebooks``; chapters run in well under a minute
#: at their defaults, so a cell that takes ten minutes is stuck, not slow.
CELL_TIMEOUT = 600

#: Kernel metadata written into every chapter: the name nbval and papermill start.
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}

#: Language metadata without the Python version, so a patch release changes nothing.
#: ``ipython3`` is the highlighter that understands ``%magics``.
LANGUAGE_INFO = {"name": "python", "pygments_lexer": "ipython3"}

#: Tags and metadata keys that papermill and nbclient add and that must not be committed.
_VOLATILE_KEYS = ("execution", "papermill")
_INJECTED_TAG = "injected-parameters"

_NUMBERED = re.compile(r"^(\d+)_")

# Checks for parameter values, by annotation.  Other annotations are not checked.
_SIMPLE_TYPES: dict[str, Any] = {
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
}
_SEQUENCE_TYPES = ("list", "tuple")

# What `Parameter.parse` accepts as an int or a float: no `_` separators, no hex.
_INT_TEXT = re.compile(r"[+-]?[0-9]+")
_FLOAT_TEXT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
_NONFINITE_TEXT = re.compile(r"[+-]?(nan|inf|infinity)", re.IGNORECASE)


def _unquote(item: str) -> str:
    if len(item) >= 2 and item[0] == item[-1] and item[0] in "'\"":
        return item[1:-1]
    return item


@dataclass(frozen=True)
class Parameter:
    """One line of a chapter's ``parameters`` cell.

    Attributes
    ----------
    name : str
        Variable name.
    type : str
        The annotation as written, e.g. ``"int"`` or ``"tuple[int, ...]"``.
    default : Any
        The default value (a Python literal).
    help : str
        The trailing comment without ``#``; empty if the line has none.
    """

    name: str
    type: str
    default: Any
    help: str

    def accepts(self, value: Any) -> bool:
        """Whether ``value`` fits the annotation.

        ``int``, ``float`` (ints allowed), ``bool`` and ``str`` are checked exactly;
        ``list[...]`` and ``tuple[...]`` accept any list or tuple (papermill passes
        sequences as lists); other annotations accept anything.

        Parameters
        ----------
        value : Any
            A candidate value for this parameter.

        Returns
        -------
        bool
        """
        if self.type in _SIMPLE_TYPES:
            return bool(_SIMPLE_TYPES[self.type](value))
        if self.type.split("[", 1)[0] in _SEQUENCE_TYPES:
            return isinstance(value, (list, tuple))
        return True

    def parse(self, text: str) -> Any:
        """Convert a command-line string to this parameter's type, strictly.

        ``int`` takes an optional sign and decimal digits only (no ``4_0``, no ``1e3``);
        ``float`` takes a decimal or scientific number (no ``_``), and ``nan`` or ``inf`` only
        when the parameter's default is itself NaN or infinite; ``str`` is taken as is;
        ``bool`` accepts ``true/false/yes/no/1/0`` (any case); ``list[...]``/``tuple[...]``
        accept comma-separated items (``1,2`` or ``-1,0``), optionally in brackets
        (``[1, 2]``), each parsed by these rules when the element type is ``int``, ``float``,
        ``bool`` or ``str``. Other annotations take a Python literal.

        Raises
        ------
        ValueError
            Naming the parameter, its type and the text that did not parse.
        """
        fail = ValueError(f"parameter {self.name!r} must be of type {self.type}; could not parse {text!r}")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # e.g. an invalid byte on the command line, kept as a lone surrogate
            raise ValueError(f"parameter {self.name!r} must be valid UTF-8 text; got {text!r}") from None
        base = self.type.split("[", 1)[0].strip()
        if base == "str":
            return text
        if base == "bool":
            lowered = text.strip().lower()
            if lowered in ("true", "yes", "1"):
                return True
            if lowered in ("false", "no", "0"):
                return False
            raise fail
        if base == "int":
            if not _INT_TEXT.fullmatch(text.strip()):
                raise fail
            return int(text)
        if base == "float":
            stripped = text.strip()
            if _FLOAT_TEXT.fullmatch(stripped):
                return float(stripped)
            if _NONFINITE_TEXT.fullmatch(stripped):
                if isinstance(self.default, float) and not math.isfinite(self.default):
                    return float(stripped)
                raise ValueError(
                    f"parameter {self.name!r} must be a finite float; got {text!r} "
                    "(NaN and infinity are accepted only where the default is one)"
                )
            raise fail
        if base in _SEQUENCE_TYPES:
            inner = self.type[len(base):].strip("[] ").split(",")[0].strip()
            body = text.strip()
            if body[:1] + body[-1:] in ("[]", "()"):
                body = body[1:-1]
            items = [item.strip() for item in body.split(",")]
            if items and items[-1] == "":  # a trailing comma, as in "(3,)"
                items.pop()
            if any(item == "" for item in items):
                raise fail
            if inner in ("int", "float", "bool"):
                default = self.default[0] if isinstance(self.default, (list, tuple)) and self.default else None
                element = Parameter(self.name, inner, default, "")
                try:
                    return [element.parse(item) for item in items]
                except ValueError as exc:
                    raise ValueError(f"{exc} (an item of {text!r})") from None
            if inner == "str":
                return [_unquote(item) for item in items]
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                raise fail from None
            return list(value) if isinstance(value, (list, tuple)) else [value]
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise fail from None

    def __str__(self) -> str:
        line = f"{self.name}: {self.type} = {self.default!r}"
        return f"{line}  # {self.help}" if self.help else line


def find_root(start: Path | str | None = None) -> Path:
    """Return the book's root: the nearest directory with ``_toc.yml`` and ``chapters/``.

    Parameters
    ----------
    start : path, optional
        Where to start looking upwards; the current directory by default.

    Returns
    -------
    pathlib.Path
        Absolute path of the root.

    Raises
    ------
    ValueError
        If no parent of ``start`` is a book root.
    """
    here = Path(start if start is not None else Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "_toc.yml").is_file() and (candidate / "chapters").is_dir():
            return candidate
    raise ValueError(f"start={str(here)!r} is not inside a book: no parent has _toc.yml and chapters/")


def find_chapters(names: Sequence[str] = (), root: Path | str | None = None) -> list[Path]:
    """Resolve chapter names to notebook paths.

    Parameters
    ----------
    names : sequence of str
        Each a path to a notebook (``chapters/01_x.ipynb``), a stem (``01_x``) or a
        chapter number (``1`` or ``01``). Empty means every chapter, in order.
    root : path, optional
        The book root; found with :func:`find_root` by default.

    Returns
    -------
    list of pathlib.Path
        Absolute notebook paths, in the order given (sorted by name if ``names`` is empty).

    Raises
    ------
    ValueError
        If a name matches no chapter or a number matches several, or a path is not a
        notebook in ``root/chapters/`` (after following symbolic links).
    """
    root = find_root() if root is None else Path(root).resolve()
    available = sorted((root / "chapters").glob("*.ipynb"))
    if not names:
        return available
    found = []
    for name in names:
        path = Path(name)
        if path.suffix == ".ipynb" and path.is_file():
            resolved = path.resolve()
            if resolved.parent != (root / "chapters").resolve():
                raise ValueError(
                    f"chapter {name!r} is not in the book's chapters/ folder ({root / 'chapters'}); "
                    "only the book's own chapters run"
                )
            found.append(resolved)
            continue
        if name.isdigit():
            matches = [p for p in available if (m := _NUMBERED.match(p.name)) and int(m[1]) == int(name)]
        else:
            matches = [p for p in available if p.stem == path.stem]
        if len(matches) != 1:
            choices = ", ".join(p.stem for p in available) or "none"
            rule = "matches several chapters" if matches else "matches no chapter"
            raise ValueError(f"chapter {name!r} {rule}; chapters are: {choices}")
        found.append(matches[0])
    return found


def _read(notebook: NotebookNode | Path | str) -> NotebookNode:
    import nbformat

    if isinstance(notebook, nbformat.NotebookNode):
        return notebook
    return nbformat.read(notebook, as_version=4)


def parameters_cell(notebook: NotebookNode | Path | str) -> NotebookNode:
    """Return the one code cell tagged ``parameters``.

    Parameters
    ----------
    notebook : NotebookNode or path

    Returns
    -------
    NotebookNode
        The cell.

    Raises
    ------
    ValueError
        If no code cell, or more than one, carries the tag.
    """
    nb = _read(notebook)
    cells = [c for c in nb.cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])]
    if len(cells) != 1:
        raise ValueError(f"notebook must have exactly one code cell tagged 'parameters'; found {len(cells)}")
    return cells[0]


def parse_parameters(source: str) -> list[Parameter]:
    """Parse the source of a ``parameters`` cell.

    Every statement must read ``name: type = default  # help``, where ``default`` is a
    Python literal and the comment is optional. Blank lines and comment lines are allowed.

    Parameters
    ----------
    source : str
        The cell's source.

    Returns
    -------
    list of Parameter
        In the order of the cell.

    Raises
    ------
    ValueError
        Naming the line that is not of that form, whose default is not a literal or does
        not fit its type, or that repeats a name.
    """
    try:
        tree = ast.parse(source)
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (SyntaxError, tokenize.TokenError) as exc:
        raise ValueError(f"parameters cell is not valid Python: {exc}") from None
    comments = {tok.start[0]: tok.string.lstrip("#").strip() for tok in tokens if tok.type == tokenize.COMMENT}
    params: list[Parameter] = []
    for node in tree.body:
        text = ast.get_source_segment(source, node)
        where = f"parameters cell, line {node.lineno} ({text!r})"
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None):
            raise ValueError(f"{where}: must read `name: type = default  # help`")
        try:
            default = ast.literal_eval(node.value)
        except ValueError:
            raise ValueError(f"{where}: the default must be a Python literal") from None
        comment = comments.get(node.end_lineno or node.lineno, "")
        param = Parameter(node.target.id, ast.unparse(node.annotation), default, comment)
        if not param.accepts(default):
            raise ValueError(f"{where}: the default {default!r} is not of type {param.type}")
        if any(p.name == param.name for p in params):
            raise ValueError(f"{where}: parameter {param.name!r} is defined twice")
        params.append(param)
    return params


def read_parameters(notebook: NotebookNode | Path | str) -> list[Parameter]:
    """Parse the ``parameters`` cell of a notebook.

    Parameters
    ----------
    notebook : NotebookNode or path

    Returns
    -------
    list of Parameter

    Raises
    ------
    ValueError
        See :func:`parameters_cell` and :func:`parse_parameters`.
    """
    return parse_parameters(parameters_cell(notebook).source)


def check_values(params: Iterable[Parameter], values: Mapping[str, Any]) -> None:
    """Check parameter values against the declared parameters.

    papermill silently accepts unknown names and values of the wrong type; this does not.

    Parameters
    ----------
    params : iterable of Parameter
        The declared parameters (from :func:`read_parameters`).
    values : mapping
        Name to value, e.g. a chapter's test parameters.

    Raises
    ------
    ValueError
        Naming the first unknown parameter or value of the wrong type.
    """
    declared = {p.name: p for p in params}
    for name, value in values.items():
        if name not in declared:
            raise ValueError(f"unknown parameter {name!r}; parameters are: {', '.join(declared) or 'none'}")
        if not declared[name].accepts(value):
            raise ValueError(f"parameter {name!r} must be of type {declared[name].type}; got {value!r}")


def _merge_streams(outputs: list) -> list:
    """Merge runs of consecutive stream outputs with the same name (stdout or stderr)."""
    merged: list = []
    for out in outputs:
        previous = merged[-1] if merged else None
        if (
            out.get("output_type") == "stream"
            and previous is not None
            and previous.get("output_type") == "stream"
            and previous.get("name") == out.get("name")
        ):
            previous["text"] = "".join(previous["text"]) + "".join(out["text"])
        else:
            merged.append(out)
    return merged


def normalise(nb: NotebookNode) -> NotebookNode:
    """Remove what changes between two executions of unchanged code (in place).

    - notebook and cell metadata ``execution`` (timestamps) and ``papermill``;
    - cells tagged ``injected-parameters`` (left by papermill);
    - code cells whose source is blank (never executed, so they would break the
      consecutive execution counts);
    - the kernelspec and language_info are set to :data:`KERNELSPEC` and
      :data:`LANGUAGE_INFO`;
    - cells without an id get one derived from their position and source;
    - consecutive stream outputs of one cell on the same stream are merged into one (the
      kernel may flush a single ``print`` in two pieces, depending on timing).

    Existing cell ids, sources, output contents and execution counts are kept.

    Parameters
    ----------
    nb : NotebookNode
        A version-4 notebook.

    Returns
    -------
    NotebookNode
        The same notebook.
    """
    for key in _VOLATILE_KEYS:
        nb.metadata.pop(key, None)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = dict(LANGUAGE_INFO)
    nb.cells = [
        cell
        for cell in nb.cells
        if _INJECTED_TAG not in cell.metadata.get("tags", [])
        and not (cell.cell_type == "code" and not cell.source.strip())
    ]
    ids = {cell.get("id") for cell in nb.cells}
    for index, cell in enumerate(nb.cells):
        for key in _VOLATILE_KEYS:
            cell.metadata.pop(key, None)
        if cell.cell_type == "code":
            cell.outputs = _merge_streams(cell.outputs)
        if not cell.get("id"):
            new_id = stem = hashlib.sha1(f"{index}\n{cell.source}".encode()).hexdigest()[:8]
            suffix = 0
            while new_id in ids:
                suffix += 1
                new_id = f"{stem}-{suffix}"
            cell["id"] = new_id
            ids.add(new_id)
    nb.nbformat_minor = max(nb.nbformat_minor, 5)  # cell ids exist from 4.5 on
    return nb


def execute_notebook(path: Path | str, *, timeout: int = CELL_TIMEOUT, kernel_name: str = "python3") -> None:
    """Execute a notebook top to bottom in a fresh kernel and save it normalised, in place.

    The kernel's working directory is the notebook's directory, so chapters read
    ``../data/``. On an error the file is left untouched.

    Parameters
    ----------
    path : path
        The notebook.
    timeout : int
        Seconds one cell may run.
    kernel_name : str
        Kernel to start; ``python3`` is the interpreter running this function.

    Raises
    ------
    nbclient.exceptions.CellExecutionError
        If a cell raises; the message carries the traceback.
    nbclient.exceptions.CellTimeoutError
        If a cell runs longer than ``timeout``.
    nbclient.exceptions.DeadKernelError
        If the kernel dies (e.g. runs out of memory).
    """
    from nbclient import NotebookClient  # imported here: slow, and only needed to execute

    path = Path(path).resolve()
    import nbformat

    nb = normalise(nbformat.read(path, as_version=4))
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    ipc = Path(tempfile.mkdtemp(prefix="zlk-"))  # the kernel talks over Unix sockets: no TCP warning
    try:
        client = NotebookClient(
            nb,
            timeout=timeout,
            kernel_name=kernel_name,
            record_timing=False,
            resources={"metadata": {"path": str(path.parent)}},
            kernel_manager_class=_ipc_kernel_manager(ipc),
        )
        client.execute()
    finally:
        shutil.rmtree(ipc, ignore_errors=True)
    nbformat.write(normalise(nb), path)


# -- running a chapter with new parameters (`zlnotes run`) --------------------------------

#: Tags of the cells a run adds to its copy of the chapter.
RUN_HEADER_TAG = "zlnotes-run-header"
RUN_BANNER_TAG = "zlnotes-run-failed"
_PAPERMILL_ERROR_TAG = "papermill-error-cell-tag"
_FOLDING_TAGS = ("hide-input", "hide-cell", "remove-input", "remove-cell", "hide-output", "remove-output")

#: Name suffixes of a run's outputs, by status: only a complete run gets the plain name.
RUN_SUFFIX = {"ok": "", "failed": "-FAILED", "interrupted": "-INTERRUPTED"}

_UNSAFE = re.compile(r"[^A-Za-z0-9_.,+-]+")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_ARROW = re.compile(r"^\s*-+>\s*(\d+)\s?(.*)$")


class RunInterrupted(KeyboardInterrupt):
    """A run stopped by SIGINT (Ctrl-C) or SIGTERM; ``signum`` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@dataclass(frozen=True)
class RunResult:
    """What :func:`run_chapter` wrote.

    Attributes
    ----------
    status : str
        ``"ok"``, ``"failed"`` (a cell raised, timed out or the kernel died) or
        ``"interrupted"`` (SIGINT or SIGTERM).
    notebook : pathlib.Path
        The executed notebook, ``NAME.ipynb``, or ``NAME-FAILED.ipynb`` /
        ``NAME-INTERRUPTED.ipynb``.
    html : pathlib.Path or None
        Its page beside it (``.html``, with ``_static/`` and ``_images/`` in the same
        folder); None if rendering it failed.
    message : str
        Empty on success; else what failed, e.g. ``"In [4]: AssertionError: ..."``.
    render_error : str
        Why the page could not be rendered; empty if it was.
    signum : int
        The signal that interrupted the run; 0 otherwise.
    """

    status: str
    notebook: Path
    html: Path | None
    message: str = ""
    render_error: str = ""
    signum: int = 0


def _value_text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(_value_text(v) for v in value)
    return str(value)


def run_name(path: Path | str, values: Mapping[str, Any]) -> str:
    """The file name (without suffix) of a run of the chapter at ``path`` with ``values``.

    ``STEM-defaults`` without values; otherwise ``STEM-`` followed by a readable, shortened
    ``name-value`` part and an 8-digit hash of the exact values, so that two parameter sets
    never share a name (``relu`` and ``re lu`` read alike but hash differently).

    Examples
    --------
    >>> run_name("chapters/01_x.ipynb", {})
    '01_x-defaults'
    >>> run_name("chapters/01_x.ipynb", {"width": 32})
    '01_x-width-32-023c2e38'
    """
    stem = Path(path).stem
    if not values:
        return f"{stem}-defaults"
    readable = "_".join(f"{k}-{_UNSAFE.sub('', _value_text(v))}" for k, v in sorted(values.items()))[:60]
    exact = json.dumps(sorted(values.items()), default=repr)
    return f"{stem}-{readable}-{hashlib.sha256(exact.encode()).hexdigest()[:8]}"


def prepare_output_folder(out: Path | str) -> Path:
    """Make sure ``out`` is a writable folder (creating it and its parents if missing).

    Raises
    ------
    OSError
        With one line that names the folder and the reason: it is a file, it cannot be
        created, or it is not writable. Nothing is created in that case.
    """
    out = Path(out).expanduser().absolute()
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"output folder {out} is a file, not a folder")
    if not out.exists():
        existing = next(p for p in out.parents if p.exists())
        if not existing.is_dir():
            raise NotADirectoryError(f"cannot create output folder {out}: {existing} is a file")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise PermissionError(f"cannot create output folder {out}: {existing} is not writable")
        try:
            out.mkdir(parents=True)
        except OSError as exc:
            raise OSError(f"cannot create output folder {out}: {exc.strerror or exc}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise PermissionError(f"output folder {out} is not writable")
    return out


def _strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def _failed_line(traceback: Sequence[str]) -> str:
    """The source line an IPython traceback marks with ``---->`` last (the deepest frame)."""
    line = ""
    for chunk in traceback:
        for text in _strip_ansi(chunk).splitlines():
            if match := _ARROW.match(text):
                line = match[2].strip()
    return line


def failure_message(ename: str, evalue: str, traceback: Sequence[str] = ()) -> str:
    """``"ename: evalue"``; for an ``assert`` without a message, the failed statement instead.

    Examples
    --------
    >>> failure_message("AssertionError", "rank 3 < 4: the Jacobian is not full rank")
    'AssertionError: rank 3 < 4: the Jacobian is not full rank'
    >>> failure_message("AssertionError", "", ["----> 7 assert rank == 4"])
    'AssertionError (no message) at: assert rank == 4'
    """
    evalue = _strip_ansi(evalue).strip()
    if evalue:
        return f"{ename}: {evalue}"
    line = _failed_line(traceback)
    return f"{ename} (no message) at: {line}" if line else ename


def _last_executed(nb: NotebookNode) -> NotebookNode | None:
    executed = [c for c in nb.cells if c.cell_type == "code" and c.get("execution_count")]
    return executed[-1] if executed else None


def _md(source: str, tag: str) -> NotebookNode:
    from nbformat.v4 import new_markdown_cell

    cell = new_markdown_cell(source)
    cell.metadata["tags"] = [tag]
    return cell


def _literal(value: Any) -> str:
    text = _value_text(value) if isinstance(value, (list, tuple)) else repr(value)
    return "`" + text.replace("`", "'").replace("|", "\\|") + "`"


def run_header(params: Iterable[Parameter], values: Mapping[str, Any], command: str) -> str:
    """The MyST of the box at the top of a run's page: the parameters that differ from the defaults."""
    declared = {p.name: p for p in params}
    changed = [
        (name, value, declared[name].default)
        for name, value in values.items()
        if name in declared and _normal(value) != _normal(declared[name].default)
    ]
    lines = ["```{admonition} A rerun of this chapter with other parameters", ":class: note", ""]
    if changed:
        lines += ["Parameters that differ from the chapter's defaults:", "",
                  "| parameter | value in this run | default |", "|---|---|---|"]
        lines += [f"| `{name}` | {_literal(value)} | {_literal(default)} |" for name, value, default in changed]
    else:
        lines.append("This run uses the chapter's default parameters.")
    lines += ["", f"Command: `{command.replace('`', chr(39))}`", "```"]
    return "\n".join(lines)


def _normal(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _insert_header(nb: NotebookNode, header: str) -> None:
    """Put the header after the page's title: split the first cell after its ``# `` line."""
    from nbformat.v4 import new_markdown_cell

    first = nb.cells[0] if nb.cells else None
    if first is not None and first.cell_type == "markdown" and first.source.startswith("# "):
        title, _, rest = first.source.partition("\n")
        first.source = title
        index = 1
        if rest.strip():
            nb.cells.insert(1, new_markdown_cell(rest.lstrip("\n")))
        nb.cells.insert(index, _md(header, RUN_HEADER_TAG))
    else:
        nb.cells.insert(0, _md(header, RUN_HEADER_TAG))


def _mark_outcome(nb: NotebookNode, status: str, message: str, failed: NotebookNode | None, signum: int) -> None:
    """Add the error banner after the header, and a box before the cell that failed."""
    if status == "ok":
        return
    where = f"In [{failed.execution_count}]" if failed is not None else "the start"
    if status == "failed":
        head = f"This run failed at {where}: {message}"
        after = "The cells after it did not run: below it the page shows their code without outputs."
    else:
        name = signal.Signals(signum).name if signum else "an interrupt"
        head = f"This run was interrupted ({name}) while running {where}."
        after = "That cell and the cells after it did not finish; their outputs are missing or incomplete."
    link = ' <a href="#zlnotes-failed-cell">Go to the cell.</a>' if failed is not None else ""
    banner = f"```{{error}}\n{_escape_md(head)}\n\n{after}{link}\n```"
    header_at = next(i for i, c in enumerate(nb.cells) if RUN_HEADER_TAG in c.metadata.get("tags", []))
    nb.cells.insert(header_at + 1, _md(banner, RUN_BANNER_TAG))
    if failed is not None:
        tags = failed.metadata.get("tags", [])
        failed.metadata["tags"] = [t for t in tags if t not in _FOLDING_TAGS]  # show the cell that failed
        index = next(i for i, c in enumerate(nb.cells) if c is failed)
        box = "(zlnotes-failed-cell)=\n```{error}\n" + _escape_md(
            f"The run stopped here, at In [{failed.execution_count}]" + (f": {message}" if status == "failed" else ".")
        ) + "\n```"
        nb.cells.insert(index, _md(box, RUN_BANNER_TAG))


def _escape_md(text: str) -> str:
    return re.sub(r"([\\`*_{}\[\]<>$|])", r"\\\1", text)


def _add_references(nb: NotebookNode, bibfiles: Sequence[str]) -> None:
    from nbformat.v4 import new_markdown_cell

    if bibfiles and any("{cite" in c.source for c in nb.cells if c.cell_type == "markdown"):
        nb.cells.append(new_markdown_cell("## References\n\n```{bibliography}\n:filter: docname in docnames\n```"))


def _book_config(root: Path) -> dict[str, Any]:
    import yaml

    path = root / "_config.yml"
    if not path.is_file():
        return {}
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    return config if isinstance(config, dict) else {}


def render_run(nb: NotebookNode, root: Path, chapter: Path, html_dir: Path) -> Path:
    """Render an executed run as a page of the book into ``html_dir/index.html``.

    A one-page Sphinx build with the book's ``_config.yml`` (jupyter-book's own
    configuration, with its extensions: offline MathJax, sphinx-proof, sphinx-exercise,
    sphinxcontrib-bibtex with the book's ``.bib`` files) and the book's ``_static/``.
    References to other pages of the book, which the one-page build does not have, are
    resolved by :mod:`zlnotes.book.sphinx_rerun` to the page's title (a link to the built
    book, if it is built). ``html_dir`` gets ``index.html``, ``_static/`` and ``_images/``.

    Raises
    ------
    RuntimeError
        If Sphinx fails; the message has the end of its log.
    """
    import nbformat
    from jupyter_book.sphinx import build_sphinx

    src = html_dir.parent / "src"
    src.mkdir()
    bibfiles = [str(b) for b in _book_config(root).get("bibtex_bibfiles", [])]
    for bib in bibfiles:
        if (root / bib).is_file():
            (src / bib).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / bib, src / bib)
    if (root / "_static").is_dir():
        shutil.copytree(root / "_static", src / "_static")
    nb = copy.deepcopy(nb)
    _add_references(nb, bibfiles)
    nbformat.write(nb, src / "index.ipynb")
    log = io.StringIO()
    overrides = {
        "master_doc": "index",
        "exclude_patterns": ["_build", "**.ipynb_checkpoints"],
        "latex_individualpages": False,
        "zlnotes_run_root": str(root),
        "zlnotes_run_docname": chapter.relative_to(root).with_suffix("").as_posix(),
        "html_theme_options": {"use_download_button": False, "use_fullscreen_button": False},
    }
    with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecations inside Sphinx extensions are not the reader's concern
        result = build_sphinx(
            src, html_dir, use_external_toc=False, noconfig=True, path_config=str(root / "_config.yml"),
            confoverrides=overrides, builder="html", quiet=True, freshenv=True,
        )
    page = html_dir / "index.html"
    if result != 0 or not page.is_file():
        tail = "\n".join(_strip_ansi(log.getvalue()).strip().splitlines()[-10:])
        raise RuntimeError(f"Sphinx could not render the run ({result!r}):\n{tail}")
    return page


def _install_file(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` through a temporary name, unless it is already there."""
    if target.is_file() and filecmp.cmp(source, target, shallow=False):
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.partial")
    shutil.copyfile(source, temporary)
    os.replace(temporary, target)


def _install_page(html_dir: Path, out_dir: Path, target: Path) -> None:
    for folder in ("_static", "_images"):
        for source in sorted((html_dir / folder).rglob("*")):
            if source.is_file():
                _install_file(source, out_dir / folder / source.relative_to(html_dir / folder))
    os.replace(html_dir / "index.html", target)


@contextlib.contextmanager
def _interrupts() -> Iterator[None]:
    """Turn SIGTERM (and SIGINT) into :class:`RunInterrupted` while the run executes."""
    def handler(signum: int, frame: Any) -> None:
        raise RunInterrupted(signum)

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_chapter(
    path: Path | str,
    values: Mapping[str, Any],
    out_dir: Path | str,
    *,
    timeout: int = CELL_TIMEOUT,
    command: str = "",
    progress: bool = True,
) -> RunResult:
    """Run a chapter with new parameter values into ``out_dir`` and render it as a book page.

    The chapter is executed by papermill into a temporary folder inside ``out_dir`` (the
    chapter itself is not touched; its kernel talks over IPC sockets, not TCP). Only a
    complete run is moved into place as ``NAME.ipynb`` and ``NAME.html`` (see
    :func:`run_name`), replacing an earlier complete run with the same values. A run in which
    a cell raised, timed out or killed the kernel is kept as ``NAME-FAILED.*``, an
    interrupted one (SIGINT, SIGTERM) as ``NAME-INTERRUPTED.*``; their pages open with an
    error banner and mark the cell that failed by its execution count (``In [4]``). Neither
    ever replaces a complete run. The pages share ``_static/`` and ``_images/`` in ``out_dir``.

    Parameters
    ----------
    path : path
        A chapter of the book (``ROOT/chapters/NN_name.ipynb``).
    values : mapping
        Parameter values, already checked with :func:`check_values`.
    out_dir : path
        Output folder; created if missing (see :func:`prepare_output_folder`).
    timeout : int
        Seconds one cell may run; must be positive.
    command : str
        The command line, shown in the page's header.
    progress : bool
        Show papermill's progress bar on stderr.

    Returns
    -------
    RunResult

    Raises
    ------
    ValueError
        If ``timeout`` is not a positive int, or ``path`` is not a chapter of a book.
    OSError
        If ``out_dir`` cannot be used (one line; nothing is written).
    """
    import papermill
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout <= 0:
        raise ValueError(f"timeout must be a positive number of seconds; got {timeout!r}")
    path = Path(path).resolve()
    root = find_root(path.parent)
    (path,) = find_chapters([str(path)], root)
    params = read_parameters(path)
    check_values(params, values)
    out = prepare_output_folder(out_dir)
    name = run_name(path, values)
    work = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".partial", dir=out))
    executed = work / f"{name}.ipynb"
    status, message, failed_exec, signum = "ok", "", None, 0
    ipc = Path(tempfile.mkdtemp(prefix="zlk-"))  # short: a Unix socket path has at most 107 bytes
    manager = _ipc_kernel_manager(ipc)
    try:
        try:
            with _interrupts():
                try:
                    papermill.execute_notebook(
                        str(path), str(executed), parameters=dict(values), kernel_name="python3",
                        language="python", cwd=str(path.parent), progress_bar=progress,
                        execution_timeout=timeout, kernel_manager_class=manager,
                    )
                except PapermillExecutionError as exc:
                    status, failed_exec = "failed", exc.exec_count
                    message = failure_message(exc.ename, exc.evalue, exc.traceback)
                    if exc.ename == "KeyboardInterrupt":
                        status, signum = "interrupted", int(signal.SIGINT)
                except CellTimeoutError:
                    status, message = "failed", f"the cell ran longer than the timeout of {timeout} s"
                except DeadKernelError as exc:
                    log = (ipc / "kernel.log").read_text(errors="replace").strip().splitlines()[-3:]
                    status, message = "failed", f"the kernel died ({exc}){': ' if log else ''}{' / '.join(log)}"
        except RunInterrupted as exc:
            status, signum = "interrupted", exc.signum
        finally:
            for km in manager.instances:
                _stop_kernel(km)
            shutil.rmtree(ipc, ignore_errors=True)
        with _interrupts():
            return _finish(
                path, root, params, values, out, name, work, executed, command, status, message, failed_exec, signum
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _ipc_kernel_manager(folder: Path) -> Any:
    """A kernel manager class whose kernels talk over Unix sockets in ``folder``.

    Over TCP (jupyter_client's default) ipykernel warns on every start that the traffic is
    not encrypted, and that warning would land in the run's progress line. The kernel's own
    stderr (its log, and the noise of a kernel stopped mid-reply) goes to ``folder/kernel.log``,
    not to the terminal. The class keeps its instances so that :func:`run_chapter` can stop a
    kernel an interrupt left running.
    """
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    class IPCKernelManager(AsyncKernelManager):
        instances: list[Any] = []

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            type(self).instances.append(self)

        @default("transport")
        def _transport_default(self) -> str:
            return "ipc"

        @default("ip")
        def _ip_default(self) -> str:
            return str(folder / "kernel")

        async def start_kernel(self, **kwargs: Any) -> None:  # type: ignore[override]
            with open(folder / "kernel.log", "ab") as log:  # the child keeps its own descriptor
                kwargs.setdefault("stderr", log)
                await super().start_kernel(**kwargs)

    return IPCKernelManager


def _stop_kernel(km: Any) -> None:
    provisioner = getattr(km, "provisioner", None)
    process = getattr(provisioner, "process", None)
    if process is not None and process.poll() is None:
        process.kill()
        process.wait()
    with contextlib.suppress(Exception):
        km.cleanup_connection_file()


def _finish(
    path: Path, root: Path, params: list[Parameter], values: Mapping[str, Any], out: Path, name: str, work: Path,
    executed: Path, command: str, status: str, message: str, failed_exec: int | None, signum: int,
) -> RunResult:
    import nbformat

    try:
        nb = nbformat.read(executed, as_version=4)
    except Exception:  # killed while papermill saved it: start again from the chapter's text
        nb = _read(path)
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        if status == "ok":
            status, message = "failed", "the executed notebook could not be read back"
    failed = None
    if status != "ok":
        code = [c for c in nb.cells if c.cell_type == "code"]
        failed = next((c for c in code if failed_exec is not None and c.get("execution_count") == failed_exec), None)
        failed = failed or _last_executed(nb)
        if status == "failed" and not message.startswith("In ["):
            where = f"In [{failed.execution_count}]: " if failed is not None else ""
            message = where + message
    nb.cells = [c for c in nb.cells if _PAPERMILL_ERROR_TAG not in c.metadata.get("tags", [])]
    if status == "interrupted":
        how = signal.Signals(signum).name if signum else "interrupt"
        running = f"while running In [{failed.execution_count}]" if failed is not None else "before any cell ran"
        message = f"{how} {running}"
    _insert_header(nb, run_header(params, values, command or f"zlnotes run {path.stem[:2]}"))
    _mark_outcome(nb, status, message.split(": ", 1)[1] if message.startswith("In [") else message, failed, signum)
    suffix = RUN_SUFFIX[status]
    notebook = out / f"{name}{suffix}.ipynb"
    html: Path | None = out / f"{name}{suffix}.html"
    staged = work / "staged.ipynb"
    nbformat.write(nb, staged)
    os.replace(staged, notebook)
    render_error = ""
    try:
        page = render_run(nb, root, path, work / "html")
        assert html is not None
        _install_page(page.parent, out, html)
    except (RuntimeError, OSError) as exc:
        render_error, html = str(exc), None
        stale = out / f"{name}{suffix}.html"
        if suffix and stale.exists():
            stale.unlink()  # a failed run's old page would not match its notebook
    if status == "ok":
        for other in ("-FAILED", "-INTERRUPTED"):
            for ext in (".ipynb", ".html"):
                (out / f"{name}{other}{ext}").unlink(missing_ok=True)
    return RunResult(status, notebook, html, message, render_error, signum)
