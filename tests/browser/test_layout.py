"""The built pages laid out as a reader sees them: headless Chromium at a 1280 px window.

Runs after ``make book`` (it reads ``_build/html``). Skipped where Chromium is not installed.

For every page of the table of contents, a script added to a copy of the page measures,
after MathJax has typeset it:

- every cell output box, code box and table: its ``scrollWidth`` against its ``clientWidth``
  (an output or table that would scroll horizontally hides results on the right);
- every display equation likewise (with 10 px of slack for overhanging glyphs);
- every figure of a cell output: its displayed width, at least :data:`MIN_FIGURE_PX`.

On the built HTML itself (no browser needed):

- no cross-reference renders without its number ("Proposition " followed by nothing);
- no raw MyST markup survives (``:::{``, ``{cite}``, ``{doc}``, ``{prf:``, ``{numref}``);
- no word of the book's making ("issue", "MATH.md").
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HTML = ROOT / "_build" / "html"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PAGES = sorted(
    p
    for p in HTML.glob("**/*.html")
    if "_static" not in p.parts
    and "_sources" not in p.parts
    and p.name not in ("genindex.html", "search.html", "index.html")
)
WINDOW = (1280, 1000)  # a laptop screen: the text column is narrowest here among common desktop widths
MIN_FIGURE_PX = 600

pytestmark = pytest.mark.skipif(not HTML.is_dir(), reason="no _build/html: run `make book` first")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium); .ci/run installs it"
)

_MEASURE = """<script>
window.addEventListener("load", () => {
  let fired = false;
  const done = () => {
    if (fired) return;
    fired = true;
    const boxes = [...document.querySelectorAll(
      "article div.cell_output pre, article div.cell_output table, article div.cell_input pre, "
      + "article div.cell_output div.output, article table")];
    const over = boxes.filter(e => e.scrollWidth > e.clientWidth + 1).map(e => ({
      kind: e.closest("div.cell_input") ? "code" : (e.tagName === "TABLE" ? "table" : "output"),
      text: e.textContent.trim().slice(0, 70), scroll: e.scrollWidth, client: e.clientWidth}));
    // display equations: 10 px of slack for glyphs that overhang their box
    const math = [...document.querySelectorAll("article mjx-container[display]")]
      .filter(e => e.scrollWidth > e.clientWidth + 10).map(e => ({
        kind: "math", text: e.textContent.trim().slice(0, 70), scroll: e.scrollWidth, client: e.clientWidth}));
    over.push(...math);
    const figures = [...document.querySelectorAll("article div.cell_output img")].map(i => ({
      alt: (i.alt || "").slice(0, 60), width: Math.round(i.getBoundingClientRect().width)}));
    const pre = document.createElement("pre");
    pre.id = "ZL_MEASURE";
    pre.textContent = JSON.stringify({over, figures});
    document.body.appendChild(pre);
  };
  const mj = window.MathJax;
  const ready = mj && mj.startup && mj.startup.promise ? mj.startup.promise : Promise.resolve();
  ready.then(() => setTimeout(done, 300), () => setTimeout(done, 300));
  setTimeout(done, 8000);  // a page that loads no MathJax may leave its startup promise pending
});
</script>"""


def _measure(page: Path) -> dict:
    """Run the measuring script on a copy of ``page`` (beside it, so relative links hold)."""
    copy = page.with_name(f"_zl_measure_{page.name}")
    copy.write_text(page.read_text(encoding="utf-8").replace("</body>", _MEASURE + "</body>"), encoding="utf-8")
    try:
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
                    "--hide-scrollbars",
                    f"--window-size={WINDOW[0]},{WINDOW[1]}",
                    f"--user-data-dir={profile}",
                    "--virtual-time-budget=20000",
                    "--dump-dom",
                    copy.as_uri(),
                ],
                capture_output=True,
                text=True,
                timeout=180,
                check=True,
            )
    finally:
        copy.unlink()
    found = re.search(r'<pre id="ZL_MEASURE"[^>]*>(.*?)</pre>', result.stdout, re.S)
    assert found, f"{page.name}: the measuring script did not run (no result in the DOM)"
    return json.loads(html.unescape(found[1]))


@needs_chromium
@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(HTML)))
def test_nothing_scrolls_and_figures_are_wide(page: Path):
    measured = _measure(page)
    over = [o for o in measured["over"] if o["kind"] in ("output", "table")]
    assert not over, (
        f"{page.name}: {len(over)} output box(es) or table(s) scroll horizontally at {WINDOW[0]} px: "
        + "; ".join(f"{o['kind']} {o['text']!r} ({o['scroll']} > {o['client']} px)" for o in over[:5])
    )
    narrow = [f for f in measured["figures"] if f["width"] < MIN_FIGURE_PX]
    assert not narrow, (
        f"{page.name}: figure(s) displayed narrower than {MIN_FIGURE_PX} px at {WINDOW[0]} px: "
        + "; ".join(f"{f['alt']!r} at {f['width']} px" for f in narrow)
    )
    math = [o for o in measured["over"] if o["kind"] == "math"]
    assert not math, f"{page.name}: {len(math)} display equation(s) scroll sideways at {WINDOW[0]} px: " + "; ".join(
        f"{o['text']!r} ({o['scroll']} > {o['client']} px)" for o in math[:5]
    )
    code = [o for o in measured["over"] if o["kind"] == "code"]
    assert not code, f"{page.name}: {len(code)} code box(es) scroll horizontally at {WINDOW[0]} px: " + "; ".join(
        f"{o['text']!r} ({o['scroll']} > {o['client']} px)" for o in code[:5]
    )


def _article_text(page: Path) -> str:
    source = page.read_text(encoding="utf-8")
    found = re.search(r"<article[^>]*>(.*)</article>", source, re.S)
    return found[1] if found else source


_KINDS = "Proposition|Lemma|Theorem|Corollary|Definition|Remark|Property|Figure|Fig\\.|Exercise|Table|Section|Equation"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(HTML)))
def test_references_have_numbers(page: Path):
    article = _article_text(page)
    bare = []
    for link in re.finditer(r'<a class="reference internal"[^>]*>(.*?)</a>', article, re.S):
        text = " ".join(re.sub(r"<[^>]+>", "", link[1]).split())
        if re.fullmatch(rf"(?:{_KINDS})\s*", text) or "?" == text or text.endswith(" ?"):
            bare.append(text or "(empty)")
    assert not bare, f"{page.name}: references rendered without a number or name: {bare}"


_RAW = [
    ":::{",
    "```{",
    "{cite}`",
    "{cite:t}`",
    "{cite:p}`",
    "{doc}`",
    "{prf:",
    "{numref}`",
    "{ref}`",
    "{eq}`",
    "{math}`",
]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(HTML)))
def test_no_raw_markup(page: Path):
    article = _article_text(page)
    # code shown as code may legitimately contain these (the Notation page shows the syntax); prose may not
    prose = re.sub(r"<(pre|code)[^>]*>.*?</\1>", "", article, flags=re.S)
    found = [m for m in _RAW if m in html.unescape(re.sub(r"<[^>]+>", "", prose))]
    assert not found, f"{page.name}: raw MyST markup in the rendered text: {found}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(HTML)))
def test_no_words_of_the_making(page: Path):
    text = html.unescape(re.sub(r"<[^>]+>", " ", _article_text(page)))
    found = sorted({m.group(0) for m in re.finditer(r"\b(?:issues?|MATH\.md)\b", text, re.I)})
    assert not found, f"{page.name}: words of the book's making on the page: {found}"
