"""The built book, read as a reader would: pages opened in headless Chromium, offline.

Runs after ``make book`` (it reads ``_build/html``). Skipped, with the reason printed,
where Chromium is not installed; ``.ci/run`` installs Debian's ``chromium`` first.

Checks, on every page of the table of contents:

- math is typeset by the bundled MathJax (``mjx-container`` elements, no raw TeX left);
- every image has a non-empty ``alt`` text;
- no cell output is an error or a traceback;
- every internal link (``href`` to a file of the build, with or without ``#anchor``) resolves.

Checks on the search page, opened from ``file://`` (Sphinx's ``searchtools.js`` loads
``searchindex.js`` with a script tag, so search needs no server): a query shows results whose
links resolve, each chapter is found by its title, and a nonsense word finds nothing. The
theme's search box on every page submits to that page. (Result *snippets* need ``fetch``,
which browsers refuse for ``file://``: offline the results list titles only.)

Checks on every chapter of ``_toc.yml`` (so new chapters are covered when they are listed):
the page ends with a "Try this" section whose ``zlnotes run`` commands name this chapter and
its real parameters with values of the right type, and the text links to another chapter.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote, unquote, urlparse

import pytest
import yaml

from zlnotes.book import chapters as zl_chapters

ROOT = Path(__file__).resolve().parents[2]
HTML = ROOT / "_build" / "html"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PAGES = sorted(
    p
    for p in HTML.glob("**/*.html")
    if "_static" not in p.parts and "_sources" not in p.parts and p.name not in ("genindex.html", "search.html")
)
TOC_PAGES = [p for p in PAGES if p.name != "index.html"]  # index.html only redirects to intro.html


def _toc_files(node: object) -> list[str]:
    """Every ``file:`` entry of the table of contents, in order."""
    if isinstance(node, dict):
        return ([node["file"]] if "file" in node else []) + [f for v in node.values() for f in _toc_files(v)]
    if isinstance(node, list):
        return [f for v in node for f in _toc_files(v)]
    return []


CHAPTERS = [
    f for f in _toc_files(yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))) if f.startswith("chapters/")
]

pytestmark = pytest.mark.skipif(not HTML.is_dir(), reason="no _build/html: run `make book` first")


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.hrefs: list[str] = []
        self.images: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])  # type: ignore[arg-type]
        if tag == "a" and a.get("href"):
            self.hrefs.append(a["href"])  # type: ignore[arg-type]
        if tag == "img":
            self.images.append(a)


def _parse(path: Path) -> _Collector:
    collector = _Collector()
    collector.feed(path.read_text(encoding="utf-8"))
    return collector


def _rendered_dom(path: Path, query: str = "") -> str:
    """The page's DOM after scripts ran, from headless Chromium with no network use.

    ``query`` is appended to the ``file://`` URL (``?q=...`` for the search page).
    """
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run(
            [
                str(CHROMIUM),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
                f"--user-data-dir={profile}",
                "--virtual-time-budget=15000",
                "--dump-dom",
                path.as_uri() + query,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
    return result.stdout


def test_pages_were_built():
    assert TOC_PAGES, "no chapter pages in _build/html"


@pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium); .ci/run installs it"
)
@pytest.mark.parametrize("page", TOC_PAGES, ids=lambda p: p.stem)
def test_page_in_chromium(page: Path):
    dom = _rendered_dom(page)
    source = page.read_text(encoding="utf-8")
    n_math = len(re.findall(r'class="math', source))
    if n_math:
        assert dom.count("<mjx-container") >= n_math, (
            f"{page.name}: {n_math} math spans, MathJax typeset {dom.count('<mjx-container')}"
        )
        assert "<mjx-merror" not in dom, f"{page.name}: MathJax reports a TeX error"
    assert "cdn.jsdelivr" not in source and "cdnjs" not in source, f"{page.name} loads a script from a CDN"
    assert 'class="output traceback' not in dom and "output_error" not in dom, f"{page.name} shows an error output"


@pytest.mark.parametrize("page", TOC_PAGES, ids=lambda p: p.stem)
def test_images_have_alt_text(page: Path):
    for img in _parse(page).images:
        assert (img.get("alt") or "").strip(), f"{page.name}: <img src={img.get('src')!r}> has no alt text"


def test_internal_links_resolve():
    parsed = {p: _parse(p) for p in PAGES}
    broken = []
    for page, collector in parsed.items():
        for href in collector.hrefs:
            url = urlparse(href)
            if url.scheme or url.netloc or href.startswith("mailto:"):
                continue  # external links are not checked (no network)
            target = (page.parent / unquote(url.path)).resolve() if url.path else page
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{page.relative_to(HTML)} -> {href}")
                continue
            if url.fragment and target.suffix == ".html":
                ids = parsed[target].ids if target in parsed else _parse(target).ids
                if url.fragment not in ids:
                    broken.append(f"{page.relative_to(HTML)} -> {href} (no such anchor)")
    assert not broken, "broken internal links:\n" + "\n".join(broken)


# --- search, offline -------------------------------------------------------------------------

needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium); .ci/run installs it"
)


def _search(words: str) -> tuple[str, list[str]]:
    """Search the book from ``file://``: the status line and the result links (relative hrefs)."""
    dom = _rendered_dom(HTML / "search.html", "?q=" + quote(words))
    status = re.search(r'<p class="search-summary">([^<]*)</p>', dom)
    results = re.search(r'<ul class="search">(.*?)</ul>', dom, re.S)
    hrefs = re.findall(r'<a href="([^"]*)"', results[1]) if results else []
    return (status[1] if status else ""), hrefs


