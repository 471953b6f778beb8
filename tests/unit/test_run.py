"""Tests of `zlnotes run`: strict parameters, output names, the rendered page, failed and interrupted runs.

Each test runs a tiny chapter in a temporary book (the book's own _config.yml, a small .bib);
one test, marked ``notebooks``, runs a real chapter.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from html import unescape
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from zlnotes.book import chapters
from zlnotes.book.chapters import Parameter
from zlnotes.book.cli import _pair_params, main

ROOT = Path(__file__).parents[2]
BIB = """@article{doe2020,
  title = {A result on widths},
  author = {Doe, Jane},
  journal = {J. Results},
  year = {2020},
}
"""
TEXT = """\
# A tiny chapter

The cost is $C = \\tfrac12 |x|^2$, as in {cite:t}`doe2020`; the symbols are on {doc}`../notation`.

:::{prf:lemma} Width
:label: lem-width

Every width $w$ satisfies $w \\ge 1$.
:::
"""
PARAMS = "width: int = 3  # hidden width\nwidths: list[int] = [1, 2]  # widths compared\nratio: float = 0.5  # a ratio"
CHECK = 'assert width < 10, f"width {width} is too wide: the lemma needs width < 10"'


def write_chapter(path: Path, *code: str) -> None:
    """A chapter: title and markup, a parameters cell, then the code cells."""
    cells = [new_markdown_cell(TEXT), new_code_cell(PARAMS)]
    cells[1].metadata["tags"] = ["parameters"]
    cells += [new_code_cell(source) for source in code]
    nbformat.write(new_notebook(cells=cells), path)


@pytest.fixture
def book(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A book root (the book's _config.yml) with chapter 01; the current directory is the root."""
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: intro\n")
    (tmp_path / "_config.yml").write_text((ROOT / "_config.yml").read_text())
    (tmp_path / "references.bib").write_text(BIB)
    (tmp_path / "notation.md").write_text("# Notation and conventions\n\nSymbols.\n")
    (tmp_path / "chapters").mkdir()
    write_chapter(tmp_path / "chapters" / "01_tiny.ipynb", "print(width * 2)", CHECK, "print(sum(widths))")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def visible_text(html: str) -> str:
    html = re.sub(r"<(script|style|title)\b.*?</\1>", "", html, flags=re.S)
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


# -- parameters: strict parsing --------------------------------------------------------


@pytest.mark.parametrize(
    "annotation, text",
    [
        ("int", "4_0"),
        ("int", "1e3"),
        ("int", "0x10"),
        ("float", "1_000.5"),
        ("float", "nan"),
        ("float", "-inf"),
        ("list[int]", "1_0,2"),
        ("list[int]", "1,,2"),
        ("list[float]", "0.5,nan"),
    ],
)
def test_parse_rejects_loose_numbers(annotation: str, text: str) -> None:
    with pytest.raises(ValueError, match="parameter 'x' must be"):
        Parameter("x", annotation, 1.0, "").parse(text)


@pytest.mark.parametrize(
    "annotation, default, text, expected",
    [
        ("int", 1, "-4", -4),
        ("float", 1.0, "-2.5e-3", -2.5e-3),
        ("list[int]", [1], "-1,0", [-1, 0]),
        ("list[int]", [1], "[-1, 0]", [-1, 0]),
        ("list[int]", [1], "[]", []),
        ("tuple[float, ...]", (1.0,), "(0.5,)", [0.5]),
        ("list[str]", ["a"], "relu, 'tanh'", ["relu", "tanh"]),
    ],
)
def test_parse_accepts_negative_numbers_and_lists(
    annotation: str, default: object, text: str, expected: object
) -> None:
    assert Parameter("x", annotation, default, "").parse(text) == expected


def test_parse_accepts_nan_and_inf_only_where_the_default_is_one() -> None:
    assert Parameter("tol", "float", float("inf"), "").parse("inf") == float("inf")
    value = Parameter("tol", "float", float("nan"), "").parse("NaN")
    assert value != value
    with pytest.raises(ValueError, match="must be a finite float; got 'inf'"):
        Parameter("tol", "float", 1e-3, "").parse("inf")


def test_parse_refuses_text_that_is_not_utf8() -> None:
    invalid = b"re\xfflu".decode("utf-8", "surrogateescape")  # what Python makes of an invalid byte in argv
    with pytest.raises(ValueError, match="parameter 'activation' must be valid UTF-8 text"):
        Parameter("activation", "str", "tanh", "").parse(invalid)


