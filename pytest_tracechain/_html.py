"""The page of ``--tracechain-html``: one self-contained HTML file with a waterfall per test.

Each test is first reduced to plain data (``reduce_test``: dicts, lists, strings,
numbers), so pytest-xdist workers can send it to the controller, which writes
the page once (``page``). The waterfall is laid out here, in Python, with
inline ``left``/``width`` percentages: the page reads without JavaScript. Its
small script only records each bar's rendered position in the DOM
(``data-px``), which the browser test checks.

The page is read on a laptop's 1280×800: in a span's label the name, origin
and note give way (ellipsis) and the defect's mark never does, deep rows stop
indenting while there is room left, and the list of tests at the top is short
(the tests to look at; the rest folded), so the first failure's waterfall is
on the first screen.
"""

from __future__ import annotations

import html
import os
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from pytest_tracechain._chain import Finding
from pytest_tracechain._graph import SpanGraph
from pytest_tracechain._origins import Origin
from pytest_tracechain._render import Elision, format_nanoseconds, plan_elision, tree_rows

# Span rows shown per test, and in the whole page (failing tests come first,
# so they get the budget); the rest is counted in a "... N more spans" row.
ROW_LIMIT = 2000
PAGE_ROW_LIMIT = 50_000
# Deeper spans are not indented further (the row says its depth). The page's CSS
# also keeps 20em of a label free of indentation, for the mark, the kind, the
# duration and a part of the name: at 1280 px that is 12 levels.
MAX_INDENT = 12
INDENT_PX = 14
# A longer list of tests at the top shows only the failed ones and those with
# broken chains (at most this many), and folds the rest.
INDEX_SHOWN = 10
# Findings shown in a test's section; the rest are folded under them.
FINDINGS_SHOWN = 3
# Attributes shown in a span's tooltip, and the length of each value there.
TOOLTIP_ATTRIBUTES = 20
TOOLTIP_VALUE_LENGTH = 200

TestData = dict[str, Any]

# Bar colours by span kind; ERROR status overrides them (red).
KIND_COLOURS = {
    "internal": "#4c78a8",
    "server": "#2a9d8f",
    "client": "#7b61c4",
    "producer": "#e68a00",
    "consumer": "#b5651d",
}
ERROR_COLOUR = "#d62728"
BROKEN_OUTLINE = "#d00000"


def _origin_text(origin: Origin | None, this_pid: int) -> str:
    return origin.describe(this_pid=this_pid) if origin is not None else ""


def _tooltip(span: ReadableSpan, origin: str, note: str) -> str:
    lines = [span.name, f"kind: {span.kind.name.lower()}"]
    if span.start_time is not None and span.end_time is not None:
        lines.append(f"duration: {format_nanoseconds(span.end_time - span.start_time)}")
    else:
        lines.append("still open when the test ended")
    if origin:
        lines.append(f"origin: {origin}")
    lines.append(f"trace {span.context.trace_id:032x}, span {span.context.span_id:016x}")
    if note:
        lines.append(note)
    status = span.status
    if status.status_code is not StatusCode.UNSET:
        described = f": {status.description}" if status.description else ""
        lines.append(f"status: {status.status_code.name}{described}")
    lines += _attribute_lines(span)
    for link in span.links or ():
        lines.append(f"link: trace {link.context.trace_id:032x}, span {link.context.span_id:016x}")
    return "\n".join(lines)


def _attribute_lines(span: ReadableSpan) -> list[str]:
    """``key = value`` for the first attributes, each value cut to TOOLTIP_VALUE_LENGTH."""
    attributes = list((span.attributes or {}).items())
    lines = []
    for key, value in attributes[:TOOLTIP_ATTRIBUTES]:
        text = str(value)
        if len(text) > TOOLTIP_VALUE_LENGTH:
            text = text[:TOOLTIP_VALUE_LENGTH] + "…"
        lines.append(f"{key} = {text}")
    if len(attributes) > TOOLTIP_ATTRIBUTES:
        lines.append(f"… {len(attributes) - TOOLTIP_ATTRIBUTES} more attributes")
    return lines


