"""What ``otlp_receiver`` costs a child process that exports to it: its export time against a null endpoint's.

The same child script runs in every variant: it creates N spans (one root per
10 spans: root -> 3 children -> 2 grandchildren each) on a ``TracerProvider``
with ``BatchSpanProcessor(OTLPSpanExporter())`` (OTLP/HTTP protobuf, default
batch size 512, the receiver's 50 ms schedule delay, a queue of N so that no
span is dropped), as a user's child does, then shuts the provider down, which
exports what is left. The child times itself from its first span to the end
of the shutdown: every export waits for its HTTP answer, so at that point the
endpoint has taken every span.

Every endpoint runs in the same layout: a thread of a pytest process, whose
test starts the child with ``subprocess.run`` and waits for it.

    null      an HTTP/1.1 server (keep-alive, as the receiver) that reads each
              body and answers 200 (``-p no:tracechain``)
    receiver  the test's ``otlp_receiver``; the test then checks that its
              capture holds all N spans
    oteltest  oteltest's ``HttpSink`` with its ``AccumulatingHandler`` (parses
              each request and keeps it; HTTP/1.0, a connection per export), a
              peer, where oteltest is installed (``-p no:tracechain``)
    first     with ``--answer-first`` only: the test's ``otlp_receiver`` patched
              (in the test, not in the plugin) to answer 200 as soon as it has
              read a body, then decode and capture it; the test waits for all N
              spans (``wait_for``) after the child's timing. No receiver that
              answers first can make a child wait less: the floor of that design
              (docs/performance.md, section 17)
    check     with ``--answer-first`` only: the same, but the patched receiver
              first parses the body and runs every check behind a 400 on every
              span (``check_only``), then answers, then decodes and captures:
              the floor of a receiver that checks, answers, then captures
              (docs/performance.md, section 19)

"÷ null" is the child's export time over the null endpoint's in the same
repetition (median and range of those ratios, then a distribution-free 95 %
interval of their median); "drain over null's" the same for the shutdown
alone, where the child's exports wait for their answers one after another, as
a difference. The endpoint's CPU is the pytest
process's CPU time while the child ran, divided by N; against the null
endpoint's it gives what decoding and capturing add. Garbage collection in that
process is timed with ``gc.callbacks``. Variants (and venvs, with ``--python``)
are interleaved in balanced orders (`_common.williams_orders`).

A/B: ``--python base=/work/bench-recv-base/bin/python --python new=/work/bench-recv-new/bin/python``

    python tests/benchmarks/bench_receiver.py            # N=50,000, 5 repetitions
    python tests/benchmarks/bench_receiver.py --quick    # N=10,000, 3 repetitions
    python tests/benchmarks/bench_receiver.py --in-process   # decode and receive only, no HTTP
    python tests/benchmarks/bench_receiver.py --instructions   # what the receiver does before it answers, in instructions
    python tests/benchmarks/bench_receiver.py --answer-first --reps 8   # and the floors of answering first, of checking first
    python tests/benchmarks/bench_receiver.py --answer-first --variants null,receiver,first --reps 20
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

VARIANTS = {
    "null": "child -> null endpoint (answers 200, discards)",
    "receiver": "child -> otlp_receiver (decodes, captures)",
    "oteltest": "child -> oteltest's HttpSink (parses, keeps)",
    "first": "child -> otlp_receiver patched to answer before it decodes (the floor)",
    "check": "child -> otlp_receiver patched to check, answer, then decode",
}
SPANS_PER_ROOT = 10

# -- the measured child process ---------------------------------------------------


def child(n: int) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(), max_queue_size=n))
    span = provider.get_tracer("bench").start_as_current_span
    cpu = time.process_time()
    start = time.perf_counter()
    for _ in range(n // SPANS_PER_ROOT):
        with span("root", attributes={"job.id": 7, "queue": "user.events"}):
            for _ in range(3):
                with span("child"):
                    with span("grandchild"):
                        pass
                    with span("grandchild"):
                        pass
    loop = time.perf_counter()
    provider.shutdown()
    done = time.perf_counter()
    json.dump(
        {
            "export": done - start,
            "loop": loop - start,
            "drain": done - loop,
            "cpu": time.process_time() - cpu,
        },
        sys.stdout,
    )


# The pytest tests of the three variants; the endpoint runs in this process, on a thread.
TEST = '''
import gc, json, os, socket, subprocess, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

N = int(os.environ["BENCH_N"])


def otel_env(traces_endpoint):
    env = dict(os.environ)
    env.update(json.loads(os.environ["BENCH_OTEL_ENV"]), OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=traces_endpoint)
    return env


def run_child(env):
    """Run the child; its report plus this process's CPU and GC time while it ran."""
    gc_time = [0.0, 0.0]  # observed, never tuned

    def on_gc(phase, info):
        now = time.perf_counter()
        if phase == "start":
            gc_time[1] = now
        else:
            gc_time[0] += now - gc_time[1]

    gc.callbacks.append(on_gc)
    cpu = time.process_time()
    out = subprocess.run(
        [sys.executable, os.environ["BENCH_SCRIPT"], "--child", "-n", str(N)],
        env=env, capture_output=True, text=True, check=True,
    ).stdout
    endpoint_cpu = time.process_time() - cpu
    gc.callbacks.remove(on_gc)
    report = json.loads(out)
    report.update(endpoint_cpu=endpoint_cpu, endpoint_gc=gc_time[0])
    return report


