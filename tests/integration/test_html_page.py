"""The --tracechain-html page as a person sees it at 1280×800 in headless Chromium.

A long-named, deeply nested broken test (a dropped carrier, a lost context, an
unended span) among 64 passing tests. A script added to a copy of the page
measures in the browser and writes what it found into the DOM, which
``--dump-dom`` prints: every badge whole (inside the viewport, clipped by no
ancestor, drawn on top), and the first broken test's waterfall above the fold.
The screenshots stay in ``tmp_path`` for a person to look at.
"""

from __future__ import annotations

import html
import json
import re
import struct
from pathlib import Path
from typing import Any

import pytest

from tests._chromium import find_chromium, run_chromium
from tests.conftest import RunPytest

WIDTH, HEIGHT = 1280, 800

# Names without spaces, which nothing can wrap; 24 levels of nesting under the root.
SUITE = """
import threading
from contextlib import ExitStack

import pytest
from opentelemetry import context
from opentelemetry.trace import SpanKind

LONG = "orders.fulfilment.enrich_and_publish_the_order_payload_to_the_warehouse_queue_of_region_eu_west_1"


def test_checkout_loses_its_context(tracer):
    with tracer.start_as_current_span("POST /checkout/" + LONG, kind=SpanKind.SERVER), ExitStack() as stack:
        for level in range(24):
            stack.enter_context(tracer.start_as_current_span(f"level-{level}." + LONG))
        tracer.start_span("never-ended." + LONG)
        with tracer.start_as_current_span("publish." + LONG, kind=SpanKind.PRODUCER):
            pass

        def send_receipt():
            with tracer.start_as_current_span("send-receipt." + LONG):
                pass

        thread = threading.Thread(target=send_receipt, name="mailer-" + "x" * 60)
        thread.start()
        thread.join()
    with tracer.start_as_current_span(
        "<consume> & process." + LONG, kind=SpanKind.CONSUMER, context=context.Context()
    ):
        pass


@pytest.mark.parametrize("n", range(64))
def test_passes(tracer, n):
    with tracer.start_as_current_span(f"ok {n}"):
        pass
"""

# Runs after layout; writes its findings as JSON into <pre id="measure">.
MEASURE = """
<script>
addEventListener('load', function () {
  function box(r) { return [r.left, r.top, r.right, r.bottom].map(function (v) { return Math.round(v * 10) / 10; }); }
  function clips(el) {  // the ancestors that clip el's overflow (or cut it with an ellipsis)
    var found = [];
    for (var a = el.parentElement; a; a = a.parentElement) {
      var style = getComputedStyle(a);
      if (style.overflowX !== 'visible' || style.overflowY !== 'visible') found.push(a);
    }
    return found;
  }
  function clipOf(el) {  // the viewport, narrowed by every ancestor that clips
    var clip = [0, 0, innerWidth, innerHeight];
    clips(el).forEach(function (a) {
      var r = a.getBoundingClientRect(), left = r.left + a.clientLeft, top = r.top + a.clientTop;
      clip = [Math.max(clip[0], left), Math.max(clip[1], top),
              Math.min(clip[2], left + a.clientWidth), Math.min(clip[3], top + a.clientHeight)];
    });
    return box({left: clip[0], top: clip[1], right: clip[2], bottom: clip[3]});
  }
  function overflowing(el) {  // el, or a clipping ancestor, whose content is wider than it: cut off
    return [el].concat(clips(el)).filter(function (a) {
      return a.clientWidth > 0 && a.scrollWidth > a.clientWidth + 1;
    }).map(function (a) { return a.className + ' ' + a.scrollWidth + '>' + a.clientWidth; });
  }
  var out = {viewport: [innerWidth, innerHeight], page_width: document.documentElement.scrollWidth};
  var broken = Array.prototype.find.call(document.querySelectorAll('section.test'), function (s) {
    return s.querySelector('ul.findings');
  });
  var wf = broken.querySelector('.wf');
  out.waterfall = {section: broken.id, top: box(wf.getBoundingClientRect())[1],
                   first_row: box(wf.querySelector('.row:not(.axis)').getBoundingClientRect())};
  out.badges = [];
  document.querySelectorAll('.mark, .badge').forEach(function (el) {
    if (!el.getClientRects().length) return;  // in a folded part of the page
    el.scrollIntoView({block: 'center', inline: 'nearest'});
    var text = document.createRange();
    text.selectNodeContents(el);
    var b = box(el.getBoundingClientRect());
    var hit = document.elementFromPoint((b[0] + b[2]) / 2, (b[1] + b[3]) / 2);
    out.badges.push({text: el.textContent, where: el.closest('.row, summary, li').className || el.closest('.row, summary, li').tagName,
                     box: b, text_box: box(text.getBoundingClientRect()), clip: clipOf(el),
                     cut_by: overflowing(el), scroll_x: scrollX, on_top: !!hit && el.contains(hit)});
  });
  scrollTo(0, 0);
  var pre = document.createElement('pre');
  pre.id = 'measure';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>
"""


