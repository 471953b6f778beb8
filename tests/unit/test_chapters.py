"""Tests of zlnotes.chapters and the `zlnotes` command, on small notebooks made here."""

from __future__ import annotations

import copy
from pathlib import Path

import nbformat
import pytest
from nbclient.exceptions import CellExecutionError
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from zlnotes.book import chapters
from zlnotes.book.chapters import Parameter
from zlnotes.book.cli import main

PARAMS_SOURCE = """\
# comment lines and blank lines are allowed

width: int = 64  # hidden width
lr: float = 1e-2  # learning rate
activation: str = "tanh"
widths: tuple[int, ...] = (2, 4, 8)  # widths to compare
log_scale: bool = True  # plot on a log scale
"""


def make_notebook(params: str = "width: int = 3  # hidden width", *code: str) -> nbformat.NotebookNode:
    """A notebook with a markdown cell, a parameters cell and the given code cells."""
    cells = [new_markdown_cell("# A chapter\n\nSome math: $x^2$."), new_code_cell(params)]
    cells[1].metadata["tags"] = ["parameters"]
    cells += [new_code_cell(source) for source in code]
    return new_notebook(cells=cells)


@pytest.fixture
def book(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A book root with three chapters and a data file; the current directory is the root."""
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: intro\n")
    (tmp_path / "chapters").mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "answer.txt").write_text("42\n")
    for stem in ("02_second", "01_first", "10_tenth"):
        nbformat.write(make_notebook(), tmp_path / "chapters" / f"{stem}.ipynb")
    monkeypatch.chdir(tmp_path)
    return tmp_path


# -- parameters -------------------------------------------------------------------------


def test_parse_parameters_reads_name_type_default_help() -> None:
    assert chapters.parse_parameters(PARAMS_SOURCE) == [
        Parameter("width", "int", 64, "hidden width"),
        Parameter("lr", "float", 0.01, "learning rate"),
        Parameter("activation", "str", "tanh", ""),
        Parameter("widths", "tuple[int, ...]", (2, 4, 8), "widths to compare"),
        Parameter("log_scale", "bool", True, "plot on a log scale"),
    ]


def test_parameter_prints_as_its_line() -> None:
    assert str(Parameter("width", "int", 64, "hidden width")) == "width: int = 64  # hidden width"
    assert str(Parameter("name", "str", "a", "")) == "name: str = 'a'"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("width = 64  # hidden width", "must read `name: type = default  # help`"),
        ("width: int", "must read `name: type = default  # help`"),
        ("import numpy as np", "must read `name: type = default  # help`"),
        ("width: int = 2 ** 6", "must be a Python literal"),
        ("width: int = 6.4", "is not of type int"),
        ("flag: bool = 1", "is not of type bool"),
        ("a: int = 1\na: int = 2", "'a' is defined twice"),
        ("width: int = (", "not valid Python"),
    ],
)
def test_parse_parameters_rejects_bad_lines(source: str, message: str) -> None:
    with pytest.raises(ValueError, match="parameters cell") as info:
        chapters.parse_parameters(source)
    assert message in str(info.value)


def test_bad_line_error_names_the_line() -> None:
    with pytest.raises(ValueError, match=r"line 2 \('seed = 0'\)"):
        chapters.parse_parameters("width: int = 1  # w\nseed = 0\n")


def test_read_parameters_needs_exactly_one_parameters_cell() -> None:
    nb = make_notebook()
    assert chapters.read_parameters(nb) == [Parameter("width", "int", 3, "hidden width")]
    nb.cells[1].metadata["tags"] = []
    with pytest.raises(ValueError, match="exactly one code cell tagged 'parameters'; found 0"):
        chapters.read_parameters(nb)
    nb.cells[1].metadata["tags"] = ["parameters"]
    nb.cells.append(copy.deepcopy(nb.cells[1]))
    with pytest.raises(ValueError, match="found 2"):
        chapters.read_parameters(nb)


def test_check_values() -> None:
    params = chapters.parse_parameters(PARAMS_SOURCE)
    chapters.check_values(params, {"width": 8, "lr": 1, "widths": [2, 3], "log_scale": False})
    with pytest.raises(ValueError, match="unknown parameter 'depth'; parameters are: width, lr"):
        chapters.check_values(params, {"depth": 3})
    with pytest.raises(ValueError, match="parameter 'width' must be of type int; got 8.0"):
        chapters.check_values(params, {"width": 8.0})
    with pytest.raises(ValueError, match="parameter 'width' must be of type int; got True"):
        chapters.check_values(params, {"width": True})
    with pytest.raises(ValueError, match="parameter 'widths' must be of type tuple"):
        chapters.check_values(params, {"widths": 4})


# -- finding chapters -------------------------------------------------------------------


def test_find_root_walks_up(book: Path) -> None:
    assert chapters.find_root(book / "chapters") == book
    with pytest.raises(ValueError, match="is not inside a book"):
        chapters.find_root(book.parent)


def test_find_chapters_by_number_stem_and_path(book: Path) -> None:
    ch = book / "chapters"
    assert chapters.find_chapters() == [ch / "01_first.ipynb", ch / "02_second.ipynb", ch / "10_tenth.ipynb"]
    assert chapters.find_chapters(["1", "01", "10"]) == [
        ch / "01_first.ipynb",
        ch / "01_first.ipynb",
        ch / "10_tenth.ipynb",
    ]
    assert chapters.find_chapters(["02_second"]) == [ch / "02_second.ipynb"]
    assert chapters.find_chapters(["chapters/02_second.ipynb"]) == [ch / "02_second.ipynb"]
    assert chapters.find_chapters(["02_second.ipynb"]) == [ch / "02_second.ipynb"]


def test_find_chapters_rejects_unknown_and_ambiguous_names(book: Path) -> None:
    with pytest.raises(ValueError, match="'3' matches no chapter; chapters are: 01_first, 02_second, 10_tenth"):
        chapters.find_chapters(["3"])
    with pytest.raises(ValueError, match="'first' matches no chapter"):
        chapters.find_chapters(["first"])
    nbformat.write(make_notebook(), book / "chapters" / "1_duplicate.ipynb")
    with pytest.raises(ValueError, match="'1' matches several chapters"):
        chapters.find_chapters(["1"])


# -- normalising ------------------------------------------------------------------------


def test_normalise_strips_volatile_metadata_and_keeps_ids() -> None:
    nb = make_notebook("width: int = 3  # w", "print(width)", "   \n", "x = 1")
    nb.metadata.update(
        papermill={"duration": 1.5},
        execution={"timeout": 10},
        kernelspec={"name": "venv", "display_name": "Python (venv)", "language": "python"},
        language_info={"name": "python", "version": "3.11.7", "mimetype": "text/x-python"},
        zlnotes={"test_parameters": {"width": 2}},
    )
    nb.cells[2].metadata["execution"] = {"iopub.status.busy": "2026-01-01T00:00:00Z"}
    nb.cells[2].metadata["papermill"] = {"status": "completed"}
    injected = new_code_cell("width = 2")
    injected.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(2, injected)
    ids = [cell.id for cell in nb.cells]

    chapters.normalise(nb)

    assert nb.metadata == {
        "kernelspec": chapters.KERNELSPEC,
        "language_info": chapters.LANGUAGE_INFO,
        "zlnotes": {"test_parameters": {"width": 2}},
    }
    assert [cell.source for cell in nb.cells] == [nb.cells[0].source, "width: int = 3  # w", "print(width)", "x = 1"]
    assert [cell.id for cell in nb.cells] == [ids[0], ids[1], ids[3], ids[5]]
    assert all(cell.metadata == {} for cell in nb.cells[2:])
    assert chapters.normalise(copy.deepcopy(nb)) == nb


def test_normalise_gives_missing_ids_deterministically() -> None:
    nb = make_notebook("width: int = 3  # w", "print(width)")
    nb.nbformat_minor = 4
    for cell in nb.cells:
        del cell["id"]
    first, second = chapters.normalise(copy.deepcopy(nb)), chapters.normalise(copy.deepcopy(nb))
    assert first == second
    assert first.nbformat_minor == 5
    assert len({cell.id for cell in first.cells}) == len(first.cells)
    nbformat.validate(first)


# -- executing --------------------------------------------------------------------------

FIGURE = """\
import matplotlib.pyplot as plt
fig, ax = plt.subplots(figsize=(2, 2))
ax.plot([0, 1], [0, width])
plt.show()
"""


def test_execute_notebook_in_place_is_reproducible(book: Path) -> None:
    path = book / "chapters" / "01_first.ipynb"
    nb = make_notebook(
        "width: int = 3  # w", "print(open('../data/answer.txt').read().strip())", "", FIGURE, "width * 2"
    )
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", text="stale\n")]
    nbformat.write(nb, path)

    chapters.execute_notebook(path)
    once = path.read_bytes()
    chapters.execute_notebook(path)

    assert path.read_bytes() == once, "a second execution must not change a byte"
    nb = nbformat.read(path, as_version=4)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert [cell.execution_count for cell in code] == [1, 2, 3, 4]
    assert code[1].outputs[0].text == "42\n"  # ran in chapters/, read ../data/
    assert "image/png" in code[2].outputs[0].data
    assert code[3].outputs[0].data["text/plain"] == "6"
    assert nb.metadata["kernelspec"] == chapters.KERNELSPEC


def test_execute_notebook_leaves_file_unchanged_on_error(book: Path) -> None:
    path = book / "chapters" / "02_second.ipynb"
    nbformat.write(make_notebook("width: int = 3  # w", "raise RuntimeError('boom')"), path)
    before = path.read_bytes()
    with pytest.raises(CellExecutionError, match="boom"):
        chapters.execute_notebook(path)
    assert path.read_bytes() == before


# -- the command ------------------------------------------------------------------------


def test_cli_params(book: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nb = make_notebook(PARAMS_SOURCE)
    nbformat.write(nb, book / "chapters" / "02_second.ipynb")
    assert main(["params", "2"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "width: int = 64  # hidden width",
        "lr: float = 0.01  # learning rate",
        "activation: str = 'tanh'",
        "widths: tuple[int, ...] = (2, 4, 8)  # widths to compare",
        "log_scale: bool = True  # plot on a log scale",
    ]


def test_cli_notebooks(book: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nbformat.write(make_notebook("width: int = 3  # w", "width + 1"), book / "chapters" / "10_tenth.ipynb")
    assert main(["notebooks", "10"]) == 0
    assert "wrote chapters/10_tenth.ipynb in" in capsys.readouterr().out
    nb = nbformat.read(book / "chapters" / "10_tenth.ipynb", as_version=4)
    assert nb.cells[2].outputs[0].data["text/plain"] == "4"

    nbformat.write(make_notebook("width: int = 3  # w", "1 / 0"), book / "chapters" / "10_tenth.ipynb")
    assert main(["notebooks", "10"]) == 1
    assert "ZeroDivisionError" in capsys.readouterr().err


def test_cli_rejects_unknown_chapter(book: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["params", "7"])
    assert info.value.code == 2
    assert "'7' matches no chapter" in capsys.readouterr().err


def test_normalise_merges_split_stream_outputs():
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("print('a b')")
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="a "),
        nbformat.v4.new_output("stream", name="stdout", text="b\n"),
        nbformat.v4.new_output("stream", name="stderr", text="warning\n"),
        nbformat.v4.new_output("stream", name="stdout", text="c\n"),
    ]
    nb.cells = [cell]
    out = chapters.normalise(nb).cells[0].outputs
    assert [(o.name, o.text) for o in out] == [("stdout", "a b\n"), ("stderr", "warning\n"), ("stdout", "c\n")]


# -- zlnotes run ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "annotation, text, expected",
    [
        ("int", "12", 12),
        ("float", "1e-3", 1e-3),
        ("str", "relu", "relu"),
        ("bool", "No", False),
        ("bool", "true", True),
        ("list[int]", "[1, 2, 8]", [1, 2, 8]),
        ("list[int]", "1,2,8", [1, 2, 8]),
        ("list[float]", "0.5, 2", [0.5, 2.0]),
        ("tuple[int, ...]", "(3, 4)", [3, 4]),
    ],
)
def test_parameter_parse(annotation: str, text: str, expected: object) -> None:
    value = Parameter("x", annotation, None, "").parse(text)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize(
    "annotation, text",
    [("int", "abc"), ("int", "1.5"), ("float", "one"), ("bool", "maybe"), ("list[int]", "1,x")],
)
def test_parameter_parse_rejects_mistyped_values(annotation: str, text: str) -> None:
    with pytest.raises(ValueError, match="parameter 'x' must be of type .*could not parse"):
        Parameter("x", annotation, None, "").parse(text)


def test_cli_run_rejects_unknown_and_mistyped(book: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "1", "-p", "widht", "4"])
    assert exit_info.value.code == 2
    assert "unknown parameter 'widht'; parameters are: width" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["run", "1", "-p", "width", "four"])
    assert "parameter 'width' must be of type int; could not parse 'four'" in capsys.readouterr().err
    assert not (book / "runs").exists()  # nothing ran


def test_rerun_page_lists_every_chapter_and_parameter(book: Path) -> None:
    from zlnotes.book.sphinx_rerun import render

    nbformat.write(make_notebook(PARAMS_SOURCE), book / "chapters" / "02_second.ipynb")
    page = render(book)
    assert page.startswith("# Rerun a chapter")
    assert page.count("## A chapter") == 3  # one section per chapter, titled by its first heading
    assert "`.venv/bin/zlnotes run 02 -p NAME VALUE`" in page
    assert "| `lr` | `float` | `0.01` | learning rate |" in page
    assert "| `widths` | `tuple[int, ...]` | `(2, 4, 8)` | widths to compare |" in page