def test_pair_params_keeps_values_that_start_with_a_dash() -> None:
    paired = _pair_params(["run", "1", "-p", "widths", "-1,0", "--timeout", "5"])
    assert paired[:2] == ["run", "1"] and paired[3:] == ["--timeout", "5"]
    assert _pair_params(["params", "-p"]) == ["params", "-p"]  # only `run` is rewritten
    assert _pair_params(["run", "1", "-p", "width"]) == ["run", "1", "-p", "width"]  # argparse reports it


def test_cli_run_refuses_bad_arguments_before_running(book: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = [
        (["-p", "width", "4_0"], "parameter 'width' must be of type int; could not parse '4_0'"),
        (["-p", "width", "4", "-p", "width", "5"], "parameter 'width' is given twice (-p width 4 and -p width 5)"),
        (["-p", "ratio", "nan"], "parameter 'ratio' must be a finite float; got 'nan'"),
        (["--timeout", "0"], "argument --timeout: must be a positive whole number of seconds; got '0'"),
        (["--timeout", "-1"], "must be a positive whole number of seconds; got '-1'"),
        (["-p", "width"], "argument -p/--param: expected 2 arguments"),
    ]
    for extra, message in cases:
        with pytest.raises(SystemExit) as info:
            main(["run", "1", *extra])
        assert info.value.code == 2
        assert message in capsys.readouterr().err, extra
    assert not (book / "runs").exists()  # nothing ran


def test_cli_run_refuses_a_notebook_outside_chapters(book: Path, capsys: pytest.CaptureFixture[str]) -> None:
    outside = book / "elsewhere.ipynb"
    write_chapter(outside, "print(1)")
    (book / "chapters" / "02_link.ipynb").symlink_to(outside)
    for name in (str(outside), "chapters/02_link.ipynb"):
        with pytest.raises(SystemExit) as info:
            main(["run", name])
        assert info.value.code == 2
        assert "is not in the book's chapters/ folder" in capsys.readouterr().err
    assert not (book / "runs").exists()


def test_cli_run_output_folder_errors_are_one_line(book: Path, capfd: pytest.CaptureFixture[str]) -> None:
    a_file = book / "taken"
    a_file.write_text("keep me\n")
    for out in (a_file, a_file / "sub"):
        assert main(["run", "1", "--out", str(out)]) == 1
        err = capfd.readouterr().err
        assert err.count("\n") == 1 and err.startswith("zlnotes run: ") and "is a file" in err, err
    assert a_file.read_text() == "keep me\n"
    assert not (book / "runs").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only folder")
def test_cli_run_read_only_output_folder(book: Path, capfd: pytest.CaptureFixture[str]) -> None:
    locked = book / "locked"
    locked.mkdir(mode=0o555)
    for out in (locked, locked / "sub"):
        assert main(["run", "1", "--out", str(out)]) == 1
        err = capfd.readouterr().err
        assert err.count("\n") == 1 and "not writable" in err, err
    assert list(locked.iterdir()) == []


def test_run_names_are_unique_per_parameter_set() -> None:
    path = "chapters/05_x.ipynb"
    names = {chapters.run_name(path, values) for values in ({"a": "relu"}, {"a": "re lu"}, {"a": "re/lu"}, {})}
    assert len(names) == 4
    assert chapters.run_name(path, {"a": "relu", "b": 1}) == chapters.run_name(path, {"b": 1, "a": "relu"})
    assert chapters.run_name(path, {"a": "relu"}).startswith("05_x-a-relu-")
    assert chapters.run_name(path, {}) == "05_x-defaults"


def test_failure_message_names_the_failed_assert() -> None:
    assert chapters.failure_message("AssertionError", "rank 3 < 4") == "AssertionError: rank 3 < 4"
    traceback = ["\x1b[0;31m----> 2\x1b[0m \x1b[38;5;28;01massert\x1b[39;00m width \x1b[38;5;241m<\x1b[39m 10"]
    expected = "AssertionError (no message) at: assert width < 10"
    assert chapters.failure_message("AssertionError", "", traceback) == expected


# -- a complete run --------------------------------------------------------------------


def test_cli_run_renders_the_run_as_a_book_page(book: Path, capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "01", "-p", "width", "7", "-p", "widths", "-1,0"]) == 0
    out, err = capfd.readouterr()
    name = chapters.run_name("01_tiny", {"width": 7, "widths": [-1, 0]})
    executed, page = book / "runs" / f"{name}.ipynb", book / "runs" / f"{name}.html"
    assert f"executed notebook: {executed}\npage:              {page}\n" in out
    assert "without encryption" not in err  # the kernel talks over IPC, not TCP
    assert sorted(p.name for p in (book / "runs").iterdir()) == sorted([executed.name, page.name, "_static"])

    nb = nbformat.read(executed, as_version=4)
    outputs = ["".join(o.get("text", "")) for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert "14\n" in outputs and "-1\n" in outputs
    html = page.read_text()
    text = visible_text(html)
    # the header: parameters that differ from the defaults, with value and default
    assert "parameter value in this run default width 7 3 widths -1,0 1,2" in text
    assert "ratio" not in text.split("Command:")[0]  # a default value is not listed
    assert "Command: .venv/bin/zlnotes run 01 -p width 7 -p widths -1,0" in text
    # book markup rendered, none left raw; math by the offline MathJax beside the page
    assert '<div class="proof lemma admonition" id="lem-width">' in html
    assert re.search(r"Doe \[ ?2020 ?\]", text) and "A result on widths" in text  # citation and its reference
    assert "Notation and conventions" in text  # {doc} to another page: its title
    for raw in ("{prf:", "{cite", "{doc}", ":::", ":label:"):
        assert raw not in text, raw
    assert re.search(r'<script[^>]+src="_static/mathjax/tex-chtml\.js', html)
    assert not re.search(r'<(script|link)[^>]+(src|href)="(https?:)?//', html)  # no CDN
    assert (book / "runs" / "_static" / "mathjax" / "tex-chtml.js").is_file()
    assert r"\(C = \tfrac12 |x|^2\)" in html
    # the chapter itself is untouched
    chapter = nbformat.read(book / "chapters" / "01_tiny.ipynb", as_version=4)
    assert all(c.get("outputs", []) == [] for c in chapter.cells if c.cell_type == "code")


# -- failed and interrupted runs --------------------------------------------------------


def test_cli_run_failed_run_page_and_no_overwrite(book: Path, capfd: pytest.CaptureFixture[str]) -> None:
    runs = book / "runs"
    name = chapters.run_name("01_tiny", {"width": 12})
    # a complete run with these values, then the chapter changes and the same run fails
    write_chapter(book / "chapters" / "01_tiny.ipynb", "print(width * 2)")
    assert main(["run", "1", "-p", "width", "12"]) == 0
    complete = {p: (runs / p).read_bytes() for p in (f"{name}.ipynb", f"{name}.html")}
    capfd.readouterr()
    write_chapter(book / "chapters" / "01_tiny.ipynb", "print(width * 2)", CHECK, "print('after')")

    assert main(["run", "1", "-p", "width", "12"]) == 1
    out, err = capfd.readouterr()
    failed_page, failed_nb = runs / f"{name}-FAILED.html", runs / f"{name}-FAILED.ipynb"
    message = "AssertionError: width 12 is too wide: the lemma needs width < 10"
    # parameters cell In [1], papermill's injected parameters In [2], the print In [3]
    assert f"the run failed: In [4]: {message}\n" in err
    assert f"page:              {failed_page}\n" in err and failed_page.is_file()
    assert {p: (runs / p).read_bytes() for p in complete} == complete  # the complete run is kept
    text = visible_text(failed_page.read_text())
    assert text.index("A tiny chapter") < text.index("This run failed") < text.index("The cost is")
    assert f"This run failed at In [4]: {message}" in text
    assert f"The run stopped here, at In [4]: {message}" in text
    assert "Go to the cell." in text and 'id="zlnotes-failed-cell"' in failed_page.read_text()
    nb = nbformat.read(failed_nb, as_version=4)
    assert not any("after" in "".join(o.get("text", "")) for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert not list(runs.glob(".*partial*"))  # no temporary left

    # the chapter fixed: the next complete run replaces the old one and clears the failure
    write_chapter(book / "chapters" / "01_tiny.ipynb", "print(width * 3)")
    assert main(["run", "1", "-p", "width", "12"]) == 0
    assert not failed_page.exists() and not failed_nb.exists()
    assert "36" in (runs / f"{name}.html").read_text()


def test_run_without_assert_message_shows_the_statement(book: Path, capfd: pytest.CaptureFixture[str]) -> None:
    path = book / "chapters" / "01_tiny.ipynb"
    write_chapter(path, "assert width < 10")
    nb = nbformat.read(path, as_version=4)
    nb.cells[-1].metadata["tags"] = ["hide-input"]  # folded in the book; a failed run shows it
    nbformat.write(nb, path)
    assert main(["run", "1", "-p", "width", "12", "--out", "out"]) == 1
    assert "the run failed: In [3]: AssertionError (no message) at: assert width < 10" in capfd.readouterr().err
    failed = nbformat.read(next((book / "out").glob("*-FAILED.ipynb")), as_version=4)
    cell = next(c for c in failed.cells if c.get("execution_count") == 3)
    assert cell.source == "assert width < 10" and cell.metadata["tags"] == []


def test_interrupted_run_is_kept_under_its_own_name(book: Path) -> None:
    started = book / "started"
    write_chapter(
        book / "chapters" / "01_tiny.ipynb",
        f"import os, pathlib, time\npathlib.Path({str(started)!r}).write_text(str(os.getpid()))\ntime.sleep(120)",
    )
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "zlnotes.book.cli", "run", "1", "-p", "width", "5"],
        cwd=book, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 60
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert started.exists(), "the kernel did not start"
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 128 + signal.SIGTERM, err
    name = chapters.run_name("01_tiny", {"width": 5})
    runs = book / "runs"
    assert not (runs / f"{name}.ipynb").exists() and not (runs / f"{name}.html").exists()
    page = runs / f"{name}-INTERRUPTED.html"
    assert f"page:              {page}" in err
    assert "This run was interrupted (SIGTERM) while running In [3]." in visible_text(page.read_text())
    assert not list(runs.glob(".*partial*"))
    kernel = int(started.read_text())
    for _ in range(50):  # the kernel is gone with the run
        try:
            os.kill(kernel, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"kernel {kernel} still runs")


def test_rerun_page_is_not_written_outside_the_book(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from zlnotes.book.sphinx_rerun import _write

    _write(SimpleNamespace(srcdir=str(tmp_path)), None)
    assert not (tmp_path / "rerun.md").exists()


@pytest.mark.notebooks
def test_real_chapter_negative_list_reaches_the_chapter(capfd: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """`-p sweep_widths -1,0` gets past argparse, and chapter 01's own check refuses it."""
    status = main(["run", str(ROOT / "chapters" / "01_networks_cost_jacobian.ipynb"), "-p", "sweep_widths", "-1,0",
                   "--out", str(tmp_path)])
    err = capfd.readouterr().err
    assert status == 1
    failed = re.search(r"^the run failed: In \[(\d+)\]: (\w+Error): (.+)$", err, re.M)
    assert failed, err
    page = next(tmp_path.glob("*-FAILED.html"))
    assert f"page:              {page}" in err
    assert f"In [{failed[1]}]" in visible_text(page.read_text())


def test_run_build_resolves_references_to_other_book_pages(book: Path) -> None:
    from types import SimpleNamespace

    from docutils import nodes

    from zlnotes.book.sphinx_rerun import _resolve_book_page

    config = SimpleNamespace(zlnotes_run_root=str(book), zlnotes_run_docname="chapters/01_tiny")
    app = SimpleNamespace(config=config)

    def resolve(target: str, explicit: str = "") -> object:
        node = {"reftype": "doc", "reftarget": target, "refexplicit": bool(explicit)}
        return _resolve_book_page(app, None, node, nodes.Text(explicit or target))

    assert resolve("../notation").astext() == "Notation and conventions"  # type: ignore[attr-defined]
    assert resolve("/rerun").astext() == "Rerun a chapter"  # type: ignore[attr-defined]
    assert resolve("01_tiny")["refuri"] == "#"  # type: ignore[index]
    assert resolve("../notation", "the symbols").astext() == "the symbols"  # type: ignore[attr-defined]
    assert resolve("02_missing") is None  # Sphinx warns as usual
    (book / "_build" / "html").mkdir(parents=True)
    (book / "_build" / "html" / "notation.html").write_text("<html></html>")
    assert resolve("../notation")["refuri"] == (book / "_build" / "html" / "notation.html").as_uri()  # type: ignore[index]
