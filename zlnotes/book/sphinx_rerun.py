"""Sphinx extension: the "Rerun a chapter" page, and the one-page builds of ``zlnotes run``.

On ``config-inited`` (before Sphinx looks for source files) it writes ``rerun.md`` in the
book's root: for every chapter, its title, the command that reruns it, and a table of its
parameters (name, type, default, help) read from the cell tagged ``parameters``. The page is
never edited by hand and is not committed (``.gitignore``); it is as current as the chapters.

In the one-page build of a run (:func:`zlnotes.book.chapters.render_run`, which sets
``zlnotes_run_root`` and ``zlnotes_run_docname``) no other page of the book exists, so a
``{doc}`` reference to one would print its bare path. There, such references resolve to the
page's title, linked to the built book (``_build/html``) when it exists, and plain text
otherwise.
"""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Any

import nbformat
from docutils import nodes

from . import chapters

PAGE = "rerun.md"
_TITLE = "Rerun a chapter"


def _title(nb: nbformat.NotebookNode, fallback: str) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return fallback


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render(root: Path) -> str:
    """The Markdown of the page for the book at ``root``."""
    lines = [
        f"# {_TITLE}",
        "",
        "Every chapter opens with a cell tagged `parameters`. Rerun a chapter with other values",
        "(the values are checked against the table below before anything runs, and the",
        "chapter's own `assert`s check its claims at the new values):",
        "",
        "```bash",
        ".venv/bin/zlnotes run NN -p NAME VALUE -p NAME VALUE",
        "```",
        "",
        "The run is rendered as a page of this book, with the parameters that differ from the",
        "defaults listed at its top; the command prints the path of the page (`runs/NAME.html`,",
        "beside the executed notebook `runs/NAME.ipynb`). A run in which an `assert` fails is",
        "kept as `runs/NAME-FAILED.html`, whose page shows the cell that failed (`In [N]`, as",
        "Jupyter numbers it) and the message of its `assert`; an interrupted run is kept as",
        "`runs/NAME-INTERRUPTED.html`. Neither replaces a complete run.",
        "",
        "Integers and floats are written plainly (`-3`, `1e-3`); lists take `1,2,8`, `-1,0` or",
        "`[1, 2, 8]`; booleans take `true` or `false`; each parameter is given once.",
        "`.venv/bin/zlnotes params NN` prints the same table in the terminal.",
        "This page is generated from the chapters when the book is built.",
        "",
    ]
    for path in chapters.find_chapters(root=root):
        nb = nbformat.read(path, as_version=4)
        number = path.stem.split("_", 1)[0]
        lines += [f"## {_title(nb, path.stem)}", "", f"{{doc}}`Read the chapter <chapters/{path.stem}>` ·"
                  f" `.venv/bin/zlnotes run {number} -p NAME VALUE`", ""]
        params = chapters.read_parameters(nb)
        lines += ["| parameter | type | default | meaning |", "|---|---|---|---|"]
        lines += [f"| `{p.name}` | `{_cell(p.type)}` | `{_cell(repr(p.default))}` | {_cell(p.help)} |" for p in params]
        lines.append("")
    return "\n".join(lines)


def _write(app: Any, config: Any) -> None:
    root = Path(app.srcdir)
    if not (root / "chapters").is_dir():  # not the book (e.g. the one-page build of a run)
        return
    target = root / PAGE
    text = render(root)
    if not target.exists() or target.read_text(encoding="utf-8") != text:
        target.write_text(text, encoding="utf-8")


def _page_title(source: Path) -> str | None:
    if source.suffix == ".ipynb":
        try:
            return _title(nbformat.read(source, as_version=4), "") or None
        except Exception:
            return None
    for line in source.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return None


def _resolve_book_page(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    """``missing-reference`` in a run's one-page build: a ``{doc}`` to another page of the book."""
    root_text, docname = app.config.zlnotes_run_root, app.config.zlnotes_run_docname
    if not root_text or node.get("reftype") != "doc":
        return None
    target = node["reftarget"]
    if target.startswith("/"):
        target = target[1:]
    else:
        target = posixpath.normpath(posixpath.join(posixpath.dirname(docname), target))
    root = Path(root_text)
    source = next((root / f"{target}{ext}" for ext in (".md", ".ipynb") if (root / f"{target}{ext}").is_file()), None)
    if source is None and target != PAGE.removesuffix(".md"):  # this page is written at build time
        return None
    title = _TITLE if source is None else (_page_title(source) or target)
    text = contnode.astext() if node.get("refexplicit") else title
    if target == docname:
        return nodes.reference("", text, internal=True, refuri="#")
    built = root / "_build" / "html" / f"{target}.html"
    if built.is_file():
        return nodes.reference("", text, internal=False, refuri=built.as_uri())
    return nodes.inline(text, text, classes=["zlnotes-book-page"])


def setup(app: Any) -> dict[str, Any]:
    """Register the extension with Sphinx."""
    app.add_config_value("zlnotes_run_root", "", "env", [str])
    app.add_config_value("zlnotes_run_docname", "", "env", [str])
    app.connect("config-inited", _write, priority=100)  # before sphinx-external-toc reads _toc.yml
    app.connect("missing-reference", _resolve_book_page)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
