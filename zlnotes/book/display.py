"""How the chapters show their results: figures readable at the size shown, tables in HTML.

Two pieces, used by every chapter's setup cell:

- :func:`book_style` sets matplotlib's fonts and sizes so that a figure of the default width
  displays at its natural size in the book's text column (672 px), with 11 pt text, and
  makes the notebook store each figure as a PNG at twice that resolution (192 dpi);
- :class:`Table` is a table of results that renders as an HTML table in the book and in
  Jupyter, and as aligned plain text (no line over :data:`TEXT_WIDTH` characters) in a
  terminal, in ``nbval``'s comparison and in the stored ``text/plain`` output.

Numbers in a table are formatted by the table, one rule per column, so that a chapter prints
each number at the precision its computation supports and the book shows it the same way.
"""

from __future__ import annotations

import html
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["FIGURE_WIDTH", "TEXT_WIDTH", "Table", "book_style", "fmt_bound"]

#: Width in inches of a one-panel figure: at 96 CSS pixels per inch it fills the book's text
#: column (672 px of the 676 px it has on a 1280 px screen) without being scaled, so its 11 pt text displays at 11 pt.
FIGURE_WIDTH = 7.0

#: Widest line, in characters, of a table's plain-text form (wider tables are split into
#: blocks of columns, each repeating the first column).
TEXT_WIDTH = 80

_RC: dict[str, Any] = {
    "figure.figsize": (FIGURE_WIDTH, 4.2),
    "figure.dpi": 96,
    "savefig.dpi": 192,
    "font.size": 11,
    "axes.titlesize": 11.5,
    "axes.labelsize": 11,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "legend.fontsize": 10,
    "legend.title_fontsize": 10,
    "figure.titlesize": 12,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "figure.constrained_layout.use": True,
}


def book_style() -> None:
    """Set the book's figure style and store figures as PNG at 192 dpi (``retina``).

    Call it once, in a chapter's setup cell, after ``import matplotlib.pyplot``. The PNG is
    stored with its display size in the notebook's metadata, so Jupyter and the book show it
    at :data:`FIGURE_WIDTH` inches (96 px per inch) whatever its pixel count. Outside IPython
    only the matplotlib settings apply.
    """
    import matplotlib as mpl

    rc: Any = mpl.rcParams  # typed with a literal key set that this dict's str keys do not match
    rc.update(_RC)
    try:
        from IPython import get_ipython
        from matplotlib_inline.backend_inline import set_matplotlib_formats
    except ImportError:  # pragma: no cover - the book extra installs both
        return
    if get_ipython() is not None:
        set_matplotlib_formats("retina", bbox_inches=None)  # constrained layout fits the figure
        # the inline backend applies its own rc on each figure: keep the book's
        rc.update(_RC)


def fmt_bound(value: float, floor: float, digits: int = 2) -> str:
    """``f"{value:.{digits}e}"``, or ``f"< {floor:.0e}"`` when ``|value| < floor``.

    For a quantity whose computed value below ``floor`` is rounding, not signal.

    Examples
    --------
    >>> fmt_bound(3.2e-7, 1e-20)
    '3.20e-07'
    >>> fmt_bound(2.0e-28, 1e-20)
    '< 1e-20'
    """
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"value must be a real number; got {type(value).__name__}")
    if not isinstance(floor, numbers.Real) or isinstance(floor, bool) or not floor > 0:
        raise ValueError(f"floor must be a positive real number; got {floor!r}")
    return f"< {floor:.0e}" if abs(value) < floor else f"{value:.{digits}e}"


Format = str | Callable[[Any], str]


def _format(value: Any, rule: Format | None) -> str:
    if callable(rule):
        return str(rule(value))
    if rule is not None:
        return format(value, rule)
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return "nan" if math.isnan(value) else f"{float(value):.3g}"
    return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Number) and not isinstance(value, (bool, np.bool_))


