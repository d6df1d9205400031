"""--tracechain-export (OTLP JSON files) and --tracechain-html (the waterfall page), as users run them."""

from __future__ import annotations

import base64
import json
import math
import re
import struct
import zlib
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from pytest_tracechain._export import NAME_LIMIT, any_value, file_name
from tests._chromium import find_chromium, run_chromium
from tests.conftest import RunPytest

# A suite with a broken chain (a thread that lost the context), a failing test
# with sequential steps, remote parents, events, links, every attribute type,
# and a passing test.
SUITE = """
import threading

import pytest
from opentelemetry import context, trace
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState

REMOTE = SpanContext(
    0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, is_remote=True,
    trace_flags=TraceFlags(1), trace_state=TraceState([("vendor", "x1")]),
)


def test_checkout_fails(tracer):
    with tracer.start_as_current_span("POST /checkout", kind=SpanKind.SERVER):
        for step in ("step 1", "step 2", "step 3"):
            with tracer.start_as_current_span(step):
                pass

        def work():
            with tracer.start_as_current_span("send receipt") as span:
                span.set_status(Status(StatusCode.ERROR, "smtp down"))

        thread = threading.Thread(target=work, name="mailer")
        thread.start()
        thread.join()
    assert False, "checkout failed"


def test_consumer_fails(tracer):
    token = context.attach(trace.set_span_in_context(NonRecordingSpan(REMOTE)))
    try:
        with tracer.start_as_current_span(
            "orders process",
            kind=SpanKind.CONSUMER,
            links=[Link(REMOTE, {"link.note": "batch"})],
            attributes={
                "s": "<script>alert(1)</script>", "b": True, "i": -7, "big": 2**62, "d": 0.25,
                "nan": float("nan"), "inf": float("-inf"), "by": b"\\x00\\xffbytes",
                "ls": ["a", "b"], "li": [1, 2], "lf": [0.5], "lb": [True, False],
            },
        ) as span:
            span.add_event("retry", {"attempt": 2})
            span.set_status(Status(StatusCode.OK))
    finally:
        context.detach(token)
    assert 0


def test_passes(tracer):
    with tracer.start_as_current_span("<img src=x onerror=alert(1)>"):
        pass


def test_not_captured():
    assert True
"""

EXPECTED_FILES = {
    file_name("test_suite.py::test_checkout_fails"),
    file_name("test_suite.py::test_consumer_fails"),
}


def _spans(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        span
        for resource_spans in document["resourceSpans"]
        for scope_spans in resource_spans["scopeSpans"]
        for span in scope_spans["spans"]
    ]


def _proto_has_span_flags() -> bool:
    """Whether the installed opentelemetry-proto knows the span flags (1.25 and later)."""
    from opentelemetry.proto.trace.v1 import trace_pb2

    return "flags" in trace_pb2.Span.DESCRIPTOR.fields_by_name


def _sdk_keeps_bytes() -> bool:
    """Whether this OpenTelemetry SDK keeps bytes attribute values that are not UTF-8 (1.24 drops them)."""
    from opentelemetry.sdk.trace import TracerProvider

    span = TracerProvider().get_tracer("probe").start_span("probe", attributes={"by": b"\x00\xffbytes"})
    return "by" in (span.attributes or {})


def _attributes(message: dict[str, Any]) -> dict[str, Any]:
    return {kv["key"]: kv["value"] for kv in message.get("attributes", ())}


# -- export ---------------------------------------------------------------------------------


