"""The built book, read as a reader would: pages opened in headless Chromium, offline.

Runs after ``make book`` (it reads ``_build/html``). Skipped, with the reason printed,
where Chromium is not installed; ``.ci/run`` installs Debian's ``chromium`` first.

Checks, on every page of the table of contents:

- math is typeset by the bundled MathJax (``mjx-container`` elements, no raw TeX left);
- every image has a non-empty ``alt`` text;
- no cell output is an error or a traceback;
- every internal link (``href`` to a file of the build, with or without ``#anchor``) resolves.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

ROOT = Path(__file__).resolve().parents[2]
HTML = ROOT / "_build" / "html"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PAGES = sorted(p for p in HTML.glob("**/*.html") if "_static" not in p.parts and "_sources" not in p.parts and p.name not in ("genindex.html", "search.html"))
TOC_PAGES = [p for p in PAGES if p.name != "index.html"]  # index.html only redirects to intro.html

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


def _rendered_dom(path: Path) -> str:
    """The page's DOM after scripts ran, from headless Chromium with no network use."""
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run(
            [
                CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                f"--user-data-dir={profile}", "--virtual-time-budget=15000", "--dump-dom", path.as_uri(),
            ],
            capture_output=True, text=True, timeout=120, check=True,
        )
    return result.stdout


def test_pages_were_built():
    assert TOC_PAGES, "no chapter pages in _build/html"


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium); .ci/run installs it")
@pytest.mark.parametrize("page", TOC_PAGES, ids=lambda p: p.stem)
def test_page_in_chromium(page: Path):
    dom = _rendered_dom(page)
    source = page.read_text(encoding="utf-8")
    n_math = len(re.findall(r'class="math', source))
    if n_math:
        assert dom.count("<mjx-container") >= n_math, f"{page.name}: {n_math} math spans, MathJax typeset {dom.count('<mjx-container')}"
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
