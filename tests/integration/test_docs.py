"""The docs as a reader uses them: code that runs as shown, pages that fit the screen.

A reader copies a code block into a file and runs it, so each Python block of
the pages in ``RUNNABLE_PAGES`` is written alone to a fresh directory, next to
only the other blocks of those pages that it imports, and run: ``pytest`` for
a test file, ``python`` for a module. Snippets (``--8<-- "file"`` and
``--8<-- "file:section"``) are expanded here as pymdownx.snippets expands them,
so this needs no mkdocs; the browser test checks the expansion against the
built page.

The browser test builds the pages it measures with mkdocs and loads them in
headless Chromium at 1280 pixels: no code block may scroll sideways.
"""

from __future__ import annotations

import ast
import fnmatch
import html
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests._chromium import find_chromium, run_chromium
from tests.conftest import RunPytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

# Pages whose every Python block is a file, named by its title, that runs as
# shown. The scenario pages show excerpts (most with the files in full under
# "Full source"), which are not checked here.
RUNNABLE_PAGES = ("index.md", "getting-started.md")

FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
TITLE = re.compile(r'\btitle="(?P<title>[^"]*)"')
SNIPPET = re.compile(r'^[ \t]*-+8<-+[ \t]+"(?P<target>[^"]+)"[ \t]*$')
SECTION_MARKER = re.compile(
    r"-+8<-+[ \t]+\[[ \t]*(?P<type>start|end)[ \t]*:[ \t]*(?P<name>[a-z][-_0-9a-z]*)[ \t]*\]"
)


@dataclass(frozen=True)
class Block:
    page: str
    line: int  # of the opening fence, 1-based
    language: str
    title: str | None
    text: str  # as the page shows it, snippets expanded

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def _snippet(target: str) -> list[str]:
    """The lines ``--8<-- "target"`` stands for (base_path "." in mkdocs.yml: the repository)."""
    path, _, section = target.partition(":")
    lines = (ROOT / path).read_text(encoding="utf-8").splitlines()
    if not section:
        return [line for line in lines if not SECTION_MARKER.search(line)]
    if not re.fullmatch(r"[a-z][-_0-9a-z]*", section):
        raise ValueError(f"snippet {target!r}: only whole files and named sections are expanded here")
    selected: list[str] = []
    inside = found = False
    for line in lines:
        marker = SECTION_MARKER.search(line)
        if marker and marker["name"] == section:
            if marker["type"] == "end":
                break
            inside = found = True
        elif inside and not marker:
            selected.append(line)
    if not found:
        raise ValueError(f"snippet {target!r}: no section {section!r}")
    return selected


def _blocks(page: Path) -> Iterator[Block]:
    lines = page.read_text(encoding="utf-8").splitlines()
    number = 0
    while number < len(lines):
        opening = FENCE.match(lines[number])
        number += 1
        if opening is None:
            continue
        indent, fence = opening["indent"], opening["fence"]
        body: list[str] = []
        while number < len(lines) and lines[number].strip() != fence:
            body.append(lines[number].removeprefix(indent))
            number += 1
        start, number = number - len(body), number + 1
        shown: list[str] = []
        for line in body:
            snippet = SNIPPET.match(line)
            shown.extend(_snippet(snippet["target"]) if snippet else [line])
        info = opening["info"].strip()
        title = TITLE.search(info)
        yield Block(
            page=page.name,
            line=start,
            language=info.split(" ", 1)[0].lower(),
            title=title["title"] if title else None,
            text="\n".join(shown).strip("\n") + "\n",
        )


def _python_blocks(pages: tuple[str, ...]) -> list[Block]:
    return [block for page in pages for block in _blocks(DOCS / page) if block.language in ("python", "py")]


RUNNABLE = _python_blocks(RUNNABLE_PAGES)
MODULES = {block.title.removesuffix(".py"): block for block in RUNNABLE if block.title}