class Table:
    """A table of results: HTML in the book and in Jupyter, aligned text elsewhere.

    Parameters
    ----------
    rows
        The rows, each a sequence of values, one per column.
    columns
        The column headers (plain text; Unicode such as ``σ`` or ``λ`` is fine).
    formats
        How to format the values: a mapping from column header to a format spec
        (``".3e"``) or a function of the value returning a string. Columns not named use
        the default: integers as they are, booleans as yes/no, other reals with ``.3g``,
        anything else with ``str``.
    caption
        A sentence shown above the table.

    Examples
    --------
    >>> t = Table([[1, 0.5, True], [2, 0.25, False]], ["depth", "cost", "fits"],
    ...           formats={"cost": ".2f"})
    >>> print(t)
    depth  cost  fits
        1  0.50  yes
        2  0.25  no
    >>> "<table" in t._repr_html_()
    True
    """

    def __init__(
        self,
        rows: Sequence[Sequence[Any]],
        columns: Sequence[str],
        *,
        formats: Mapping[str, Format] | None = None,
        caption: str | None = None,
    ) -> None:
        if isinstance(columns, str) or not all(isinstance(c, str) for c in columns):
            raise TypeError("columns must be a sequence of strings")
        if not columns:
            raise ValueError("columns must name at least one column")
        rows = [list(r) for r in rows]
        for i, row in enumerate(rows):
            if len(row) != len(columns):
                raise ValueError(f"rows: row {i} has {len(row)} values for {len(columns)} columns")
        formats = dict(formats or {})
        unknown = set(formats) - set(columns)
        if unknown:
            raise ValueError(f"formats: no column named {sorted(unknown)[0]!r}; the columns are {list(columns)}")
        if caption is not None and not isinstance(caption, str):
            raise TypeError(f"caption must be a string; got {type(caption).__name__}")
        self.columns = list(columns)
        self.caption = caption
        self.cells = [[_format(v, formats.get(c)) for v, c in zip(row, self.columns)] for row in rows]
        self.numeric = [all(_is_number(r[j]) for r in rows) and bool(rows) for j in range(len(columns))]

    # -- plain text ---------------------------------------------------------------------------
    def _blocks(self) -> list[list[int]]:
        """Column indices of each block of the text form, each block at most TEXT_WIDTH wide."""
        widths = [max([len(c)] + [len(r[j]) for r in self.cells]) for j, c in enumerate(self.columns)]
        blocks: list[list[int]] = []
        current = [0]
        used = widths[0]
        for j in range(1, len(widths)):
            if used + 2 + widths[j] > TEXT_WIDTH:
                blocks.append(current)
                current, used = [0, j], widths[0] + 2 + widths[j]
            else:
                current.append(j)
                used += 2 + widths[j]
        blocks.append(current)
        return blocks

    def __str__(self) -> str:
        widths = [max([len(c)] + [len(r[j]) for r in self.cells]) for j, c in enumerate(self.columns)]

        def line(values: list[str], block: list[int]) -> str:
            parts = []
            for j in block:
                parts.append(values[j].rjust(widths[j]) if self.numeric[j] else values[j].ljust(widths[j]))
            return "  ".join(parts).rstrip()

        out = []
        if self.caption:
            import textwrap

            out += textwrap.wrap(self.caption, TEXT_WIDTH)
        for k, block in enumerate(self._blocks()):
            if k:
                out.append("")
            out.append(line(self.columns, block))
            out += [line(r, block) for r in self.cells]
        return "\n".join(out)

    def __repr__(self) -> str:
        return str(self)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:  # IPython's text/plain
        p.text(str(self))

    # -- HTML -----------------------------------------------------------------------------------
    def _repr_html_(self) -> str:
        def cell(tag: str, text: str, numeric: bool) -> str:
            cls = ' class="zl-num"' if numeric else ""
            return f"<{tag}{cls}>{html.escape(text)}</{tag}>"

        head = "".join(cell("th", c, self.numeric[j]) for j, c in enumerate(self.columns))
        body = "".join(
            "<tr>" + "".join(cell("td", v, self.numeric[j]) for j, v in enumerate(r)) + "</tr>" for r in self.cells
        )
        caption = f"<caption>{html.escape(self.caption)}</caption>" if self.caption else ""
        return f'<table class="zl-table">{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