def reduce_test(
    nodeid: str,
    spans: Sequence[ReadableSpan],
    *,
    findings: Iterable[Finding],
    origins: Mapping[int, Origin],
    ambient: Iterable[int],
    outcome: str,
    order: int,
    end_time: int | None = None,
) -> TestData:
    """One test reduced to plain data: the rows of its waterfall in tree order, and its findings.

    Spans still open get ``end_time`` (default: now) as the end of their bar.
    """
    now = end_time if end_time is not None else time.time_ns()
    findings = list(findings)
    graph = SpanGraph(spans, frozenset(ambient))
    t0, t1 = _time_range(graph.ordered, now)
    plan = plan_elision(graph, limit=ROW_LIMIT)
    return {
        "nodeid": nodeid,
        "outcome": outcome,
        "order": order,
        "t0": t0,
        "t1": t1,
        "spans": len(graph),
        "traces": len(graph.counts),
        "rows": _rows(graph, plan, origins, _marks(findings), now),
        "more": plan.not_shown,
        "findings": [[f.kind.value, f.message] for f in findings],
    }


def _marks(findings: Iterable[Finding]) -> dict[int, str]:
    """Span id -> the kind of the first finding about it."""
    marks: dict[int, str] = {}
    for finding in findings:
        if finding.span is not None:
            marks.setdefault(finding.span.context.span_id, finding.kind.value)
    return marks


def _time_range(ordered: Sequence[ReadableSpan], now: int) -> tuple[int, int]:
    """The first start and the last end (``now`` for spans still open) of the spans."""
    starts = [s.start_time for s in ordered if s.start_time is not None]
    t0 = min(starts) if starts else now
    t1 = max([s.end_time if s.end_time is not None else now for s in ordered] or [t0])
    return t0, max(t1, t0)


def _rows(
    graph: SpanGraph, plan: Elision, origins: Mapping[int, Origin], marks: Mapping[int, str], now: int
) -> list[dict[str, Any]]:
    """A header row per trace, then its spans in tree order (the renderer's walk)."""
    this_pid = os.getpid()
    rows: list[dict[str, Any]] = []
    for key, trace_rows in tree_rows(graph, plan):
        rows.append({"trace": f"{key[0]:032x}", "count": graph.counts[key]})
        for _prefix, _branch, depth, span in trace_rows:
            assert not isinstance(span, int)  # spans are elided only around highlighted ones
            rows.append(_row(span, depth, graph, origins, marks, now, this_pid))
    return rows


def _row(
    span: ReadableSpan,
    depth: int,
    graph: SpanGraph,
    origins: Mapping[int, Origin],
    marks: Mapping[int, str],
    now: int,
    this_pid: int,
) -> dict[str, Any]:
    origin = _origin_text(origins.get(span.context.span_id), this_pid)
    note = _parent_note(span, graph) if depth == 0 else ""
    start = span.start_time or now
    return {
        "depth": depth,
        "name": span.name,
        "kind": span.kind.name.lower(),
        "error": span.status.status_code is StatusCode.ERROR,
        "start": start,
        "end": span.end_time if span.end_time is not None else max(now, start),
        "open": span.end_time is None,
        "origin": origin,
        "note": note,
        "mark": marks.get(span.context.span_id, ""),
        "tip": _tooltip(span, origin, note),
    }


def _parent_note(span: ReadableSpan, graph: SpanGraph) -> str:
    """``parent … (remote)`` or ``parent … (not captured)`` for a top that is not a root."""
    parent = span.parent
    if parent is None or graph.is_root(span):
        return ""
    where = "remote" if parent.is_remote else "not captured"
    return f"parent {parent.span_id:016x} ({where})"


# -- the page ---------------------------------------------------------------------------