def test_null():
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        report = run_child(otel_env(f"http://127.0.0.1:{server.server_address[1]}/v1/traces"))
    finally:
        server.shutdown()
        server.server_close()
    print("RESULT " + json.dumps(dict(report, received=N)))


def test_receiver(tracechain, otlp_receiver):
    report = run_child(otlp_receiver.env)
    received = len(tracechain.spans)
    assert received == N, f"captured {received} of {N} spans"
    print("RESULT " + json.dumps(dict(report, received=received)))


def answer_early(monkeypatch, check):
    """Patch the receiver to answer 200 once it has read a body (and ``check`` took it), then decode it."""
    from pytest_tracechain import _otlp

    read_body, answer = _otlp._Handler._read_body, _otlp._Handler._answer

    def read_then_answer(self):
        body = read_body(self)
        check(body)
        answer(self, 200, "protobuf", b"")
        self.answered_first = True
        return body

    def answer_unless_answered(self, status, media_type, body):
        if not getattr(self, "answered_first", False):
            answer(self, status, media_type, body)
        self.answered_first = False

    monkeypatch.setattr(_otlp._Handler, "_read_body", read_then_answer)
    monkeypatch.setattr(_otlp._Handler, "_answer", answer_unless_answered)


def test_first(tracechain, otlp_receiver, monkeypatch):
    answer_early(monkeypatch, lambda body: None)
    report = run_child(otlp_receiver.env)
    received = len(tracechain.wait_for(count=N, timeout=60))  # the last requests may still be decoding
    print("RESULT " + json.dumps(dict(report, received=received)))


def test_check(tracechain, otlp_receiver, monkeypatch):
    sys.path.insert(0, os.path.dirname(os.environ["BENCH_SCRIPT"]))
    from bench_receiver import check_only

    answer_early(monkeypatch, check_only)
    report = run_child(otlp_receiver.env)
    received = len(tracechain.wait_for(count=N, timeout=60))  # the last requests may still be decoding
    print("RESULT " + json.dumps(dict(report, received=received)))


def test_oteltest():
    import logging

    from oteltest.sink import HttpSink
    from oteltest.sink.handler import AccumulatingHandler

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    handler = AccumulatingHandler()
    sink = HttpSink(handler, logging.getLogger("bench"), port=port)
    sink.start()
    for _ in range(500):  # it binds in its thread: wait until it listens
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.01)
    try:
        report = run_child(otel_env(f"http://127.0.0.1:{port}/v1/traces"))
    finally:
        sink.stop()
    received = sum(
        len(scope.spans)
        for request in handler.telemetry.get_trace_requests()
        for resource in request.pbreq.resource_spans
        for scope in resource.scope_spans
    )
    assert received == N, f"oteltest kept {received} of {N} spans"
    print("RESULT " + json.dumps(dict(report, received=received)))
