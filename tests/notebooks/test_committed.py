"""Every chapter is committed exactly as ``make notebooks`` writes it, and is in the book.

That is: executed top to bottom in one fresh kernel (execution counts 1..n, no error
outputs), opening with a parseable ``parameters`` cell, with normalised metadata, and
listed in ``_toc.yml`` (the book builds only the files listed there, silently). nbval then
checks that the committed outputs are what the current code produces.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import nbformat
import pytest

from zlnotes.book import chapters

pytestmark = pytest.mark.notebooks

ROOT = Path(__file__).resolve().parents[2]
CHAPTERS = chapters.find_chapters(root=ROOT)
FIX = "re-execute it with `make notebooks CHAPTERS={}` and commit the result"


@pytest.fixture(params=CHAPTERS, ids=lambda path: path.stem)
def chapter(request: pytest.FixtureRequest) -> tuple[str, nbformat.NotebookNode]:
    path = request.param
    return path.name, nbformat.read(path, as_version=4)


def test_there_are_chapters() -> None:
    assert CHAPTERS, f"no chapters/*.ipynb under {ROOT}"


def test_listed_in_toc(chapter: tuple[str, nbformat.NotebookNode]) -> None:
    name, _ = chapter
    entry = f"chapters/{Path(name).stem}"
    listed = re.search(rf"^\s*-?\s*file:\s*{re.escape(entry)}(\.ipynb)?\s*$", (ROOT / "_toc.yml").read_text(), re.M)
    assert listed, f"{name}: add `- file: {entry}` to _toc.yml"


def test_valid_notebook(chapter: tuple[str, nbformat.NotebookNode]) -> None:
    _, nb = chapter
    nbformat.validate(nb)


def test_executed_top_to_bottom(chapter: tuple[str, nbformat.NotebookNode]) -> None:
    name, nb = chapter
    code = [(i, cell) for i, cell in enumerate(nb.cells) if cell.cell_type == "code"]
    for expected, (index, cell) in enumerate(code, start=1):
        assert cell.execution_count == expected, (
            f"{name}: cell {index} has execution count {cell.execution_count}, expected {expected}; "
            + FIX.format(Path(name).stem)
        )
        for output in cell.outputs:
            assert output.output_type != "error", f"{name}: cell {index} has an error output ({output.ename})"
            if output.output_type == "execute_result":
                assert output.execution_count == expected, f"{name}: cell {index} has a stale result"


def test_opens_with_parameters_cell(chapter: tuple[str, nbformat.NotebookNode]) -> None:
    name, nb = chapter
    first_code = next((cell for cell in nb.cells if cell.cell_type == "code"), None)
    assert first_code is not None and "parameters" in first_code.metadata.get("tags", []), (
        f"{name}: the first code cell must be tagged 'parameters'"
    )
    params = chapters.read_parameters(nb)
    assert params, f"{name}: the parameters cell declares no parameter"
    undocumented = [p.name for p in params if not p.help]
    assert not undocumented, f"{name}: parameters without a `# help` comment: {undocumented}"


def test_papermill_reads_every_parameter(chapter: tuple[str, nbformat.NotebookNode]) -> None:
    """papermill's own inspector (``papermill --help-notebook``) parses every line of the cell.

    It gives up, with a warning on every run, on a line whose comment contains ``=``.
    """
    from papermill.translators import PythonTranslator

    name, nb = chapter
    cell = next(cell for cell in nb.cells if "parameters" in cell.metadata.get("tags", []))
    seen = {p.name for p in PythonTranslator.inspect(cell)}
    missed = [p.name for p in chapters.read_parameters(nb) if p.name not in seen]
    assert not missed, f"{name}: papermill cannot parse the lines of {missed}; write their comments without '='"


def test_metadata_normalised(chapter: tuple[str, nbformat.NotebookNode]) -> None:
    name, nb = chapter
    assert chapters.normalise(copy.deepcopy(nb)) == nb, (
        f"{name}: metadata is not normalised (kernelspec, language_info, timestamps, cell ids); "
        + FIX.format(Path(name).stem)
    )
