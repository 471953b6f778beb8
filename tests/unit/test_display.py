"""zlnotes.book.display: the chapters' tables and figure style."""

from __future__ import annotations

import html
import re

import numpy as np
import pytest

from zlnotes.book import FIGURE_WIDTH, TEXT_WIDTH, Table, book_style, fmt_bound


def _cells(table_html: str) -> list[list[str]]:
    rows = re.findall(r"<tr>(.*?)</tr>", table_html)
    return [[html.unescape(c) for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", r)] for r in rows]


def test_html_and_text_carry_the_same_formatted_values():
    rows = [[1, 0.123456, "relu", True], [12, 1e-9, "tanh & co", np.False_]]
    t = Table(rows, ["N", "error", "σ", "fits"], formats={"error": ".2e"})
    cells = _cells(t._repr_html_())
    assert cells[0] == ["N", "error", "σ", "fits"]
    assert cells[1:] == [["1", "1.23e-01", "relu", "yes"], ["12", "1.00e-09", "tanh & co", "no"]]
    text = str(t).splitlines()
    assert text[0].split() == ["N", "error", "σ", "fits"]
    assert text[2].split() == ["12", "1.00e-09", "tanh", "&", "co", "no"]
    assert "&amp;" in t._repr_html_()  # escaped in HTML


def test_numbers_right_aligned_and_marked_numeric():
    t = Table([[1, "a"], [100, "bb"]], ["K", "name"])
    lines = str(t).splitlines()
    assert lines[1].startswith("  1") and lines[2].startswith("100")
    assert '<th class="zl-num">K</th>' in t._repr_html_() and "<th>name</th>" in t._repr_html_()


def test_wide_table_text_is_split_into_blocks_within_text_width():
    columns = ["row"] + [f"quantity {k}" for k in range(12)]
    t = Table([[i] + [np.pi * 10.0**k for k in range(12)] for i in range(3)], columns, caption="x " * 60)
    text = str(t)
    assert max(len(line) for line in text.splitlines()) <= TEXT_WIDTH
    for c in columns:
        assert c in text
    blocks = text.split("\n\n")
    assert len(blocks) >= 2 and all(b.splitlines()[-4].startswith("row") or "row" in b for b in blocks)
    # the HTML keeps one table with every column
    assert len(_cells(t._repr_html_())[0]) == len(columns)


def test_callable_format_and_caption():
    t = Table([[3e-30], [2e-5]], ["misfit"], formats={"misfit": lambda v: fmt_bound(v, 1e-20)}, caption="A & B")
    assert _cells(t._repr_html_())[1:] == [["< 1e-20"], ["2.00e-05"]]
    assert "<caption>A &amp; B</caption>" in t._repr_html_()


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        ({"rows": [[1, 2]], "columns": ["a"]}, ValueError, "rows: row 0 has 2 values for 1 columns"),
        ({"rows": [[1]], "columns": "a"}, TypeError, "columns must be a sequence of strings"),
        ({"rows": [[1]], "columns": []}, ValueError, "columns must name"),
        ({"rows": [[1]], "columns": ["a"], "formats": {"b": ".2f"}}, ValueError, "formats: no column named 'b'"),
        ({"rows": [[1]], "columns": ["a"], "caption": 3}, TypeError, "caption must be a string"),
    ],
)
def test_bad_tables_refused(kwargs, error, words):
    with pytest.raises(error, match=re.escape(words)):
        Table(**kwargs)


def test_fmt_bound():
    assert fmt_bound(-3.21e-7, 1e-20, digits=1) == "-3.2e-07"
    assert fmt_bound(0.0, 1e-20) == "< 1e-20"
    with pytest.raises(ValueError, match="floor must be a positive"):
        fmt_bound(1.0, 0.0)
    with pytest.raises(TypeError, match="value must be a real number"):
        fmt_bound("1", 1e-20)  # type: ignore[arg-type]


def test_book_style_sets_sizes_outside_ipython():
    import matplotlib as mpl

    with mpl.rc_context():
        book_style()
        assert tuple(mpl.rcParams["figure.figsize"])[0] == FIGURE_WIDTH
        assert mpl.rcParams["font.size"] >= 10 and mpl.rcParams["legend.fontsize"] >= 10
        assert mpl.rcParams["xtick.labelsize"] >= 10 and mpl.rcParams["savefig.dpi"] >= 150
