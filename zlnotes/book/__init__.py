"""The book's own layer: what only *Zero loss and the training Jacobian* needs.

- :mod:`.chapters`: finding, reading and executing the chapters (their parameters cells);
- :mod:`.cli`: the ``zlnotes`` command (``notebooks``, ``params``, ``run``, ``sweep``);
- :mod:`.sphinx_rerun`: the Sphinx extension that writes the "Rerun a chapter" page;
- :mod:`.display`: the chapters' figure style (:func:`.book_style`) and HTML tables
  (:class:`.Table`);
- :mod:`.experiments`: the book's experiments (the dichotomy sweep of chapter 09) and their
  registry, :func:`.experiments.get_experiment`.

Dependencies point one way: ``zlnotes.book`` → ``zlnotes.sweep`` → the numerics in
``zlnotes``. Importing ``zlnotes`` or ``zlnotes.sweep`` loads nothing from here.
"""

from .display import FIGURE_WIDTH, TEXT_WIDTH, Table, book_style, fmt_bound

__all__ = ["FIGURE_WIDTH", "TEXT_WIDTH", "Table", "book_style", "fmt_bound"]