'''


def otel_env() -> dict[str, str]:
    """What ``otlp_receiver.env`` sets besides the endpoint, for the null and oteltest endpoints."""
    return {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
        "OTEL_BSP_SCHEDULE_DELAY": "50",
        "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS": "process",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }


def check_only(body: bytes) -> int:
    """Parse a protobuf request and run, on every span, the checks behind a 400 and nothing else: its ids,
    kind, status code and links, with the receiver's own functions. What a receiver that checks, then
    answers, then captures must do before it answers. The number of spans."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from pytest_tracechain import _otlp_decode

    request = ExportTraceServiceRequest.FromString(body)
    span_ids, has_field, status, link = (
        _otlp_decode._span_ids,
        _otlp_decode._has_field,
        _otlp_decode._status,
        _otlp_decode._link,
    )
    count = 0
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                span_ids(span)
                kind = span.kind
                if not 0 <= kind <= 5:
                    raise ValueError(f"kind {kind}")
                if has_field(span, "status"):
                    status(span)
                links = span.links
                if links:
                    for index, one in enumerate(links):
                        link(one, index)
                count += 1
    return count


def receiver_check(body: bytes) -> object:
    """What the receiver does before it answers (``_otlp_decode.check``); ``check_only`` in a version from
    before it, for an A/B."""
    from pytest_tracechain import _otlp_decode

    check = getattr(_otlp_decode, "check", None)
    return check(body, "protobuf") if check is not None else check_only(body)


# -- in this process: decoding and receiving without HTTP ------------------------------


def _exported_spans(n: int) -> list:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"process.pid": 4242}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    span = provider.get_tracer("bench").start_as_current_span
    for _ in range(n // SPANS_PER_ROOT):
        with span("root", attributes={"job.id": 7, "queue": "user.events"}):
            for _ in range(3):
                with span("child"):
                    with span("grandchild"):
                        pass
                    with span("grandchild"):
                        pass
    provider.shutdown()
    return list(exporter.get_finished_spans())


def _json_body(request: object) -> bytes:
    """The OTLP JSON of a request: proto3 JSON with hex trace and span ids."""
    import base64

    from google.protobuf import json_format

    data = json_format.MessageToDict(request)
    for resource in data["resourceSpans"]:
        for scope in resource["scopeSpans"]:
            for span in scope["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
    return json.dumps(data).encode()


def in_process(n: int) -> list[str]:
    """Per span, in this process (best of 5): encoding and decoding one 512-span batch, and decoding and
    receiving N spans in 512-span batches into one capture, as the receiver's thread does."""
    import gc

    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from pytest_tracechain import _otlp_decode
    from pytest_tracechain._router import Router
    from pytest_tracechain._state import CaptureState

    spans = _exported_spans(n)
    batch = spans[:512]
    body = encode_spans(batch).SerializeToString()
    json_body = _json_body(encode_spans(batch))
    bodies = [encode_spans(spans[i : i + 512]).SerializeToString() for i in range(0, len(spans), 512)]
    del spans

    def best(fn: object, per: int, rounds: int = 5) -> float:
        results = []
        for _ in range(rounds):
            start = time.process_time()
            fn()  # type: ignore[operator]
            results.append((time.process_time() - start) / per * 1e6)
        return min(results)

    kept: list[float] = []

    def received(router: Router) -> Any:
        """What takes decoded spans: ``receive_rows``, or ``receive`` in a version from before it, for an A/B."""
        return getattr(router, "receive_rows", router.receive)

    first_read: list[float] = []
    captures: list[Any] = []

    counting = False

    def ingest() -> None:
        router = Router()
        router.receiving = True
        capture = CaptureState("bench")
        router.open(capture)
        before = len(gc.get_objects()) if counting else 0
        for one in bodies:
            decoded = _otlp_decode.decode(one, "protobuf")
            received(router)(decoded.spans, decoded.undecided)
        assert len(capture.finished) == n
        if counting:
            kept.append((len(gc.get_objects()) - before) / n)
        captures[:] = [capture]

    def read_all() -> None:
        """What the test's thread then pays to read every span once (the receiver may leave decoding to it)."""
        capture = captures.pop()
        captures.clear()
        start = time.process_time()
        for span in capture.finished:
            span.name  # noqa: B018
        first_read.append((time.process_time() - start) / n * 1e6)

    def decoded_all() -> list:
        return [_otlp_decode.decode(one, "protobuf") for one in bodies]

    def receive_all() -> None:
        router = Router()
        router.receiving = True
        router.open(CaptureState("bench"))
        for decoded in ready:
            received(router)(decoded.spans, decoded.undecided)

    lines = [
        f"one 512-span batch: the exporter encodes it in {best(lambda: [encode_spans(batch).SerializeToString() for _ in range(20)], 20 * 512):.2f} µs per span; "
        f"the receiver decodes it from protobuf in {best(lambda: [_otlp_decode.decode(body, 'protobuf') for _ in range(20)], 20 * 512):.2f} µs "
        f"(of it parsing, which no receiver can skip, {best(lambda: [ExportTraceServiceRequest.FromString(body) for _ in range(20)], 20 * 512):.2f} µs; "
        f"parsing and checking, all it does before it answers, {best(lambda: [receiver_check(body) for _ in range(20)], 20 * 512):.2f} µs), "
        f"from OTLP JSON in {best(lambda: [_otlp_decode.decode(json_body, 'json') for _ in range(5)], 5 * 512):.2f} µs",
    ]
    ingest_cpu = best(ingest, n)
    for _ in range(3):  # untimed: what a capture keeps, and what its first read costs
        captures.clear()
        gc.collect()
        counting = True
        ingest()
        counting = False
        read_all()
    gc.disable()
    try:
        ingest_no_gc = best(ingest, n)
        ready = decoded_all()
        receive_cpu = best(receive_all, n)
    finally:
        gc.enable()
    lines.append(
        f"{n:,} spans in {len(bodies)} batches, decoded and received into one capture: {ingest_cpu:.2f} µs per span "
        f"({ingest_no_gc:.2f} µs with the garbage collector off; Router.receive alone {receive_cpu:.2f} µs); "
        f"{min(kept):.2f} GC-tracked objects kept per span; the test's first read of each span then "
        f"{min(first_read):.2f} µs"
    )
    return lines


# -- instructions (callgrind): deterministic where time on this host is not --------------

INSTRUCTION_BATCH = 512
INSTRUCTION_CALLS = 20
INSTRUCTION_WHAT = {
    "parse": "parsing alone (ExportTraceServiceRequest.FromString)",
    "check": "parsing and checking, all the receiver does before it answers (_otlp_decode.check)",
    "decode": "parsing, checking and building the spans the router takes (_otlp_decode.decode)",
}


def instructions_child(what: str, calls: str) -> None:
    """Make one batch, then run ``what`` on it ``calls`` times: the count of 0 calls is the baseline."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from pytest_tracechain import _otlp_decode

    body = encode_spans(_exported_spans(INSTRUCTION_BATCH)).SerializeToString()
    run = {
        "parse": ExportTraceServiceRequest.FromString,
        "check": receiver_check,
        "decode": lambda body: _otlp_decode.decode(body, "protobuf"),
    }[what]
    for _ in range(int(calls)):
        run(body)


# -- the driver -----------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="N=10,000, 3 repetitions")
    parser.add_argument("-n", type=int, help="spans exported by the child (default 50,000)")
    parser.add_argument("--reps", type=int, help="repetitions (default 5)")
    parser.add_argument("--python", action="append", help="LABEL=PATH, repeatable: an A/B of venvs")
    parser.add_argument("--in-process", action="store_true", help="only the in-process figures")
    parser.add_argument(
        "--answer-first",
        action="store_true",
        help="also the receiver patched to answer before it decodes, and to check, answer, then decode",
    )
    parser.add_argument(
        "--variants", help=f"comma-separated, of {', '.join(VARIANTS)} (default: all; null is always run)"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--in-process-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="instructions a span (callgrind) of what the receiver does before it answers, and of its decoding",
    )
    parser.add_argument("--instructions-child", nargs=2, help=argparse.SUPPRESS)  # what, calls
    args = parser.parse_args()
    n = args.n or (10_000 if args.quick else 50_000)
    if args.child:
        child(n)
        return
    if args.in_process_child:
        print("\n".join(in_process(n)))
        return
    if args.instructions_child:
        instructions_child(*args.instructions_child)
        return
    reps = args.reps or (3 if args.quick else 5)
    wanted = set(args.variants.split(",") if args.variants else VARIANTS) | {"null"}  # the ratios' base
    if wanted - set(VARIANTS):
        parser.error(f"unknown variants: {', '.join(sorted(wanted - set(VARIANTS)))}")
    if n % SPANS_PER_ROOT:
        parser.error(f"-n must be a multiple of {SPANS_PER_ROOT}")

    from _common import (
        alternate,
        clean_env,
        count_instructions,
        fingerprint_of,
        has_module,
        machine_info,
        median_interval,
        parse_pythons,
        progress,
        pytest_blockers,
        pytest_command,
        table,
    )

    pythons = parse_pythons(args.python)
    print(machine_info())
    for label, python in pythons.items():
        if label:
            print(f"{label}: {python}: {fingerprint_of(python)}")
    if args.instructions:
        for label, python in pythons.items():
            print(
                f"\ninstructions a span, one {INSTRUCTION_BATCH}-span batch{f' ({label})' if label else ''}:"
            )
            for what in ("parse", "check", "decode"):
                runs = [
                    count_instructions(
                        [python, __file__, "--instructions-child", what, str(calls)],
                        cwd=tempfile.gettempdir(),
                        env=clean_env({"PYTHONHASHSEED": "0"}),
                    )
                    for calls in (0, INSTRUCTION_CALLS)
                ]
                per_span = (runs[1] - runs[0]) / INSTRUCTION_CALLS / INSTRUCTION_BATCH
                print(f"  {INSTRUCTION_WHAT[what]}: {per_span:,.0f}")
        return
    if args.in_process:
        for label, python in pythons.items():
            done = subprocess.run(
                [python, __file__, "--in-process-child", "-n", str(n)],
                capture_output=True,
                text=True,
                check=True,
                env=clean_env(),
            )
            print(f"\nin process{f' ({label})' if label else ''}:\n" + done.stdout.rstrip())
        return
    keys = []
    for label, python in pythons.items():
        keys += [
            f"{label}:{variant}"
            for variant in VARIANTS
            if variant in wanted
            and (variant != "oteltest" or has_module(python, "oteltest.sink"))
            and (variant not in ("first", "check") or args.answer_first)
        ]
    print(f"N={n:,} spans per child, {reps} repetitions, variants interleaved in balanced orders\n")
    results: dict[str, list[dict[str, float]]] = {key: [] for key in keys}
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "test_bench_receiver.py").write_text(TEST)
        env = clean_env(
            {
                "BENCH_N": str(n),
                "BENCH_SCRIPT": os.path.abspath(__file__),
                "BENCH_OTEL_ENV": json.dumps(otel_env()),
            }
        )
        blockers = {label: pytest_blockers(python) for label, python in pythons.items()}
        for rep, key in alternate(keys, reps):
            label, variant = key.split(":")
            python = pythons[label]
            command = [
                *pytest_command(python),
                "-q",
                "-s",
                "-p",
                "no:cacheprovider",
                *blockers[label],
                *(["-p", "no:tracechain"] if variant not in ("receiver", "first", "check") else []),
                f"test_bench_receiver.py::test_{variant}",
            ]
            done = subprocess.run(command, cwd=tmp, env=env, capture_output=True, text=True)
            lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
            if done.returncode != 0 or not lines:
                raise SystemExit(f"the {key} run failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
            report = json.loads(lines[0][len("RESULT ") :])
            progress(
                f"  rep {rep:>2} {key}: child {report['export']:.3f} s (span loop {report['loop']:.3f} s, "
                f"drain {report['drain']:.3f} s, cpu {report['cpu']:.3f} s), endpoint cpu "
                f"{report['endpoint_cpu']:.3f} s (gc {report['endpoint_gc']:.3f} s), {report['received']:,} spans"
            )
            if rep >= 0:
                results[key].append(report)

    def med(key: str, name: str) -> float:
        return statistics.median(r[name] for r in results[key])

    def spread(values: list[float], fmt: str) -> str:
        return f"{format(statistics.median(values), fmt)} [{format(min(values), fmt)}–{format(max(values), fmt)}]"

    def interval(values: list[float], fmt: str) -> str:
        low, high = median_interval(values)
        return f"{format(low, fmt)} to {format(high, fmt)}"

    rows = []
    for key in keys:
        label, variant = key.split(":")
        null = results[f"{label}:null"]
        ratios = [r["export"] / base["export"] for r, base in zip(results[key], null, strict=True)]
        drains = [r["drain"] - base["drain"] for r, base in zip(results[key], null, strict=True)]
        rows.append(
            [
                f"{label + ': ' if label else ''}{variant}: {VARIANTS[variant]}",
                spread([r["export"] for r in results[key]], ".2f") + " s",
                spread(ratios, ".2f"),
                interval(ratios, ".3f"),
                f"{n / med(key, 'export'):,.0f}",
                f"{med(key, 'drain'):.2f} s",
                spread(drains, "+.3f") + " s",
                interval(drains, "+.3f") + " s",
                f"{med(key, 'cpu') / n * 1e6:.1f} µs",
                spread([r["endpoint_cpu"] / n * 1e6 for r in results[key]], ".1f") + " µs",
                f"{med(key, 'endpoint_gc') / n * 1e6:.1f} µs",
                f"{(med(key, 'endpoint_cpu') - med(f'{label}:null', 'endpoint_cpu')) / n * 1e6:+.1f} µs",
            ]
        )
    print(
        table(
            [
                "variant",
                "child: first span to shutdown",
                "÷ null",
                "÷ null: 95 % interval of the median",
                "spans/s",
                "drain",
                "drain over null's",
                "drain over null's: 95 % interval",
                "child CPU per span",
                "endpoint CPU per span",
                "of it GC",
                "endpoint CPU over null's",
            ],
            rows,
        )
    )
    for label, python in pythons.items():
        done = subprocess.run(
            [python, __file__, "--in-process-child", "-n", str(n)],
            capture_output=True,
            text=True,
            check=True,
            env=clean_env(),
        )
        print(f"\nin process{f' ({label})' if label else ''}:\n" + done.stdout.rstrip())


if __name__ == "__main__":
    main()