def _run_chromium(chromium: str, profile: Path, *args: str) -> str:
    return run_chromium(chromium, profile, *args, window=(WIDTH, HEIGHT))


def _png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def _inside(inner: list[float], outer: list[float], slack: float = 0.5) -> bool:
    left, top, right, bottom = inner
    return (
        left >= outer[0] - slack
        and top >= outer[1] - slack
        and right <= outer[2] + slack
        and bottom <= outer[3] + slack
    )


@pytest.fixture
def report(pytester: pytest.Pytester, run_pytest: RunPytest) -> Path:
    pytester.makepyfile(test_page=SUITE)
    result = run_pytest("--tb=no", "-q", "--tracechain-check=fail", "--tracechain-html=page.html")
    result.assert_outcomes(passed=64, failed=1, errors=1)  # the unended span: an error at teardown
    return pytester.path / "page.html"


def test_badges_whole_and_the_first_waterfall_above_the_fold_at_1280(
    report: Path, tmp_path: Path, pytester: pytest.Pytester
) -> None:
    chromium = find_chromium("the HTML page test")
    text = report.read_text(encoding="utf-8")
    # Self-contained, every user string escaped.
    assert not re.search(r"""(src|href)\s*=\s*(?!["']?#t\d)""", text)
    assert not re.search(r"url\(|@import|https?://", text)
    assert re.findall(r'href="([^"]*)"', text) == [f"#t{index}" for index in range(65)]  # all still listed
    assert "<consume>" not in text
    assert "&lt;consume&gt; &amp; process." in text

    shot = tmp_path / f"page-{WIDTH}x{HEIGHT}.png"
    _run_chromium(chromium, tmp_path / "profile-shot", f"--screenshot={shot}", report.as_uri())
    assert _png_size(shot.read_bytes()) == (WIDTH, HEIGHT), shot

    measured = pytester.path / "measured.html"
    measured.write_text(text.replace("</body>", MEASURE + "</body>"), encoding="utf-8")
    dom = _run_chromium(
        chromium, tmp_path / "profile-dom", "--virtual-time-budget=5000", "--dump-dom", measured.as_uri()
    )
    found = re.search(r'<pre id="measure">(.*?)</pre>', dom, re.DOTALL)
    assert found, dom[-2000:]
    measure: dict[str, Any] = json.loads(html.unescape(found[1]))
    (tmp_path / "measure.json").write_text(json.dumps(measure, indent=1), encoding="utf-8")
    summary = json.dumps(measure, indent=1) + f"\nscreenshot: {shot}"

    # Headless Chromium's --dump-dom viewport is shorter than the window (657 px of 800), but as
    # wide; the page's layout depends only on the width, so the fold is measured as HEIGHT.
    assert measure["viewport"][0] == WIDTH, summary
    assert measure["page_width"] <= WIDTH, summary  # nothing scrolls sideways
    marks = {badge["text"] for badge in measure["badges"] if "row" in badge["where"].split()}
    assert marks == {"dropped carrier", "lost context", "unended"}, summary
    for badge in measure["badges"]:
        assert badge["scroll_x"] == 0, summary
        assert _inside(badge["box"], [0, 0, *measure["viewport"]]), (badge, summary)
        assert _inside(badge["box"], badge["clip"]), (badge, summary)
        assert _inside(badge["text_box"], badge["clip"]), (badge, summary)
        assert badge["cut_by"] == [], (badge, summary)
        assert badge["on_top"], (badge, summary)
    waterfall = measure["waterfall"]
    assert waterfall["section"] == "t0", summary
    assert waterfall["first_row"][3] <= HEIGHT, summary  # its first span row whole above the fold