def _title(page: Path) -> str:
    h1 = re.search(r"<h1[^>]*>(.*?)</h1>", page.read_text(encoding="utf-8"), re.S)
    assert h1, f"{page.name} has no <h1>"
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", h1[1])).replace("#", "").strip()


@needs_chromium
def test_search_works_offline():
    status, hrefs = _search("jacobian")
    assert hrefs, f"search.html?q=jacobian from file:// shows no results (status: {status!r})"
    assert f"found {len(hrefs)} page(s)" in status, f"status line {status!r} against {len(hrefs)} results"
    assert any(h.startswith("chapters/") for h in hrefs), f"no chapter among the results: {hrefs}"
    ids: dict[Path, set[str]] = {}  # parsed once per page (api.html is large)
    for href in hrefs:
        url = urlparse(href)
        target = HTML / unquote(url.path)
        assert target.is_file(), f"search result {href!r} points to no page of the build"
        if url.fragment:
            if target not in ids:
                ids[target] = _parse(target).ids
            assert url.fragment in ids[target], f"search result {href!r}: no such anchor"
    status, hrefs = _search("xqzzyvwk")
    assert not hrefs and "did not match" in status, f"a nonsense word found {hrefs} ({status!r})"


@needs_chromium
@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda f: Path(f).name)
def test_search_finds_chapter_by_title(chapter: str):
    page = HTML / f"{chapter}.html"
    assert page.is_file(), f"{chapter} is in _toc.yml but {page.relative_to(ROOT)} was not built: rebuild the book"
    title = _title(page)
    status, hrefs = _search(title)
    assert f"{chapter}.html" in [h.split("#")[0] for h in hrefs], (
        f"searching {title!r} does not find {chapter}: {hrefs} ({status!r})"
    )


@pytest.mark.parametrize("page", TOC_PAGES, ids=lambda p: p.stem)
def test_search_box_submits_to_search_page(page: Path):
    source = page.read_text(encoding="utf-8")
    forms = re.findall(r'<form class="bd-search[^"]*"\s+action="([^"]*)"\s+method="get">(.*?)</form>', source, re.S)
    assert forms, f"{page.name} has no search box"
    for action, inner in forms:
        assert (page.parent / action).resolve() == (HTML / "search.html").resolve(), (
            f"{page.name}: search box submits to {action!r}"
        )
        assert 'name="q"' in inner, f"{page.name}: the search field is not named q"