def _imported(block: Block) -> set[str]:
    """The top-level names this block imports absolutely."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(block.text, block.title or block.where)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _needs(block: Block) -> list[Block]:
    """The blocks of the runnable pages that ``block`` imports, and what they import in turn."""
    needed: dict[str, Block] = {}
    pending = [block]
    while pending:
        for name in sorted(_imported(pending.pop()) & MODULES.keys()):
            if name not in needed and MODULES[name] is not block:
                needed[name] = MODULES[name]
                pending.append(MODULES[name])
    return list(needed.values())


def _is_test_file(title: str) -> bool:
    return title.startswith("test_") or title.endswith("_test.py")


def test_every_block_of_the_runnable_pages_names_its_file() -> None:
    """Each block says which file it is, and a file shown twice is shown the same."""
    assert {block.page for block in RUNNABLE} == set(RUNNABLE_PAGES)
    untitled = [block.where for block in RUNNABLE if block.title is None or not block.title.endswith(".py")]
    assert untitled == [], 'python blocks without a title naming their file (title="name.py")'
    differing = [
        f"{block.where} and {MODULES[block.title.removesuffix('.py')].where}"
        for block in RUNNABLE
        if block.title and block.text != MODULES[block.title.removesuffix(".py")].text
    ]
    assert differing == [], "one file shown with two texts"


@pytest.mark.parametrize(
    "block",
    # A file shown on several pages runs once.
    list({(block.title, block.text): block for block in RUNNABLE}.values()),
    ids=lambda block: f"{block.page}-{block.title}",
)
def test_a_block_runs_as_shown(pytester: pytest.Pytester, run_pytest: RunPytest, block: Block) -> None:
    assert block.title is not None
    compile(block.text, f"{block.where} ({block.title})", "exec")  # a SyntaxError names the page's line
    files = [block, *_needs(block)]
    for shown in files:
        assert shown.title is not None
        (pytester.path / shown.title).write_text(shown.text, encoding="utf-8")
    if _is_test_file(block.title):
        result = run_pytest()
        outcomes = result.parseoutcomes()
        assert result.ret == pytest.ExitCode.OK, result.stdout.str()
        assert set(outcomes) == {"passed"}, f"{block.where}: {outcomes}\n{result.stdout.str()}"
    else:
        result = pytester.runpython(pytester.path / block.title)
        assert result.ret == 0, f"{block.where}: {result.stderr.str()}"


# -- the README's example ---------------------------------------------------------------------


def _readme_example() -> tuple[str, str, str]:
    """The README's first Python block, the name it is saved as, and the output block after it."""
    readme = ROOT / "README.md"
    blocks = list(_blocks(readme))
    first = next(number for number, block in enumerate(blocks) if block.language == "python")
    saved_as = re.search(r"Saved as `(?P<name>test_\w+\.py)`", readme.read_text(encoding="utf-8"))
    assert saved_as, "the README says which file its example is saved as"
    return blocks[first].text, saved_as["name"], blocks[first + 1].text


def _as_pattern(line: str) -> str:
    """A shown output line as an fnmatch pattern: ids, durations and thread numbers vary."""
    line = re.sub(r"[\[\]*?]", lambda match: f"[{match[0]}]", line)
    line = re.sub(r"\b[0-9a-f]{16}\b|\b[0-9a-f]{32}\b", "*", line)
    line = re.sub(r"\b\d+(\.\d+)? (µs|ms|s)\b", "* *", line)
    return re.sub(r"Thread-\d+", "Thread-*", line)