_CSS = """
:root { --label: 38%; font-family: system-ui, -apple-system, "Segoe UI", sans-serif; font-size: 14px; }
body { margin: 0 1.2em 2em; color: #1f2328; background: #fff; }
h1 { font-size: 1.35em; margin: .8em 0 .2em; }
code { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: .95em; }
.summary { margin: .2em 0 .6em; color: #444; }
.legend { display: flex; flex-wrap: wrap; gap: .4em 1.1em; margin: .4em 0 1em; font-size: .9em; }
.legend span { display: inline-flex; align-items: center; gap: .35em; }
.swatch { display: inline-block; width: 1.6em; height: .8em; border-radius: 2px; }
nav { margin: 0 0 1em; }
nav ol { margin: .2em 0; padding-left: 1.6em; }
nav > details > summary, details.more-findings > summary { cursor: pointer; color: #57606a; }
summary code, nav code { overflow-wrap: anywhere; }
section.test { border: 1px solid #d0d7de; border-radius: 6px; margin: 0 0 1em; }
section.test > details > summary { padding: .45em .7em; cursor: pointer; background: #f6f8fa;
  border-radius: 6px; }
.outcome { display: inline-block; min-width: 5.5em; font-weight: 600; font-size: .85em;
  text-transform: uppercase; }
.outcome.failed, .outcome.error { color: #b00020; }
.outcome.passed { color: #1a7f37; }
.outcome.skipped, .outcome.xfailed, .outcome.xpassed { color: #9a6700; }
.badge { background: #ffebe9; color: #b00020; border: 1px solid #ff8182; border-radius: 1em; padding: 0 .5em;
  font-size: .8em; margin-left: .5em; white-space: nowrap; }
.meta { color: #57606a; font-size: .85em; margin-left: .5em; }
ul.findings { margin: .5em .7em; padding-left: 1.2em; color: #6e0000; }
ul.findings li { white-space: pre-wrap; overflow-wrap: anywhere; }
details.more-findings { margin: -.3em .7em .5em; }
details.more-findings ul.findings { margin: .3em 0 0; }
.wf { padding: .3em .7em .7em; }
.row { display: grid; grid-template-columns: var(--label) 1fr; align-items: center; min-height: 1.35em; }
.row:hover { background: #f3f6fa; }
.lab { display: flex; align-items: center; min-width: 0; overflow: hidden; white-space: nowrap;
  padding: 0 .6em 0 min(var(--indent, 0px), 100% - 20em); }
.lab > * { flex: 0 1 auto; min-width: 0; overflow: hidden; text-overflow: ellipsis; }
.lab > .origin, .lab > .note { flex-shrink: 3; }
.lab > .mark, .lab > .kind, .lab > .dur { flex: none; overflow: visible; }
.track { position: relative; height: 1.05em; border-left: 1px solid #eaeef2; }
.bar { position: absolute; top: 0; bottom: 0; min-width: 2px; border-radius: 2px; box-sizing: border-box; }
.bar.open, .swatch.open { background-image:
  repeating-linear-gradient(45deg, transparent 0 4px, rgba(255,255,255,.55) 4px 8px); }
.row.broken .bar { outline: 2px solid #d00000; outline-offset: 1px; }
.row.broken .lab { color: #b00020; font-weight: 600; }
.mark { color: #fff; background: #d00000; border-radius: 3px; padding: 0 .35em; font-size: .78em;
  margin-left: .4em; font-weight: 600; }
.kind, .origin, .dur, .note { color: #57606a; font-size: .8em; margin-left: .4em; font-weight: normal; }
.trace-row { margin: .5em 0 .1em; font-size: .82em; color: #57606a; border-bottom: 1px solid #eaeef2; }
.axis .track { border-left: 0; height: 1.2em; }
.tick { position: absolute; top: 0; font-size: .75em; color: #57606a; border-left: 1px solid #c8d1da;
  padding-left: 2px; height: 100%; white-space: nowrap; }
.tick.last { transform: translateX(-100%); border-left: 0; border-right: 1px solid #c8d1da;
  padding: 0 2px 0 0; }
.more { color: #57606a; font-style: italic; padding: .3em 0; }
"""

# Records each bar's rendered position, so a headless browser's DOM dump shows
# that the bars really rendered (``data-px="left,width"`` in CSS pixels).
_SCRIPT = """
(function () {
  function measure() {
    var bars = document.querySelectorAll('.bar');
    var shown = 0;
    for (var i = 0; i < bars.length; i++) {
      var bar = bars[i], box = bar.getBoundingClientRect();
      var track = bar.parentNode, origin = track.getBoundingClientRect().left + track.clientLeft;
      bar.setAttribute('data-px', (box.left - origin).toFixed(1) + ',' + box.width.toFixed(1));
      if (box.width > 0) shown++;
    }
    document.body.setAttribute('data-bars-rendered', String(shown));
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', measure);
  else measure();
  document.addEventListener('toggle', measure, true);
})();
"""

_FAILED = ("failed", "error")
_OUTCOMES = ("failed", "error", "passed", "skipped", "xfailed", "xpassed")


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _percent(value: float) -> str:
    return f"{max(0.0, min(100.0, value)):.4f}%"


def sort_key(test: TestData) -> tuple[int, int, str]:
    """Failed tests first, then tests with broken chains, then the rest; each in collection order."""
    rank = 0 if test["outcome"] in _FAILED else 1 if test["findings"] else 2
    return (rank, test["order"], test["nodeid"])


