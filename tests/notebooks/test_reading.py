"""Every chapter reads like a chapter of a book: checked on the committed notebooks.

- It opens with an Overview and ends with Summary, Exercises and Try this, in that order.
- It has two or three exercises, each with a folded solution, and at least one solution that
  computes (a code cell inside a gated solution) and asserts its answer.
- At most :data:`MAX_VISIBLE_CODE_LINES` lines of code are visible: the rest is folded
  (``hide-input``) machinery or sits in a folded solution. No code line is wider than
  :data:`MAX_CODE_CHARS`, so no code box scrolls in the book's text column.
- No stored text output has a line wider than :data:`MAX_OUTPUT_CHARS`.
- Every figure is stored at 150 dpi or more and displays at least 600 px wide at its natural
  size (the book's figure style: 7 in at 192 dpi, shown at 672 px).
- No word of the book's making ("issue", "MATH.md") in the text.
- Every ``assert`` in a code cell carries a message saying what failed and why.
"""

from __future__ import annotations

import ast
import base64
import re
import struct
from pathlib import Path

import nbformat
import pytest

from zlnotes.book import chapters

ROOT = Path(__file__).resolve().parents[2]
CHAPTERS = chapters.find_chapters(root=ROOT)

MAX_VISIBLE_CODE_LINES = 120
MAX_CODE_CHARS = 84
MAX_OUTPUT_CHARS = 80
MIN_DPI = 150
MIN_DISPLAY_PX = 600
FOLDED = {"hide-input", "remove-input", "hide-cell", "remove-cell"}


@pytest.fixture(params=CHAPTERS, ids=lambda path: path.stem)
def nb(request: pytest.FixtureRequest) -> nbformat.NotebookNode:
    notebook = nbformat.read(request.param, as_version=4)
    notebook.metadata["_path"] = request.param.name
    return notebook


def _markdown(nb: nbformat.NotebookNode) -> str:
    return "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")


def _h2(nb: nbformat.NotebookNode) -> list[str]:
    text = re.sub(r"```.*?```", "", _markdown(nb), flags=re.S)
    return [m[1].strip() for m in re.finditer(r"^## (.+)$", text, re.M)]


def test_overview_first_and_summary_exercises_try_this_last(nb: nbformat.NotebookNode) -> None:
    h2 = _h2(nb)
    name = nb.metadata["_path"]
    assert h2 and h2[0] == "Overview", f"{name}: the first section is {h2[:1]}, not 'Overview'"
    assert h2[-3:] == ["Summary", "Exercises", "Try this"], f"{name}: the last sections are {h2[-3:]}"


def test_exercises_with_folded_solutions(nb: nbformat.NotebookNode) -> None:
    name = nb.metadata["_path"]
    text = _markdown(nb)
    exercises = re.findall(r"^:{3,}\{exercise\}\s*\n:label:\s*(\S+)", text, re.M)
    assert 2 <= len(exercises) <= 3, f"{name}: {len(exercises)} exercises (want 2 or 3)"
    for label in exercises:
        solution = re.search(
            rf"^:{{3,}}\{{solution(?:-start)?\}}\s+{re.escape(label)}\s*\n((?::\w+:.*\n)*)", text, re.M
        )
        assert solution, f"{name}: exercise {label} has no solution"
        assert ":class: dropdown" in solution[1], f"{name}: the solution of {label} is not folded (:class: dropdown)"
    # a computational solution: a gated solution with a code cell inside it that asserts
    inside, computed = False, False
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            if re.search(r"\{solution-start\}", cell.source):
                inside = True
            if re.search(r"\{solution-end\}", cell.source):
                inside = False
        elif inside and "assert " in cell.source:
            computed = True
    assert computed, (
        f"{name}: no exercise has a computed solution "
        "(a code cell with an assert between solution-start and solution-end)"
    )


