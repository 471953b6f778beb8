"""Sphinx extension: write the "Rerun a chapter" page from the chapters' parameters cells.

On ``config-inited`` (before Sphinx looks for source files) it writes ``rerun.md`` in the
book's root: for every chapter, its title, the command that reruns it, and a table of its
parameters (name, type, default, help) read from the cell tagged ``parameters``. The page is
never edited by hand and is not committed (``.gitignore``); it is as current as the chapters.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat

from . import chapters

PAGE = "rerun.md"


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
        "# Rerun a chapter",
        "",
        "Every chapter opens with a cell tagged `parameters`. Rerun a chapter with other values",
        "(the values are checked against the table below before anything runs; the executed",
        "copy and its HTML render go to `runs/`, and the chapter's own `assert`s check its claims",
        "at the new values):",
        "",
        "```bash",
        ".venv/bin/zlnotes run NN -p NAME VALUE -p NAME VALUE",
        "```",
        "",
        "Lists take `1,2,8` or `[1, 2, 8]`; booleans take `true` or `false`.",
        "`.venv/bin/zlnotes params NN` prints the same table in the terminal.",
        "This page is generated from the chapters when the book is built.",
        "",
    ]
    for path in chapters.find_chapters(root=root):
        nb = nbformat.read(path, as_version=4)
        number = path.stem.split("_", 1)[0]
        lines += [f"## {_title(nb, path.stem)}", "", f"{{doc}}`Read the chapter <chapters/{path.stem}>` ·"
                  f" `zlnotes run {number} -p NAME VALUE`", ""]
        params = chapters.read_parameters(nb)
        lines += ["| parameter | type | default | meaning |", "|---|---|---|---|"]
        lines += [f"| `{p.name}` | `{_cell(p.type)}` | `{_cell(repr(p.default))}` | {_cell(p.help)} |" for p in params]
        lines.append("")
    return "\n".join(lines)


def _write(app: Any, config: Any) -> None:
    root = Path(app.srcdir)
    target = root / PAGE
    text = render(root)
    if not target.exists() or target.read_text(encoding="utf-8") != text:
        target.write_text(text, encoding="utf-8")


def setup(app: Any) -> dict[str, Any]:
    """Register the extension with Sphinx."""
    app.connect("config-inited", _write, priority=100)  # before sphinx-external-toc reads _toc.yml
    return {"parallel_read_safe": True, "parallel_write_safe": True}