def test_export_writes_one_otlp_json_file_per_failing_test(
    pytester: pytest.Pytester, run_pytest: RunPytest
) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = run_pytest("--tb=short", "--tracechain-export=out/otlp")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(
        ["-* tracechain: 2 OTLP JSON files (one per failing captured test) in out/otlp -*"]
    )
    out = pytester.path / "out" / "otlp"
    assert {p.name for p in out.iterdir()} == EXPECTED_FILES

    checkout = json.loads((out / file_name("test_suite.py::test_checkout_fails")).read_text())
    assert list(checkout) == ["resourceSpans"]
    (resource_spans,) = checkout["resourceSpans"]
    resource = _attributes(resource_spans["resource"])
    assert resource["telemetry.sdk.language"] == {"stringValue": "python"}
    (scope_spans,) = resource_spans["scopeSpans"]
    assert scope_spans["scope"]["name"] == "pytest-tracechain"
    spans = {span["name"]: span for span in scope_spans["spans"]}
    assert set(spans) == {"POST /checkout", "step 1", "step 2", "step 3", "send receipt"}
    root, step, receipt = spans["POST /checkout"], spans["step 1"], spans["send receipt"]
    assert re.fullmatch(r"[0-9a-f]{32}", root["traceId"])
    assert re.fullmatch(r"[0-9a-f]{16}", root["spanId"])
    assert "parentSpanId" not in root
    assert root["kind"] == 2  # SPAN_KIND_SERVER
    assert step["kind"] == 1  # SPAN_KIND_INTERNAL
    assert step["parentSpanId"] == root["spanId"]
    assert step["traceId"] == root["traceId"]
    assert step["flags"] & 0x301 == 0x101  # sampled; the parent is known to be local
    assert isinstance(step["startTimeUnixNano"], str)
    assert isinstance(step["endTimeUnixNano"], str)
    assert int(root["startTimeUnixNano"]) <= int(step["startTimeUnixNano"]) < int(step["endTimeUnixNano"])
    assert receipt["traceId"] != root["traceId"]  # the broken chain, as captured
    assert receipt["status"] == {"code": 2, "message": "smtp down"}

    consumer_doc = json.loads((out / file_name("test_suite.py::test_consumer_fails")).read_text())
    (consumer,) = _spans(consumer_doc)
    assert consumer["traceId"] == "0af7651916cd43dd8448eb211c80319c"
    assert consumer["parentSpanId"] == "b7ad6b7169203331"
    assert consumer["flags"] & 0x301 == 0x301  # sampled; the parent is remote
    assert consumer["traceState"] == "vendor=x1"
    assert consumer["kind"] == 5  # SPAN_KIND_CONSUMER
    assert consumer["status"] == {"code": 1}
    assert _attributes(consumer) == {
        "s": {"stringValue": "<script>alert(1)</script>"},
        "b": {"boolValue": True},
        "i": {"intValue": "-7"},
        "big": {"intValue": str(2**62)},
        "d": {"doubleValue": 0.25},
        "nan": {"doubleValue": "NaN"},
        "inf": {"doubleValue": "-Infinity"},
        "ls": {"arrayValue": {"values": [{"stringValue": "a"}, {"stringValue": "b"}]}},
        "li": {"arrayValue": {"values": [{"intValue": "1"}, {"intValue": "2"}]}},
        "lf": {"arrayValue": {"values": [{"doubleValue": 0.5}]}},
        "lb": {"arrayValue": {"values": [{"boolValue": True}, {"boolValue": False}]}},
    } | ({"by": {"bytesValue": base64.b64encode(b"\x00\xffbytes").decode()}} if _sdk_keeps_bytes() else {})
    (event,) = consumer["events"]
    assert event["name"] == "retry"
    assert event["attributes"] == [{"key": "attempt", "value": {"intValue": "2"}}]
    assert isinstance(event["timeUnixNano"], str)
    (link,) = consumer["links"]
    assert link == {
        "traceId": "0af7651916cd43dd8448eb211c80319c",
        "spanId": "b7ad6b7169203331",
        "traceState": "vendor=x1",
        "attributes": [{"key": "link.note", "value": {"stringValue": "batch"}}],
        "flags": 0x301,
    }

    # The files parse as OTLP ExportTraceServiceRequest (protobuf's JSON mapping
    # wants base64 ids; the OTLP JSON encoding has hex ones).
    json_format = pytest.importorskip("google.protobuf.json_format")
    service = pytest.importorskip("opentelemetry.proto.collector.trace.v1.trace_service_pb2")
    for document in (checkout, consumer_doc):
        request = json_format.ParseDict(
            _ids_to_base64(document),
            service.ExportTraceServiceRequest(),
            ignore_unknown_fields=not _proto_has_span_flags(),  # 1.24 predates the flags fields
        )
        parsed = [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
        assert [s.span_id.hex() for s in parsed] == [s["spanId"] for s in _spans(document)]
    parsed_consumer = request.resource_spans[0].scope_spans[0].spans[0]
    parsed_attributes = {kv.key: kv.value for kv in parsed_consumer.attributes}
    if _sdk_keeps_bytes():
        assert parsed_attributes["by"].bytes_value == b"\x00\xffbytes"
    assert math.isnan(parsed_attributes["nan"].double_value)
    assert parsed_consumer.start_time_unix_nano == int(consumer["startTimeUnixNano"])


def _ids_to_base64(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: base64.b64encode(bytes.fromhex(item)).decode()
            if key in ("traceId", "spanId", "parentSpanId")
            else _ids_to_base64(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_ids_to_base64(item) for item in value]
    return value


def test_export_marks_spans_still_open(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    pytester.makepyfile(
        """
        def test_leaves_a_span_open(tracer):
            tracer.start_span("never ended")
        """
    )
    result = run_pytest("--tb=short", "--tracechain-check=fail", "--tracechain-export=out")
    result.assert_outcomes(passed=1, errors=1)
    (path,) = (pytester.path / "out").iterdir()
    (span,) = _spans(json.loads(path.read_text()))
    assert span["name"] == "never ended"
    assert _attributes(span)["tracechain.unended"] == {"boolValue": True}
    assert int(span["endTimeUnixNano"]) >= int(span["startTimeUnixNano"])


def test_export_summary_says_when_nothing_failed(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    pytester.makeini("[pytest]\ntracechain_export = traces\n")
    pytester.makepyfile("def test_ok(tracer):\n    tracer.start_span('a').end()\n")
    result = run_pytest()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["-* tracechain: 0 OTLP JSON files (one per failing captured test) in traces -*"]
    )
    assert not (pytester.path / "traces").exists()


def test_export_into_a_file_is_reported_not_raised(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    pytester.makefile(".txt", blocker="not a directory")
    pytester.makepyfile("def test_fails(tracer):\n    tracer.start_span('a').end()\n    assert 0\n")
    result = run_pytest("--tb=short", "--tracechain-export=blocker.txt/out")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "-* tracechain: 0 OTLP JSON files (one per failing captured test) in blocker.txt/out -*",
            "tracechain: could not write the report of test_export_into_a_file_is_reported_not_raised.py"
            "::test_fails: *Error: *blocker.txt*",
        ]
    )


# Records what the spans of each test were, for the round trip to compare against.
RECORD_ORIGINALS = """
import json

import pytest


def describe(span):
    return {
        "name": span.name,
        "trace": span.context.trace_id,
        "parent": [span.parent.span_id, span.parent.is_remote] if span.parent else None,
        "state": span.context.trace_state.to_header(),
        "kind": span.kind.name,
        "times": [span.start_time, span.end_time],
        "attributes": repr(sorted(dict(span.attributes).items())),
        "events": repr([(e.name, e.timestamp, sorted(dict(e.attributes).items())) for e in span.events]),
        "links": repr([(l.context.trace_id, l.context.span_id, dict(l.attributes)) for l in span.links]),
        "status": [span.status.status_code.name, span.status.description],
        "scope": span.instrumentation_scope.name,
        "resource": repr(sorted(span.resource.attributes.items())),
    }


@pytest.fixture(autouse=True)
def record(request, tracechain):
    yield
    with open("originals.jsonl", "a") as out:
        for span in tracechain.spans:
            out.write(json.dumps([span.context.span_id, describe(span)]) + "\\n")
"""

ROUND_TRIP = """
import json
import pathlib
import urllib.request

from conftest import describe


def test_exported_files_round_trip(otlp_receiver, tracechain):
    originals = dict(json.loads(line) for line in pathlib.Path("originals.jsonl").read_text().splitlines())
    originals = {int(key): value for key, value in originals.items()}
    files = sorted(pathlib.Path("out").glob("*.json"))
    assert len(files) == 2
    for path in files:
        request = urllib.request.Request(
            otlp_receiver.traces_endpoint, data=path.read_bytes(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
    received = tracechain.wait_for(count=6, timeout=10)
    assert len(received) == 6
    for span in received:
        assert describe(span) == originals[span.context.span_id]
"""


def test_exported_files_round_trip_through_otlp_receiver(
    pytester: pytest.Pytester, run_pytest: RunPytest
) -> None:
    """Spans exported, posted to otlp_receiver, and decoded are the spans the test captured."""
    pytest.importorskip("google.protobuf")
    if not _proto_has_span_flags():
        pytest.skip("opentelemetry-proto before 1.25 has no span flags: a remote parent cannot round-trip")
    pytester.makepyfile(test_suite=SUITE)
    pytester.makeconftest(RECORD_ORIGINALS)
    run_pytest("--tb=short", "--tracechain-export=out").assert_outcomes(passed=2, failed=2)
    pytester.makepyfile(test_suite=ROUND_TRIP)
    result = run_pytest("--tb=short")
    result.assert_outcomes(passed=1)


@pytest.mark.parametrize(
    "nodeid",
    [
        "tests/test_a.py::test_x[a/b]",
        "tests/test_a.py::test_x[a:b]",
        "tests/test_a.py::TestC::test_x[ü-日本]",
        "tests/test_a.py::test_x[" + "long-" * 200 + "]",
        "..",
        "",
    ],
)
def test_file_names_are_safe_and_bounded(nodeid: str) -> None:
    name = file_name(nodeid)
    assert re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9._-]*-[0-9a-f]{10}\.json", name), name
    assert len(name) <= NAME_LIMIT + len("-0123456789.json")


def test_file_names_stay_unique_when_ids_sanitise_alike() -> None:
    ids = ["t.py::test[a/b]", "t.py::test[a:b]", "t.py::test[a b]", "t.py::test[a_b]"]
    names = [file_name(nodeid) for nodeid in ids]
    assert len({name.rsplit("-", 1)[0] for name in names}) == 1  # the readable part is alike
    assert len(set(names)) == len(ids)
    long_a, long_b = "t.py::" + "x" * 300 + "a", "t.py::" + "x" * 300 + "b"
    assert file_name(long_a) != file_name(long_b)


def test_any_value_covers_every_kind() -> None:
    assert any_value("x") == {"stringValue": "x"}
    assert any_value(False) == {"boolValue": False}
    assert any_value(2**63 - 1) == {"intValue": str(2**63 - 1)}
    assert any_value(2**64) == {"stringValue": str(2**64)}  # beyond int64: kept, as text
    assert any_value(1.5) == {"doubleValue": 1.5}
    assert any_value(float("inf")) == {"doubleValue": "Infinity"}
    assert any_value(b"\x01") == {"bytesValue": "AQ=="}
    assert any_value(("a", 1)) == {"arrayValue": {"values": [{"stringValue": "a"}, {"intValue": "1"}]}}
    assert any_value({"k": [True]}) == {
        "kvlistValue": {"values": [{"key": "k", "value": {"arrayValue": {"values": [{"boolValue": True}]}}}]}
    }
    assert any_value(None) == {}


# -- HTML -----------------------------------------------------------------------------------


class _Page(HTMLParser):
    """The sections, rows and bars of a report page (or of chromium's DOM dump)."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[tuple[str, str]] = []  # (outcome class, node id)
        self.rows: list[dict[str, str]] = []
        self.urls: list[str] = []
        self.scripts: list[str] = []
        self._in_label = False
        self._in_script = False
        self._in_summary_code = False
        self._want_code = False
        self._section = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {key: value or "" for key, value in attrs}
        classes = attributes.get("class", "").split()
        for key in ("src", "href"):
            if key in attributes:
                self.urls.append(attributes[key])
        if tag == "script":
            self._in_script = True
            self.scripts.append("")
        if tag == "section":
            self._section, self._want_code = classes[-1], True
        if tag == "code" and self._want_code:
            self._in_summary_code, self._want_code = True, False
        if tag == "div" and "row" in classes and "axis" not in classes:
            self.rows.append({"class": attributes["class"], "name": "", "section": str(len(self.sections))})
        elif tag == "div" and "lab" in classes and self.rows and not self.rows[-1]["name"]:
            self._in_label = True
        elif tag == "span":
            self._in_label = False
        elif tag == "div" and "bar" in classes:
            self.rows[-1].update(
                style=attributes["style"], bar=attributes["class"], px=attributes.get("data-px", "")
            )

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False
        if tag == "div":
            self._in_label = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts[-1] += data
        if self._in_summary_code:
            self.sections.append((self._section, data))
            self._in_summary_code = False
        if self._in_label:
            self.rows[-1]["name"] += data.strip()


def _parse(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    return page


def test_html_page_has_a_waterfall_per_captured_test(
    pytester: pytest.Pytester, run_pytest: RunPytest
) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = run_pytest("--tb=short", "--tracechain-html=reports/trace.html")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(["-* tracechain: HTML report of 3 captured tests in reports/trace.html -*"])
    text = (pytester.path / "reports" / "trace.html").read_text(encoding="utf-8")
    page = _parse(text)
    # Failed tests first, then the rest; the test that does not use the plugin is not captured.
    assert page.sections == [
        ("failed", "test_suite.py::test_checkout_fails"),
        ("failed", "test_suite.py::test_consumer_fails"),
        ("passed", "test_suite.py::test_passes"),
    ]
    names = [row["name"] for row in page.rows]
    assert names == [
        "POST /checkout",
        "step 1",
        "step 2",
        "step 3",
        "send receipt",
        "orders process",
        "<img src=x onerror=alert(1)>",
    ]
    rows = {row["name"]: row for row in page.rows}
    # Broken chain marked, error red, kinds coloured.
    assert "broken" in rows["send receipt"]["class"].split()
    assert re.search(r'<span class="mark">lost context</span>', text)
    assert "background-color:#d62728" in rows["send receipt"]["style"]
    assert "background-color:#2a9d8f" in rows["POST /checkout"]["style"]
    assert "thread &#x27;mailer&#x27;" in text
    # The finding says where the work was handed over, as the report does.
    assert "handed over through a thread at test_suite.py:25 from thread &#x27;MainThread&#x27;" in text
    lefts = [float(re.search(r"left:([\d.]+)%", rows[f"step {n}"]["style"])[1]) for n in (1, 2, 3)]  # type: ignore[index]
    assert lefts == sorted(lefts)
    assert lefts[0] < lefts[2]
    assert "width:100.0000%" in rows["POST /checkout"]["style"]  # the root spans its test's axis
    # Every user string escaped; the only script is the page's own; nothing fetched.
    assert "<script>alert(1)" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<img src=x" not in text
    assert len(page.scripts) == 1
    assert "alert" not in page.scripts[0]
    assert page.urls == [f"#t{index}" for index in range(3)]
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)
    assert not re.search(r"url\(|@import|https?://", text)


def test_html_and_export_follow_every_outcome(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    pytester.makepyfile(
        test_outcomes="""
        import pytest

        def test_skips(tracer):
            tracer.start_span("before the skip").end()
            pytest.skip("not today")

        @pytest.mark.xfail(strict=True)
        def test_xfails(tracer):
            tracer.start_span("expected to fail").end()
            assert 0

        @pytest.fixture
        def broken(tracer):
            tracer.start_span("setup span").end()
            raise RuntimeError("setup broke")

        def test_setup_error(broken):
            pass

        def test_leaves_a_span_open(tracer):
            tracer.start_span("never ended")
        """
    )
    result = run_pytest(
        "--tb=short", "--tracechain-check=fail", "--tracechain-html=page.html", "--tracechain-export=out"
    )
    result.assert_outcomes(passed=1, skipped=1, xfailed=1, errors=2)
    page = _parse((pytester.path / "page.html").read_text(encoding="utf-8"))
    assert page.sections == [
        ("error", "test_outcomes.py::test_setup_error"),
        ("error", "test_outcomes.py::test_leaves_a_span_open"),
        ("skipped", "test_outcomes.py::test_skips"),
        ("xfailed", "test_outcomes.py::test_xfails"),
    ]
    assert {p.name for p in (pytester.path / "out").iterdir()} == {
        file_name("test_outcomes.py::test_setup_error"),
        file_name("test_outcomes.py::test_leaves_a_span_open"),
    }
    open_row = next(row for row in page.rows if row["name"] == "never ended")
    assert "broken" in open_row["class"].split()
    assert open_row["bar"] == "bar open"  # hatched, drawn up to the end of the test


def test_html_caps_the_rows_of_a_large_test(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    pytester.makepyfile(
        """
        def test_many(tracer):
            with tracer.start_as_current_span("root"):
                for index in range(2050):
                    tracer.start_span(f"child {index}").end()
        """
    )
    result = run_pytest("--tb=short", "--tracechain-html=page.html")
    result.assert_outcomes(passed=1)
    text = (pytester.path / "page.html").read_text(encoding="utf-8")
    assert len(_parse(text).rows) == 2000
    assert '<div class="more">... 51 more spans (at most 2000 rows per test)</div>' in text


def test_html_into_a_file_is_reported_not_raised(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    pytester.makefile(".txt", blocker="not a directory")
    pytester.makepyfile("def test_ok(tracer):\n    tracer.start_span('a').end()\n")
    result = run_pytest("--tracechain-html=blocker.txt/page.html")
    result.assert_outcomes(passed=1)
    assert result.ret == 0
    result.stdout.fnmatch_lines(["tracechain: could not write */blocker.txt/page.html: *"])


def test_xdist_workers_export_and_the_controller_writes_one_page(
    pytester: pytest.Pytester, run_pytest: RunPytest
) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile(test_suite=SUITE)
    pytester.makeini("[pytest]\ntracechain_html = page.html\n")
    result = run_pytest("--tb=short", "-n", "2", "--dist=load", "--tracechain-export=out")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(
        [
            "-* tracechain: 2 OTLP JSON files (one per failing captured test) in out -*",
            "-* tracechain: HTML report of 3 captured tests in page.html -*",
        ]
    )
    assert {p.name for p in (pytester.path / "out").iterdir()} == EXPECTED_FILES
    page = _parse((pytester.path / "page.html").read_text(encoding="utf-8"))
    assert [nodeid for _, nodeid in page.sections] == [
        "test_suite.py::test_checkout_fails",
        "test_suite.py::test_consumer_fails",
        "test_suite.py::test_passes",
    ]
    assert len(page.rows) == 7
    # The origin pid is a worker's, not the controller's: shown as "pid N" nowhere
    # for spans of the worker that reduced them.
    assert all("pid" not in row["name"] for row in page.rows)


# -- the page in a real browser -----------------------------------------------------------


def _run_chromium(chromium: str, tmp: Path, *args: str) -> str:
    return run_chromium(chromium, tmp / f"profile-{len(list(tmp.glob('profile-*')))}", *args)


def _png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Decode an 8-bit RGB or RGBA PNG into rows of RGB(A) bytes (no Pillow needed)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, idat, header = 8, b"", b""
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        chunk = data[position + 8 : position + 8 + length]
        position += 12 + length
        if kind == b"IHDR":
            header = chunk
        elif kind == b"IDAT":
            idat += chunk
    width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert (depth, colour_type in (2, 6), interlace) == (8, True, 0), (depth, colour_type, interlace)
    channels = 4 if colour_type == 6 else 3
    stride = width * channels
    raw = zlib.decompress(idat)
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        line_start = y * (stride + 1)
        method = raw[line_start]
        line = bytearray(raw[line_start + 1 : line_start + 1 + stride])
        for x in range(stride):
            left = line[x - channels] if x >= channels else 0
            up = previous[x]
            up_left = previous[x - channels] if x >= channels else 0
            if method == 1:
                line[x] = (line[x] + left) & 0xFF
            elif method == 2:
                line[x] = (line[x] + up) & 0xFF
            elif method == 3:
                line[x] = (line[x] + (left + up) // 2) & 0xFF
            elif method == 4:
                estimate = left + up - up_left
                pa, pb, pc = abs(estimate - left), abs(estimate - up), abs(estimate - up_left)
                nearest = left if pa <= pb and pa <= pc else up if pb <= pc else up_left
                line[x] = (line[x] + nearest) & 0xFF
        rows.append(bytes(line))
        previous = line
    return width, channels, rows


def _count_colour(png: bytes, colour: str) -> int:
    width, channels, rows = _png_pixels(png)
    wanted = bytes.fromhex(colour.lstrip("#"))
    return sum(1 for row in rows for x in range(width) if row[x * channels : x * channels + 3] == wanted)


def test_html_bars_render_in_headless_chromium(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    chromium = find_chromium("the HTML browser test")
    pytester.makepyfile(test_suite=SUITE)
    run_pytest("--tb=short", "--tracechain-html=page.html").assert_outcomes(passed=2, failed=2)
    url = (pytester.path / "page.html").as_uri()

    dom = _run_chromium(chromium, pytester.path, "--virtual-time-budget=5000", "--dump-dom", url)
    page = _parse(dom)
    assert re.search(r'<body data-bars-rendered="7">', dom), dom[:2000]
    rendered = {row["name"]: tuple(map(float, row["px"].split(","))) for row in page.rows}
    assert set(rendered) == {row["name"] for row in page.rows}
    assert len(rendered) == 7
    assert all(width >= 2 for _, width in rendered.values()), rendered
    (root_left, root_width) = rendered["POST /checkout"]
    assert root_left == 0
    assert root_width > 400
    step_lefts = [rendered[f"step {n}"][0] for n in (1, 2, 3)]
    assert step_lefts == sorted(step_lefts)
    assert step_lefts[0] < step_lefts[2]

    shot = pytester.path / "page.png"
    _run_chromium(chromium, pytester.path, f"--screenshot={shot}", url)
    png = shot.read_bytes()
    assert _count_colour(png, "#2a9d8f") > 2000  # the server span's bar, the whole track wide
    assert _count_colour(png, "#4c78a8") > 50  # the internal steps
    assert _count_colour(png, "#d62728") > 20  # the error span
    assert _count_colour(png, "#d00000") > 20  # its broken-chain outline and label