# --- every chapter: "Try this" and links to other chapters ----------------------------------


class _Article(HTMLParser):
    """The ``<article>`` of a page: its h2 headings in order, its links, and its inline code
    texts, each tagged with the h2 section it falls in."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0  # > 0 inside <article>
        self.h2: list[str] = []
        self.hrefs: list[str] = []
        self.code: list[tuple[int, str]] = []  # (index of the h2 section, text)
        self._in_h2 = False
        self._code_depth = 0
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "article":
            self.depth += 1
        if not self.depth:
            return
        a = dict(attrs)
        if tag == "h2":
            self._in_h2, self._text = True, ""
        elif tag == "a" and a.get("href") and "headerlink" not in (a.get("class") or ""):
            self.hrefs.append(a["href"])  # type: ignore[arg-type]
        elif tag == "code":
            if not self._code_depth:
                self._text = ""
            self._code_depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "article":
            self.depth -= 1
        elif tag == "h2" and self._in_h2:
            self._in_h2 = False
            title = self._text.replace("#", "").strip()
            self.h2.append(re.sub(r"^\d+(?:\.\d+)*\.\s*", "", title))  # without its section number
        elif tag == "code" and self._code_depth:
            self._code_depth -= 1
            if not self._code_depth:
                self.code.append((len(self.h2) - 1, " ".join(self._text.split())))

    def handle_data(self, data: str) -> None:
        if self.depth and (self._in_h2 or self._code_depth):
            self._text += data


def _article(chapter: str) -> _Article:
    page = HTML / f"{chapter}.html"
    assert page.is_file(), f"{chapter} is in _toc.yml but {page.relative_to(ROOT)} was not built: rebuild the book"
    article = _Article()
    article.feed(page.read_text(encoding="utf-8"))
    assert article.h2, f"{page.name}: no <article> with sections"
    return article


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda f: Path(f).name)
def test_chapter_ends_with_try_this(chapter: str):
    article = _article(chapter)
    assert article.h2[-1] == "Try this", (
        f"{chapter}: the last section is {article.h2[-1]!r}, not 'Try this' (sections: {article.h2})"
    )
    commands = [
        text for section, text in article.code if section == len(article.h2) - 1 and text.startswith("zlnotes run")
    ]
    assert commands, f"{chapter}: 'Try this' gives no `zlnotes run {Path(chapter).name[:2]} -p NAME VALUE` command"
    notebook = ROOT / f"{chapter}.ipynb"
    params = {p.name: p for p in zl_chapters.read_parameters(notebook)}
    for command in commands:
        words = shlex.split(command)
        assert len(words) >= 3, f"{chapter}: {command!r} names no chapter"
        assert zl_chapters.find_chapters([words[2]], ROOT) == [notebook.resolve()], (
            f"{chapter}: {command!r} runs another chapter"
        )
        rest = words[3:]
        assert rest and len(rest) % 3 == 0 and all(w == "-p" for w in rest[::3]), (
            f"{chapter}: {command!r} is not of the form `-p NAME VALUE ...`"
        )
        for name, value in zip(rest[1::3], rest[2::3]):
            assert name in params, f"{chapter}: {command!r}: no parameter {name!r} (parameters: {', '.join(params)})"
            params[name].parse(value)  # raises, naming the parameter, if the value does not parse


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda f: Path(f).name)
def test_chapter_links_to_another_chapter(chapter: str):
    article = _article(chapter)
    page = HTML / f"{chapter}.html"
    others = {(HTML / f"{c}.html").resolve() for c in CHAPTERS if c != chapter}
    linked = {
        (page.parent / unquote(urlparse(h).path)).resolve()
        for h in article.hrefs
        if not urlparse(h).scheme and urlparse(h).path
    }
    assert linked & others, f"{chapter}: the text links to no other chapter (add a {{doc}}`other_chapter` reference)"
