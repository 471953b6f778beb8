"""Every chapter runs through papermill with its small test parameters.

Chapters are found by globbing ``chapters/*.ipynb``, so a new chapter is covered as soon as
it exists. Each declares its test parameters in the notebook metadata::

    "metadata": {"zlnotes": {"test_parameters": {"width": 8, "steps": 20}}, ...}

The values are checked against the chapter's ``parameters`` cell first (papermill itself
accepts unknown names and values of any type). The executed copy goes to a temporary
directory; the kernel runs in ``chapters/`` so relative paths such as ``../data/`` work.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import papermill
import pytest

from zlnotes.book import chapters

pytestmark = pytest.mark.notebooks

ROOT = Path(__file__).resolve().parents[2]
CHAPTERS = chapters.find_chapters(root=ROOT)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda path: path.stem)
def test_runs_with_test_parameters(path: Path, tmp_path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    params = nb.metadata.get("zlnotes", {}).get("test_parameters")
    if not isinstance(params, dict):
        pytest.fail(
            f"{path.name}: notebook metadata has no dict zlnotes.test_parameters; add the small "
            'parameters the test should run with, e.g. "zlnotes": {"test_parameters": {"width": 8}}',
            pytrace=False,
        )
    try:
        chapters.check_values(chapters.read_parameters(nb), params)
    except ValueError as exc:
        pytest.fail(f"{path.name}: zlnotes.test_parameters: {exc}", pytrace=False)
    papermill.execute_notebook(
        str(path),
        str(tmp_path / path.name),
        parameters=params,
        kernel_name="python3",
        cwd=str(path.parent),
        progress_bar=False,
        execution_timeout=chapters.CELL_TIMEOUT,
    )
