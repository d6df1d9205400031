"""The HTML page: each test reduced to plain data (rows in tree order, counts, marks), then the page."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, Status, StatusCode

from pytest_tracechain import _html
from pytest_tracechain._chain import Finding, FindingKind
from pytest_tracechain._html import TestData as Reduced  # not "Test…": pytest would collect it
from pytest_tracechain._html import page, reduce_test, sort_key
from pytest_tracechain._origins import Origin
from tests.unit.spans import RESOURCE, ctx, span

T1, T2 = (f"{trace_id:032x}" for trace_id in (1, 2))


def reduced(spans: list[ReadableSpan], **overrides: object) -> Reduced:
    arguments: dict[str, object] = {
        "findings": [],
        "origins": {},
        "ambient": (),
        "outcome": "passed",
        "order": 0,
        "end_time": 4_000_500,
    }
    arguments.update(overrides)
    return reduce_test("t.py::test", spans, **arguments)  # type: ignore[arg-type]


def scenario() -> list[ReadableSpan]:
    return [
        span("GET /", 1, kind=SpanKind.SERVER, start=1_000, end=3_001_000, attributes={"http.method": "GET"}),
        span("db", 2, 1, start=2_000, end=1_002_000),
        span("late", 3, ctx(9, remote=True), trace_id=2, start=500, still_open=True),
    ]


def test_a_test_reduced_to_rows_in_tree_order() -> None:
    spans = scenario()
    findings = [
        Finding(FindingKind.ORPHAN, spans[1], "lost"),
        Finding(FindingKind.UNENDED, spans[1], "x"),
        Finding(FindingKind.UNENDED, None, "y"),
    ]
    data = reduced(spans, findings=findings, origins={2: Origin(1, "w", 2)}, outcome="failed", order=3)
    assert data == {
        "nodeid": "t.py::test",
        "outcome": "failed",
        "order": 3,
        "t0": 500,
        "t1": 4_000_500,
        "spans": 3,
        "traces": 2,
        "rows": [
            {"trace": T2, "count": 1},
            {
                "depth": 0,
                "name": "late",
                "kind": "internal",
                "error": False,
                "start": 500,
                "end": 4_000_500,
                "open": True,
                "origin": "",
                "note": "parent 0000000000000009 (remote)",
                "mark": "",
                "tip": "late\nkind: internal\nstill open when the test ended\n"
                f"trace {T2}, span 0000000000000003\nparent 0000000000000009 (remote)",
            },
            {"trace": T1, "count": 2},
            {
                "depth": 0,
                "name": "GET /",
                "kind": "server",
                "error": False,
                "start": 1_000,
                "end": 3_001_000,
                "open": False,
                "origin": "",
                "note": "",
                "mark": "",
                "tip": f"GET /\nkind: server\nduration: 3.0 ms\ntrace {T1}, span 0000000000000001\nhttp.method = GET",
            },
            {
                "depth": 1,
                "name": "db",
                "kind": "internal",
                "error": False,
                "start": 2_000,
                "end": 1_002_000,
                "open": False,
                "origin": "pid 1, thread 'w'",
                "note": "",
                "mark": "orphan",
                "tip": f"db\nkind: internal\nduration: 1.0 ms\norigin: pid 1, thread 'w'\ntrace {T1}, span 0000000000000002",
            },
        ],
        "more": 0,
        "findings": [["orphan", "lost"], ["unended", "x"], ["unended", "y"]],
    }


def names(data: Reduced) -> list[str]:
    return [row.get("name") or f"trace {row['trace'][-1]}" for row in data["rows"]]


def test_rows_stop_at_the_row_limit_and_the_rest_is_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    spans = [span("root", 1), span("a", 2, 1), span("b", 3, 1), span("lone", 4, trace_id=2)]
    monkeypatch.setattr(_html, "ROW_LIMIT", 2)
    data = reduced(spans)
    assert (names(data), data["more"], data["spans"], data["traces"]) == (["trace 1", "root", "a"], 2, 4, 2)
    monkeypatch.setattr(_html, "ROW_LIMIT", 3)
    assert (names(data := reduced(spans)), data["more"]) == (["trace 1", "root", "a", "b"], 1)
    monkeypatch.setattr(_html, "ROW_LIMIT", 4)
    assert (names(data := reduced(spans)), data["more"]) == (
        ["trace 1", "root", "a", "b", "trace 2", "lone"],
        0,
    )


def test_notes_on_tops_whose_parent_is_not_captured_or_remote_but_not_ambient() -> None:
    spans = [
        span("orphan", 1, 99),
        span("kid", 2, 1),
        span("under the harness", 3, 7, trace_id=2),
        span("consumer", 4, ctx(8, remote=True), trace_id=2),
    ]
    rows = [row for row in reduced(spans, ambient=[7])["rows"] if "name" in row]
    assert [(row["name"], row["depth"], row["note"]) for row in rows] == [
        ("orphan", 0, "parent 0000000000000063 (not captured)"),
        ("kid", 1, ""),
        ("under the harness", 0, ""),
        ("consumer", 0, "parent 0000000000000008 (remote)"),
    ]


def test_errors_and_the_ends_of_open_spans() -> None:
    failed = ReadableSpan(
        name="boom",
        context=ctx(1),
        start_time=10,
        end_time=20,
        status=Status(StatusCode.ERROR),
        resource=RESOURCE,
    )
    after_now = span("after now", 2, start=5_000, still_open=True)
    no_start = ReadableSpan(
        name="no start", context=ctx(3), start_time=None, end_time=None, resource=RESOURCE
    )
    data = reduced([failed, after_now, no_start], end_time=100)
    rows = {row["name"]: row for row in data["rows"] if "name" in row}
    assert (rows["boom"]["error"], rows["after now"]["error"]) == (True, False)
    assert (rows["after now"]["start"], rows["after now"]["end"]) == (5_000, 5_000)
    assert (rows["no start"]["start"], rows["no start"]["end"], rows["no start"]["open"]) == (100, 100, True)
    assert (data["t0"], data["t1"]) == (10, 100)


def test_the_time_range_of_no_spans_and_of_spans_open_before_now() -> None:
    empty = reduced([], end_time=77)
    assert (empty["t0"], empty["t1"], empty["rows"], empty["more"], empty["spans"], empty["traces"]) == (
        77,
        77,
        [],
        0,
        0,
        0,
    )
    opened = reduced([span("open", 1, start=500, still_open=True)], end_time=100)
    assert (opened["t0"], opened["t1"]) == (500, 500)


def tip(span: ReadableSpan) -> str:
    (row,) = [row for row in reduced([span])["rows"] if "name" in row]
    return str(row["tip"])


def test_tooltips_with_status_attributes_and_links() -> None:
    attributes: dict[str, object] = {f"k{index}": index for index in range(21)}
    attributes["k0"] = "x" * 201
    attributes["k1"] = "y" * 200
    linked = span("linked", 1, links=[ctx(5, trace_id=3)], attributes=attributes)
    failed = ReadableSpan(
        name="f",
        context=ctx(2),
        start_time=0,
        end_time=2,
        status=Status(StatusCode.ERROR, "boom"),
        resource=RESOURCE,
    )
    ok = ReadableSpan(
        name="ok", context=ctx(3), start_time=0, end_time=2, status=Status(StatusCode.OK), resource=RESOURCE
    )
    assert tip(linked).splitlines() == [
        "linked",
        "kind: internal",
        "duration: 0 µs",
        f"trace {T1}, span 0000000000000001",
        "k0 = " + "x" * 200 + "…",
        "k1 = " + "y" * 200,
        *(f"k{index} = {index}" for index in range(2, 20)),
        "… 1 more attributes",
        f"link: trace {3:032x}, span 0000000000000005",
    ]
    assert tip(failed).splitlines()[-1] == "status: ERROR: boom"
    assert tip(ok).splitlines()[-1] == "status: OK"
    twenty = span("twenty", 4, attributes=dict.fromkeys((f"k{index}" for index in range(20)), 19))
    assert tip(twenty).splitlines()[-1] == "k19 = 19"


# -- the page ------------------------------------------------------------------------


def body(html: str) -> list[str]:
    """The page between the legend and the script."""
    lines = html[html.index("</div>\n", html.index('<div class="legend">')) + 7 : html.index("<script>")]
    return lines.splitlines()


def test_a_test_section_with_findings_a_waterfall_and_its_rows() -> None:
    spans = scenario()
    data = reduced(spans, findings=[Finding(FindingKind.ORPHAN, spans[1], "lost <it>")], outcome="failed")
    lines = body(page([data]))
    assert lines[:6] == [
        '<section class="test failed" id="t0">',
        "<details open>",
        '<summary><span class="outcome failed">failed</span> <code>t.py::test</code> <span class="badge">orphan</span>'
        '<span class="meta">3 spans, 2 traces, 4.0 ms</span></summary>',
        '<ul class="findings">',
        "<li><b>[orphan]</b> lost &lt;it&gt;</li>",
        "</ul>",
    ]
    assert lines[6:8] == [
        '<div class="wf">',
        '<div class="row axis"><div class="lab"></div><div class="track">'
        '<span class="tick" style="left:0.0000%">0 µs</span><span class="tick" style="left:25.0000%">1.0 ms</span>'
        '<span class="tick" style="left:50.0000%">2.0 ms</span><span class="tick" style="left:75.0000%">3.0 ms</span>'
        '<span class="tick last" style="left:100.0000%">4.0 ms</span></div></div>',
    ]
    assert lines[8] == f'<div class="trace-row">trace <code>{T2}</code> · 1 span</div>'
    assert f'<div class="trace-row">trace <code>{T1}</code> · 2 spans</div>' in lines
    assert lines[-1] == "</div></details></section>"


def test_a_span_row() -> None:
    row = {
        "depth": 1,
        "name": "db <q>",
        "kind": "client",
        "error": True,
        "start": 1_000,
        "end": 2_000,
        "open": False,
        "origin": "pid 1",
        "note": "parent x",
        "mark": "orphan",
        "tip": 'a "tip"',
    }
    assert _html._span_row(row, 0, 4_000) == (
        '<div class="row kind-client error broken"><div class="lab" style="--indent:14px" '
        'title="a &quot;tip&quot;"><bdi class="name">db &lt;q&gt;</bdi> <span class="mark">orphan</span> '
        '<span class="kind">client</span> <span class="dur">1 µs</span> '
        '<span class="origin">pid 1</span> <span class="note">parent x</span>'
        '</div><div class="track"><div class="bar" title="a &quot;tip&quot;" '
        'style="left:25.0000%;width:25.0000%;background-color:#d62728"></div></div></div>'
    )


def test_a_plain_open_span_row_and_deep_rows() -> None:
    row = {
        "depth": 0,
        "name": "work",
        "kind": "internal",
        "error": False,
        "start": 0,
        "end": 10,
        "open": True,
        "origin": "",
        "note": "",
        "mark": "",
        "tip": "t",
    }
    assert _html._span_row(row, 0, 10) == (
        '<div class="row kind-internal"><div class="lab" style="--indent:0px" title="t">'
        '<bdi class="name">work</bdi> <span class="dur">open</span></div><div class="track"><div class="bar open" title="t" '
        'style="left:0.0000%;width:100.0000%;background-color:#4c78a8"></div></div></div>'
    )
    at_max = _html._span_row({**row, "depth": _html.MAX_INDENT}, 0, 10)
    deeper = _html._span_row({**row, "depth": _html.MAX_INDENT + 1, "kind": "unknown"}, 0, 10)
    assert 'style="--indent:168px" title="t"><bdi class="name">work</bdi> <span' in at_max
    assert (
        'style="--indent:168px" title="t"><bdi class="name">[depth 13] work</bdi> <span class="kind">unknown</span>'
        in deeper
    )
    assert "background-color:#4c78a8" in deeper


def test_spans_past_the_rows_and_the_page_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_html, "ROW_LIMIT", 2)
    spans = [span("root", 1), span("a", 2, 1), span("b", 3, 1)]
    lines = body(page([reduced(spans)]))
    assert lines[-2] == '<div class="more">... 1 more span (at most 2 rows per test)</div>'
    monkeypatch.setattr(_html, "ROW_LIMIT", 5)
    monkeypatch.setattr(_html, "PAGE_ROW_LIMIT", 1)
    lines = body(page([reduced(spans)]))
    assert lines[-2] == '<div class="more">... 2 more spans (page limit reached)</div>'
    assert sum('class="row kind-' in line for line in lines) == 1


def test_a_test_without_spans() -> None:
    lines = body(page([reduced([])]))
    assert lines == [
        '<section class="test passed" id="t0">',
        "<details>",
        '<summary><span class="outcome passed">passed</span> <code>t.py::test</code>'
        '<span class="meta">0 spans, 0 traces, 0 µs</span></summary>',
        '<div class="wf">',
        '<div class="more">no spans captured</div>',
        "</div></details></section>",
    ]


def test_failed_tests_first_then_broken_chains_with_a_list_of_tests() -> None:
    orphan = Finding(FindingKind.ORPHAN, None, "o")
    tests = [
        {**reduced([]), "nodeid": "passed", "order": 0},
        {**reduced([], findings=[orphan]), "nodeid": "broken", "order": 1},
        {**reduced([], outcome="error"), "nodeid": "error", "order": 3},
        {**reduced([], outcome="failed"), "nodeid": "failed", "order": 2},
    ]
    assert [sort_key(test) for test in tests] == [
        (2, 0, "passed"),
        (1, 1, "broken"),
        (0, 3, "error"),
        (0, 2, "failed"),
    ]
    html = page(tests, title="<Report>")
    assert "<title>&lt;Report&gt;</title>" in html
    assert "<h1>&lt;Report&gt;</h1>" in html
    assert (
        '<p class="summary">4 captured tests: 2 failed, 1 with broken trace chains. Failed tests come first, '
        "then tests with broken chains; each is open, the others are folded.</p>"
    ) in html
    nav = html[html.index("<nav><ol>") : html.index("</ol></nav>")].splitlines()
    assert nav == [
        "<nav><ol>",
        '<li><a href="#t0"><span class="outcome failed">failed</span></a> <code>failed</code></li>',
        '<li><a href="#t1"><span class="outcome error">error</span></a> <code>error</code></li>',
        '<li><a href="#t2"><span class="outcome passed">passed</span></a> <code>broken</code> '
        '<span class="badge">broken chain</span></li>',
        '<li><a href="#t3"><span class="outcome passed">passed</span></a> <code>passed</code></li>',
    ]
    sections = [line for line in body(html) if line.startswith(("<section", "<details"))]
    assert sections == [
        '<section class="test failed" id="t0">',
        "<details open>",
        '<section class="test error" id="t1">',
        "<details open>",
        '<section class="test passed" id="t2">',
        "<details open>",
        '<section class="test passed" id="t3">',
        "<details>",
    ]


def test_one_test_has_no_list_and_no_test_says_so() -> None:
    one = page([reduced([])])
    assert "<nav>" not in one
    assert '<p class="summary">1 captured test: 0 failed, 0 with broken trace chains.' in one
    none = page([])
    assert "<p>No test used pytest-tracechain (the tracechain or tracer fixture, or the marker).</p>" in none
    assert none.endswith("</body></html>\n")


def several(*outcomes: str, broken: int = 0) -> list[Reduced]:
    """One test per outcome, in collection order; the first ``broken`` of them with a finding."""
    finding = Finding(FindingKind.ORPHAN, None, "o")
    return [
        {
            **reduced([], outcome=outcome, findings=[finding] if index < broken else []),
            "nodeid": f"t{index}",
            "order": index,
        }
        for index, outcome in enumerate(outcomes)
    ]


def nav(html: str) -> list[str]:
    return html[html.index("<nav>") : html.index("</nav>")].splitlines()


def item(index: int, outcome: str, nodeid: str, badge: bool = False) -> str:
    return (
        f'<li><a href="#t{index}"><span class="outcome {outcome}">{outcome}</span></a> <code>{nodeid}</code>'
        + (' <span class="badge">broken chain</span>' if badge else "")
        + "</li>"
    )


def test_a_list_of_up_to_ten_tests_shows_them_all() -> None:
    assert nav(page(several(*["passed"] * 10))) == [
        "<nav><ol>",
        *(item(index, "passed", f"t{index}") for index in range(10)),
        "</ol>",
    ]


def test_a_longer_list_shows_the_tests_to_look_at_and_folds_the_rest() -> None:
    tests = several("failed", "passed", "error", "skipped", *["passed"] * 7, "xfailed", broken=2)
    assert nav(page(tests)) == [
        "<nav><ol>",
        item(0, "failed", "t0", badge=True),
        item(1, "error", "t2"),
        item(2, "passed", "t1", badge=True),
        "</ol>",
        "<details><summary>9 more tests: 7 passed, 1 skipped, 1 xfailed</summary>",
        '<ol start="4">',
        item(3, "skipped", "t3"),
        *(item(index, "passed", f"t{index}") for index in range(4, 11)),
        item(11, "xfailed", "t11"),
        "</ol></details>",
    ]


def test_a_longer_list_with_nothing_to_look_at_is_folded_whole() -> None:
    assert nav(page(several(*["passed"] * 10, "xpassed"))) == [
        "<nav>",
        "<details><summary>11 tests: 10 passed, 1 xpassed</summary>",
        '<ol start="1">',
        *(item(index, "passed", f"t{index}") for index in range(10)),
        item(10, "xpassed", "t10"),
        "</ol></details>",
    ]


def test_at_most_ten_tests_to_look_at_are_listed() -> None:
    tests = several(*["failed"] * 11, "passed", broken=12)
    lines = nav(page(tests))
    assert lines[:2] == ["<nav><ol>", item(0, "failed", "t0", badge=True)]
    assert lines[11:14] == [
        "</ol>",
        "<details><summary>2 more tests: 1 failed, 1 passed, 2 with broken trace chains</summary>",
        '<ol start="11">',
    ]
    one_more = nav(page(several(*["failed"] * 10, "passed")))
    assert one_more[12] == "<details><summary>1 more test: 1 passed</summary>"


def test_findings_past_the_third_are_folded() -> None:
    findings = [Finding(FindingKind.ORPHAN, None, f"o{index}") for index in range(5)]
    lines = body(page([reduced([], findings=findings)]))
    start = lines.index('<ul class="findings">')
    assert lines[start : start + 10] == [
        '<ul class="findings">',
        "<li><b>[orphan]</b> o0</li>",
        "<li><b>[orphan]</b> o1</li>",
        "<li><b>[orphan]</b> o2</li>",
        "</ul>",
        '<details class="more-findings"><summary>2 more broken chains</summary><ul class="findings">',
        "<li><b>[orphan]</b> o3</li>",
        "<li><b>[orphan]</b> o4</li>",
        "</ul></details>",
        '<div class="wf">',
    ]
    four = body(page([reduced([], findings=findings[:4])]))
    assert (
        '<details class="more-findings"><summary>1 more broken chain</summary><ul class="findings">' in four
    )
    three = body(page([reduced([], findings=findings[:3])]))
    assert not any("more-findings" in line for line in three)