def test_the_readme_example_fails_as_shown(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    """The README's test breaks the chain on purpose; the output shown is what it prints."""
    code, name, output = _readme_example()
    (pytester.path / name).write_text(code, encoding="utf-8")
    result = run_pytest("--tb=short")
    result.assert_outcomes(failed=1)
    shown = [line.rstrip() for line in output.splitlines()]
    assert shown[0].startswith("E   pytest_tracechain.TraceAssertionError: ")
    printed = pytest.LineMatcher([line.rstrip() for line in result.stdout.lines])
    printed.fnmatch_lines([_as_pattern(line) for line in shown], consecutive=True)


# -- the built pages at 1280 pixels -----------------------------------------------------------

WIDE_PAGES = ("getting-started.md", "broken-chains.md")
WINDOW = (1280, 900)
# Every details block opened (as a reader opens "Full source"), then each code
# block's widths, language, computed white-space and text.
MEASURE = """
<script>
window.addEventListener("load", () => {
  document.querySelectorAll(".md-content details").forEach((details) => { details.open = true; });
  const blocks = [...document.querySelectorAll(".md-content pre > code")].map((code) => {
    const highlight = code.closest("div.highlight");
    const language = highlight ? (highlight.className.match(/language-(\\S+)/) || ["", ""])[1] : "";
    return {
      language,
      scrollWidth: code.scrollWidth,
      clientWidth: code.clientWidth,
      whiteSpace: getComputedStyle(code).whiteSpace,
      text: code.textContent,
    };
  });
  const out = document.createElement("pre");
  out.id = "measured";
  out.textContent = JSON.stringify({ innerWidth: window.innerWidth, blocks });
  document.body.append(out);
});
</script>
"""


@pytest.fixture(scope="module")
def chromium() -> str:
    return find_chromium("the docs width test")


@pytest.fixture(scope="module")
def site(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """WIDE_PAGES built alone with the docs' configuration (INHERIT), without a browser not at all.

    Alone, so that work in progress on other pages cannot break the build, and
    in the machine's monospace font: the test fetches nothing from the network.
    """
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None:
        # Not a failure under CI: its runs on other Pythons install only the test group.
        pytest.skip("mkdocs is not installed: pip install -e . --group docs")
    work = tmp_path_factory.mktemp("docs-site")
    docs = work / "docs"
    docs.mkdir()
    for page in WIDE_PAGES:
        shutil.copy(DOCS / page, docs / page)
    shutil.copytree(DOCS / "stylesheets", docs / "stylesheets")
    config = work / "mkdocs.yml"
    config.write_text(
        textwrap.dedent(
            f"""\
            INHERIT: {ROOT / "mkdocs.yml"}
            docs_dir: {docs}
            site_dir: {work / "site"}
            nav: {list(WIDE_PAGES)}
            theme:
              font: false
            """
        ),
        encoding="utf-8",
    )
    # Not --strict: the copied pages link to pages this build leaves out.
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--quiet", "--config-file", str(config)],
        cwd=ROOT,  # the snippets' base path
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert build.returncode == 0, build.stderr
    return work / "site"


def _measure(chromium: str, site: Path, page: str) -> dict[str, object]:
    built = site / page.removesuffix(".md") / "index.html"
    measured = built.with_name("measured.html")
    measured.write_text(built.read_text(encoding="utf-8").replace("</body>", MEASURE + "</body>"), "utf-8")
    dom = run_chromium(
        chromium,
        site.parent / f"profile-{page}",
        "--virtual-time-budget=5000",
        "--dump-dom",
        measured.as_uri(),
        window=WINDOW,
    )
    found = re.search(r'<pre id="measured">(.*?)</pre>', dom, re.DOTALL)
    assert found, dom[-2000:]
    result: dict[str, object] = json.loads(html.unescape(found[1]))
    return result


@pytest.mark.parametrize("page", WIDE_PAGES)
def test_no_code_block_scrolls_sideways_at_1280_pixels(chromium: str, site: Path, page: str) -> None:
    measured = _measure(chromium, site, page)
    assert measured["innerWidth"] == WINDOW[0]
    blocks = measured["blocks"]
    assert isinstance(blocks, list)
    assert len(blocks) == sum(1 for _ in _blocks(DOCS / page))
    assert all(block["clientWidth"] > 0 for block in blocks)  # every one laid out, none hidden
    too_wide = [
        f"{block['language'] or '(none)'} block, {block['scrollWidth']} px in {block['clientWidth']} px: "
        f"{block['text'].splitlines()[0] if block['text'] else ''!r}"
        for block in blocks
        if block["scrollWidth"] > block["clientWidth"]
    ]
    assert too_wide == [], "\n".join(too_wide)
    # Output wraps; code keeps its lines.
    assert {block["whiteSpace"] for block in blocks if block["language"] == "python"} == {"pre"}
    assert {block["whiteSpace"] for block in blocks if block["language"] == "text"} == {"pre-wrap"}
    if page in RUNNABLE_PAGES:
        # What the run test ran is what the page shows.
        shown = [block["text"].strip("\n") for block in blocks if block["language"] == "python"]
        assert shown == [block.text.strip("\n") for block in RUNNABLE if block.page == page]


def test_pasted_output_is_matched() -> None:
    """_as_pattern keeps the text and lets ids and durations vary."""
    pattern = _as_pattern("E   └─ GET /hello · 493 µs · thread 'Thread-1 (x)' [a2dcd57d7236ad56]")
    assert fnmatch.fnmatch("E   └─ GET /hello · 12 ms · thread 'Thread-7 (x)' [0123456789abcdef]", pattern)
    assert not fnmatch.fnmatch("E   └─ GET /bye · 12 ms · thread 'Thread-7 (x)' [0123456789abcdef]", pattern)
