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
import hashlib
import io
import re
import tokenize
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # nbformat is imported where it is used: `zlnotes sweep` needs no Jupyter stack
    from nbformat import NotebookNode

__all__ = [
    "CELL_TIMEOUT",
    "KERNELSPEC",
    "LANGUAGE_INFO",
    "Parameter",
    "check_values",
    "execute_notebook",
    "find_chapters",
    "find_root",
    "normalise",
    "parameters_cell",
    "parse_parameters",
    "read_parameters",
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
        """Convert a command-line string to this parameter's type.

        ``int``, ``float`` and ``str`` convert directly; ``bool`` accepts
        ``true/false/yes/no/1/0`` (any case); ``list[...]``/``tuple[...]`` accept a Python
        literal (``[1, 2]``) or comma-separated items (``1,2``), each converted by the element
        type when it is ``int``, ``float`` or ``str``. Other annotations take a Python literal.

        Raises
        ------
        ValueError
            Naming the parameter, its type and the text that did not parse.
        """
        fail = ValueError(f"parameter {self.name!r} must be of type {self.type}; could not parse {text!r}")
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
        if base in ("int", "float"):
            try:
                return int(text) if base == "int" else float(text)
            except ValueError:
                raise fail from None
        if base in _SEQUENCE_TYPES:
            inner = self.type[len(base):].strip("[] ").split(",")[0].strip()
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                value = [item.strip() for item in text.split(",") if item.strip()]
            if not isinstance(value, (list, tuple)):
                value = [value]
            if inner in ("int", "float", "str"):
                element = Parameter(self.name, inner, None, "")
                value = [v if element.accepts(v) else element.parse(str(v)) for v in value]
            return list(value)
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
        If a name matches no chapter or a number matches several.
    """
    root = find_root() if root is None else Path(root).resolve()
    available = sorted((root / "chapters").glob("*.ipynb"))
    if not names:
        return available
    found = []
    for name in names:
        path = Path(name)
        if path.suffix == ".ipynb" and path.is_file():
            found.append(path.resolve())
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
        param = Parameter(node.target.id, ast.unparse(node.annotation), default, comments.get(node.end_lineno or node.lineno, ""))
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
        if _INJECTED_TAG not in cell.metadata.get("tags", []) and not (cell.cell_type == "code" and not cell.source.strip())
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
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name=kernel_name,
        record_timing=False,
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    nbformat.write(normalise(nb), path)