def page(tests: Iterable[TestData], *, title: str = "pytest-tracechain report") -> str:
    """The whole HTML page for the tests, failures first."""
    tests = sorted(tests, key=sort_key)
    failed = sum(1 for t in tests if t["outcome"] in _FAILED)
    broken = sum(1 for t in tests if t["findings"])
    out: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_esc(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head><body>",
        f"<h1>{_esc(title)}</h1>",
        f'<p class="summary">{len(tests)} captured test{"s" if len(tests) != 1 else ""}: {failed} failed, '
        f"{broken} with broken trace chains. Failed tests come first, then tests with broken chains; "
        "each is open, the others are folded.</p>",
        _legend(),
    ]
    if len(tests) > 1:
        out += _nav(tests)
    budget = PAGE_ROW_LIMIT
    for index, test in enumerate(tests):
        budget -= _test_section(out, index, test, budget)
    if not tests:
        out.append("<p>No test used pytest-tracechain (the tracechain or tracer fixture, or the marker).</p>")
    out.append(f"<script>{_SCRIPT}</script>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _nav(tests: Sequence[TestData]) -> list[str]:
    """The list of tests at the top, each linked to its section.

    A list longer than INDEX_SHOWN shows the failed tests and those with broken
    chains (they come first; at most INDEX_SHOWN) and folds the rest under a count.
    """
    items = [
        f'<li><a href="#t{index}"><span class="outcome {_esc(test["outcome"])}">'
        f"{_esc(test['outcome'])}</span></a> <code>{_esc(test['nodeid'])}</code>"
        + (' <span class="badge">broken chain</span>' if test["findings"] else "")
        + "</li>"
        for index, test in enumerate(tests)
    ]
    shown = len(tests)
    if shown > INDEX_SHOWN:
        shown = min(sum(1 for test in tests if _to_look_at(test)), INDEX_SHOWN)
    if shown == len(tests):
        return ["<nav><ol>", *items, "</ol></nav>"]
    out = ["<nav><ol>", *items[:shown], "</ol>"] if shown else ["<nav>"]
    rest = len(tests) - shown
    more = " more" if shown else ""
    return [
        *out,
        f"<details><summary>{rest}{more} test{'s' if rest != 1 else ''}: {_counts(tests[shown:])}</summary>",
        f'<ol start="{shown + 1}">',
        *items[shown:],
        "</ol></details></nav>",
    ]


def _to_look_at(test: TestData) -> bool:
    return test["outcome"] in _FAILED or bool(test["findings"])


def _counts(tests: Sequence[TestData]) -> str:
    """``60 passed, 2 skipped, 1 with broken trace chains``: outcomes in the order the docs list them."""
    by_outcome = Counter(test["outcome"] for test in tests)
    known = {outcome: rank for rank, outcome in enumerate(_OUTCOMES)}
    order = sorted(by_outcome, key=lambda outcome: (known.get(outcome, len(known)), outcome))
    counts = [f"{by_outcome[outcome]} {_esc(outcome)}" for outcome in order]
    broken = sum(1 for test in tests if test["findings"])
    if broken:
        counts.append(f"{broken} with broken trace chains")
    return ", ".join(counts)


def _legend() -> str:
    items = [
        f'<span><i class="swatch" style="background:{colour}"></i>{kind}</span>'
        for kind, colour in KIND_COLOURS.items()
    ]
    items.append(f'<span><i class="swatch" style="background:{ERROR_COLOUR}"></i>error status</span>')
    items.append(
        f'<span><i class="swatch" style="background:{KIND_COLOURS["internal"]};outline:2px solid '
        f'{BROKEN_OUTLINE};outline-offset:1px"></i>broken chain (the kind is labelled)</span>'
    )
    items.append(
        '<span><i class="swatch open" style="'
        f'background-color:{KIND_COLOURS["internal"]}"></i>still open when the test ended</span>'
    )
    return '<div class="legend">' + "".join(items) + "</div>"


def _test_section(out: list[str], index: int, test: TestData, budget: int) -> int:
    """Append one test's section; returns the number of span rows used."""
    outcome = test["outcome"]
    is_open = outcome in _FAILED or bool(test["findings"])
    out.append(f'<section class="test {_esc(outcome)}" id="t{index}">')
    out.append("<details open>" if is_open else "<details>")
    out.append(_summary(test))
    if test["findings"]:
        out += _findings(test["findings"])
    out.append('<div class="wf">')
    used = _waterfall(out, test, budget)
    left_out = test["spans"] - used
    if left_out > 0:
        why = "page limit reached" if used >= budget else f"at most {ROW_LIMIT} rows per test"
        out.append(f'<div class="more">... {left_out} more span{"s" if left_out != 1 else ""} ({why})</div>')
    if not test["spans"]:
        out.append('<div class="more">no spans captured</div>')
    out.append("</div></details></section>")
    return used


def _findings(findings: Sequence[Sequence[str]]) -> list[str]:
    """The list of a test's findings: the first FINDINGS_SHOWN, then the rest folded."""
    items = [f"<li><b>[{_esc(kind)}]</b> {_esc(message)}</li>" for kind, message in findings]
    out = ['<ul class="findings">', *items[:FINDINGS_SHOWN], "</ul>"]
    rest = len(items) - FINDINGS_SHOWN
    if rest > 0:
        out += [
            f'<details class="more-findings"><summary>{rest} more broken chain{"s" if rest != 1 else ""}'
            '</summary><ul class="findings">',
            *items[FINDINGS_SHOWN:],
            "</ul></details>",
        ]
    return out


def _summary(test: TestData) -> str:
    """The line of a test's section that stays visible when it is folded."""
    outcome, span_count, traces = test["outcome"], test["spans"], test["traces"]
    kinds = sorted({kind for kind, _ in test["findings"]})
    return (
        f'<summary><span class="outcome {_esc(outcome)}">{_esc(outcome)}</span> '
        f"<code>{_esc(test['nodeid'])}</code>"
        + "".join(f' <span class="badge">{_esc(kind)}</span>' for kind in kinds)
        + f'<span class="meta">{span_count} span{"s" if span_count != 1 else ""}, '
        f"{traces} trace{'s' if traces != 1 else ''}, "
        f"{_esc(format_nanoseconds(test['t1'] - test['t0']))}</span></summary>"
    )


def _waterfall(out: list[str], test: TestData, budget: int) -> int:
    """Append the axis and the rows of a test, at most ``budget`` span rows; returns the number used."""
    used = 0
    rows = test["rows"]
    if rows:
        out.append(_axis(test["t1"] - test["t0"]))
    t0, span_ns = test["t0"], max(test["t1"] - test["t0"], 1)
    for row in rows:
        if used >= budget:
            break
        if "trace" in row:
            count = row["count"]
            out.append(
                f'<div class="trace-row">trace <code>{_esc(row["trace"])}</code> · {count} '
                f"span{'s' if count != 1 else ''}</div>"
            )
            continue
        used += 1
        out.append(_span_row(row, t0, span_ns))
    return used


def _axis(total_ns: int) -> str:
    ticks = []
    for step in range(5):
        fraction = step / 4
        label = _esc(format_nanoseconds(int(total_ns * fraction)))
        last = " last" if step == 4 else ""
        ticks.append(f'<span class="tick{last}" style="left:{_percent(fraction * 100)}">{label}</span>')
    return f'<div class="row axis"><div class="lab"></div><div class="track">{"".join(ticks)}</div></div>'


def _span_row(row: Mapping[str, Any], t0: int, span_ns: int) -> str:
    kind = row["kind"]
    colour = ERROR_COLOUR if row["error"] else KIND_COLOURS.get(kind, KIND_COLOURS["internal"])
    left = (row["start"] - t0) / span_ns * 100
    width = (row["end"] - row["start"]) / span_ns * 100
    classes = ["row", f"kind-{kind}"]
    if row["error"]:
        classes.append("error")
    if row["mark"]:
        classes.append("broken")
    tip = _esc(row["tip"])
    indent = min(row["depth"], MAX_INDENT) * INDENT_PX
    bar_classes = "bar open" if row["open"] else "bar"
    return (
        f'<div class="{" ".join(classes)}"><div class="lab" style="--indent:{indent}px" title="{tip}">'
        + _span_label(row)
        + f'</div><div class="track"><div class="{bar_classes}" title="{tip}" '
        f'style="left:{_percent(left)};width:{_percent(width)};background-color:{colour}"></div></div></div>'
    )


def _span_label(row: Mapping[str, Any]) -> str:
    """The name, mark, kind, duration, origin and note of a span row, as HTML.

    The mark comes right after the name. In a narrow label the name, origin and
    note give way (ellipsis); the mark, kind and duration stay whole (CSS). A
    ``bdi`` keeps a right-to-left name from reordering the label around it.
    """
    depth, kind = row["depth"], row["kind"]
    deep = f"[depth {depth}] " if depth > MAX_INDENT else ""
    duration = "open" if row["open"] else format_nanoseconds(row["end"] - row["start"])
    label = [f'<bdi class="name">{_esc(deep)}{_esc(row["name"])}</bdi>']
    if row["mark"]:
        label.append(f'<span class="mark">{_esc(row["mark"])}</span>')
    if kind != SpanKind.INTERNAL.name.lower():
        label.append(f'<span class="kind">{_esc(kind)}</span>')
    label.append(f'<span class="dur">{_esc(duration)}</span>')
    for key in ("origin", "note"):
        if row[key]:
            label.append(f'<span class="{key}">{_esc(row[key])}</span>')
    return " ".join(label)