def _code_cells(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [c for c in nb.cells if c.cell_type == "code"]


def _in_solutions(nb: nbformat.NotebookNode) -> set[int]:
    """Indices of the code cells inside a gated solution: the book shows them folded."""
    inside, found = False, set()
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            inside = (inside or "{solution-start}" in cell.source) and "{solution-end}" not in cell.source
        elif inside:
            found.add(i)
    return found


def test_code_is_folded_and_fits(nb: nbformat.NotebookNode) -> None:
    name = nb.metadata["_path"]
    solutions = _in_solutions(nb)
    visible = sum(
        len(c.source.splitlines())
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code" and i not in solutions and not FOLDED & set(c.metadata.get("tags", []))
    )
    assert visible <= MAX_VISIBLE_CODE_LINES, (
        f"{name}: {visible} visible code lines (at most {MAX_VISIBLE_CODE_LINES}); fold machinery with hide-input"
    )
    wide = [
        (i, line)
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code"
        for line in c.source.splitlines()
        if len(line) > MAX_CODE_CHARS
    ]
    assert not wide, (
        f"{name}: {len(wide)} code lines wider than {MAX_CODE_CHARS} characters, e.g. cell {wide[0][0]}: {wide[0][1]!r}"
    )


def _texts(output: nbformat.NotebookNode) -> list[str]:
    if output.output_type == "stream":
        return [output.text]
    return [output.get("data", {}).get("text/plain", "")]


def test_text_outputs_fit(nb: nbformat.NotebookNode) -> None:
    name = nb.metadata["_path"]
    wide = [
        line
        for c in _code_cells(nb)
        for o in c.outputs
        if not (o.output_type == "display_data" and "image/png" in o.get("data", {}))  # a figure's repr
        for text in _texts(o)
        for line in text.splitlines()
        if len(line) > MAX_OUTPUT_CHARS
    ]
    assert not wide, (
        f"{name}: {len(wide)} stored output lines wider than {MAX_OUTPUT_CHARS} characters, e.g. {wide[0]!r}"
    )


def _png_width(data: str) -> int:
    raw = base64.b64decode(data)
    assert raw[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">I", raw[16:20])[0]


def test_figures_sharp_and_wide(nb: nbformat.NotebookNode) -> None:
    name = nb.metadata["_path"]
    figures = 0
    for c in _code_cells(nb):
        for o in c.outputs:
            if "image/png" not in o.get("data", {}):
                continue
            figures += 1
            pixels = _png_width(o.data["image/png"])
            shown = o.get("metadata", {}).get("image/png", {}).get("width", pixels)
            dpi = 96 * pixels / shown
            assert dpi >= MIN_DPI, (
                f"{name}: a figure is stored at {dpi:.0f} dpi ({pixels} px shown at {shown} px); call book_style()"
            )
            assert shown >= MIN_DISPLAY_PX, f"{name}: a figure displays at {shown} px (at least {MIN_DISPLAY_PX})"
            figure = c.metadata.get("mystnb", {}).get("figure", {})
            assert figure.get("caption") and figure.get("name"), f"{name}: a figure without caption or name"
    if figures:
        setup = "\n".join(c.source for c in _code_cells(nb))
        assert "book_style()" in setup, f"{name}: draws figures without the book's figure style (book_style())"


def test_no_words_of_the_making(nb: nbformat.NotebookNode) -> None:
    name = nb.metadata["_path"]
    found = sorted({m[0] for m in re.finditer(r"\b(?:issues?|MATH\.md)\b", _markdown(nb), re.I)})
    assert not found, f"{name}: words of the book's making in the text: {found}"


def _code_lines(source: str) -> str:
    """A code cell's source with IPython magics and shell lines blanked, line numbers kept."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def test_every_assert_has_a_message(nb: nbformat.NotebookNode) -> None:
    """Every assert says what failed: a reader who reruns a chapter with other parameters
    sees the message on the failure page, so no assert goes without one."""
    name = nb.metadata["_path"]
    bare = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        source = _code_lines(cell.source)
        try:
            tree = ast.parse(source)
        except SyntaxError as err:
            pytest.fail(f"{name}: cell {i} is not valid Python: {err}")
        lines = source.splitlines()
        bare += [
            (i, node.lineno, lines[node.lineno - 1].strip())
            for node in ast.walk(tree)
            if isinstance(node, ast.Assert) and node.msg is None
        ]
    assert not bare, f"{name}: {len(bare)} asserts without a message:\n" + "\n".join(
        f"  cell {i}, line {line}: {text}" for i, line, text in sorted(bare)
    )


def _defined_names(path: Path) -> set[str]:
    """The functions and classes a chapter's code cells define."""
    book = nbformat.read(path, as_version=4)
    names: set[str] = set()
    for cell in book.cells:
        if cell.cell_type == "code":
            tree = ast.parse(_code_lines(cell.source))
            names |= {
                node.name
                for node in ast.walk(tree)
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            }
    return names


def test_no_chapter_redefines_a_shared_name() -> None:
    """Write it once: no two chapters define a function of the same name (a function two
    chapters need lives in zlnotes), and no chapter defines a name zlnotes exports."""
    import zlnotes

    owners: dict[str, list[str]] = {}
    for path in CHAPTERS:
        for name in _defined_names(path):
            owners.setdefault(name, []).append(path.stem[:2])
    shared = {name: where for name, where in owners.items() if len(where) > 1}
    assert not shared, f"functions defined in more than one chapter: {shared}"
    shadowed = sorted(set(owners) & set(zlnotes.__all__))
    assert not shadowed, f"chapters define names that zlnotes exports: {shadowed}"
