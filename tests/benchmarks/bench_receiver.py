"""Ingestion rate of ``otlp_receiver``: a child process exporting N spans, receiver against a null endpoint.

The same child script runs in both variants: it creates N spans (one root per
10 spans: root -> 3 children -> 2 grandchildren each) on a ``TracerProvider``
with ``BatchSpanProcessor(OTLPSpanExporter())`` (OTLP/HTTP protobuf, default
batch size 512, the receiver's 50 ms schedule delay, a queue of N so that no
span is dropped), then shuts the provider down, which exports what is left.
The child times itself from its first span to the end of the shutdown: every
export waits for its HTTP answer, so at that point the endpoint has taken
every span.

    null      the child exports to a null endpoint: a stdlib HTTP/1.1 server in
              a process of its own that reads each body and answers 200
    receiver  the child runs inside a pytest test and exports to the test's
              ``otlp_receiver``; the test then checks that its capture holds all
              N spans

Spans per second are N divided by the child's time; the ratio says how much
longer the child takes when the receiver decodes and captures every span.
The receiver's CPU time per span is the pytest process's CPU time while the
child ran, divided by N.

    python tests/benchmarks/bench_receiver.py            # N=50,000, 5 repetitions
    python tests/benchmarks/bench_receiver.py --quick    # N=10,000, 3 repetitions
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VARIANTS = {
    "null": "child -> null endpoint (answers 200, discards)",
    "receiver": "child -> otlp_receiver inside a pytest test",
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


def null_server() -> None:
    """Answer 200 (an empty protobuf response) to every POST; print the port, serve until killed."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


def decode_cost() -> tuple[float, float]:
    """Microseconds per span to encode a 512-span batch (the exporter's encoder) and to decode it.

    Best of 5 rounds, in this process: the decoding alone, without HTTP or routing.
    """
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from pytest_tracechain import _otlp_decode

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    span = provider.get_tracer("bench").start_as_current_span
    for _ in range(52):
        with span("root", attributes={"job.id": 7, "queue": "user.events"}):
            for _ in range(3):
                with span("child"):
                    with span("grandchild"):
                        pass
                    with span("grandchild"):
                        pass
    spans = exporter.get_finished_spans()[:512]
    body = encode_spans(spans).SerializeToString()

    def best(fn: object, rounds: int = 5, reps: int = 20) -> float:
        results = []
        for _ in range(rounds):
            start = time.perf_counter()
            for _ in range(reps):
                fn()  # type: ignore[operator]
            results.append((time.perf_counter() - start) / reps / len(spans) * 1e6)
        return min(results)

    return (
        best(lambda: encode_spans(spans).SerializeToString()),
        best(lambda: _otlp_decode.decode(body, "protobuf")),
    )


# The pytest test of the receiver variant.
TEST = """
import gc, json, os, subprocess, sys, time

def test_ingest(tracechain, otlp_receiver):
    n = int(os.environ["BENCH_N"])
    gc_time = [0.0, 0.0]  # observed, never tuned: collections while spans arrive

    def on_gc(phase, info):
        now = time.perf_counter()
        if phase == "start":
            gc_time[1] = now
        else:
            gc_time[0] += now - gc_time[1]

    gc.callbacks.append(on_gc)
    cpu = time.process_time()
    out = subprocess.run(
        [sys.executable, os.environ["BENCH_SCRIPT"], "--child", "-n", str(n)],
        env=otlp_receiver.env, capture_output=True, text=True, check=True,
    ).stdout
    receiver_cpu = time.process_time() - cpu
    gc.callbacks.remove(on_gc)
    report = json.loads(out)
    received = len(tracechain.spans)
    assert received == n, f"captured {received} of {n} spans"
    report.update(receiver_cpu=receiver_cpu, receiver_gc=gc_time[0], received=received)
    print("RESULT " + json.dumps(report))
"""


def otel_env(traces_endpoint: str) -> dict[str, str]:
    """What ``otlp_receiver.env`` adds, for the null endpoint."""
    return {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": traces_endpoint,
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
        "OTEL_BSP_SCHEDULE_DELAY": "50",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }


# -- the driver -----------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="N=10,000, 3 repetitions")
    parser.add_argument("-n", type=int, help="spans exported by the child (default 50,000)")
    parser.add_argument("--reps", type=int, help="repetitions (default 5)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--null-server", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    n = args.n or (10_000 if args.quick else 50_000)
    if args.child:
        child(n)
        return
    if args.null_server:
        null_server()
        return
    reps = args.reps or (3 if args.quick else 5)
    if n % SPANS_PER_ROOT:
        parser.error(f"-n must be a multiple of {SPANS_PER_ROOT}")

    import statistics

    from _common import alternate, clean_env, machine_info, progress, pytest_blockers, pytest_command, table

    print(machine_info())
    print(f"N={n:,} spans per child, {reps} repetitions, variants alternated, medians\n")
    server = subprocess.Popen(
        [sys.executable, __file__, "--null-server"], stdout=subprocess.PIPE, text=True, env=clean_env()
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        null_env = clean_env(otel_env(f"http://127.0.0.1:{port}/v1/traces"))
        with tempfile.TemporaryDirectory() as tmp:
            Path(tmp, "test_bench_receiver.py").write_text(TEST)
            pytest_cmd = [
                *pytest_command(sys.executable),
                "-q",
                "-s",
                "-p",
                "no:cacheprovider",
                *pytest_blockers(sys.executable),
                "test_bench_receiver.py",
            ]
            pytest_env = clean_env({"BENCH_N": str(n), "BENCH_SCRIPT": os.path.abspath(__file__)})
            results: dict[str, list[dict[str, float]]] = {key: [] for key in VARIANTS}
            for rep, key in alternate(VARIANTS, reps):
                if key == "null":
                    out = subprocess.run(
                        [sys.executable, __file__, "--child", "-n", str(n)],
                        env=null_env,
                        capture_output=True,
                        text=True,
                        check=True,
                    ).stdout
                    report = json.loads(out)
                else:
                    done = subprocess.run(pytest_cmd, cwd=tmp, env=pytest_env, capture_output=True, text=True)
                    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
                    if done.returncode != 0 or not lines:
                        raise SystemExit(
                            f"the receiver run failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
                        )
                    report = json.loads(lines[0][len("RESULT ") :])
                progress(
                    f"  rep {rep:>2} {key}: child {report['export']:.3f} s "
                    f"(span loop {report['loop']:.3f} s, drain {report['drain']:.3f} s, cpu {report['cpu']:.3f} s)"
                    + (
                        f", receiver cpu {report['receiver_cpu']:.3f} s (gc {report['receiver_gc']:.3f} s), "
                        f"{report['received']:,} spans captured"
                        if key == "receiver"
                        else ""
                    )
                )
                if rep >= 0:
                    results[key].append(report)
    finally:
        server.terminate()
        server.wait()

    def med(key: str, name: str) -> float:
        return statistics.median(r[name] for r in results[key])

    rows = []
    for key, label in VARIANTS.items():
        times = [r["export"] for r in results[key]]
        rows.append(
            [
                f"{key}: {label}",
                f"{med(key, 'export'):.2f} s",
                f"{min(times):.2f}–{max(times):.2f} s",
                f"{n / med(key, 'export'):,.0f}",
                f"{med(key, 'drain'):.2f} s",
                f"{med(key, 'cpu'):.2f} s",
                f"{med(key, 'export') / med('null', 'export'):.2f}",
            ]
        )
    print(
        table(
            [
                "variant",
                "child: first span to shutdown",
                "min–max",
                "spans/s",
                "drain",
                "child CPU",
                "÷ null",
            ],
            rows,
        )
    )
    receiver_cpu = med("receiver", "receiver_cpu")
    child_cpu = med("null", "cpu")
    print(
        f"\nreceiver CPU (pytest process while the child ran): {receiver_cpu:.2f} s "
        f"(garbage collector {med('receiver', 'receiver_gc'):.2f} s), "
        f"{receiver_cpu / n * 1e6:.1f} µs per span; the child's own CPU against the null endpoint: "
        f"{child_cpu / n * 1e6:.1f} µs per span"
    )
    encode, decode = decode_cost()
    print(
        f"one 512-span batch, in this process: the exporter encodes it in {encode:.1f} µs per span, "
        f"the receiver decodes it in {decode:.1f} µs per span"
    )


if __name__ == "__main__":
    main()
