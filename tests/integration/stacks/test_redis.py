"""redis-py with RedisInstrumentor on a real Redis server: streams and pub/sub.

Every scenario runs for real through pytester: an order service publishes with the context
injected into the message (stream entry fields, or the JSON payload on a channel), and a
consumer in a thread, or in a process of its own exporting to ``otlp_receiver``, continues
the trace (correct) or ignores the carrier (broken). The instrumented XADD and PUBLISH are
CLIENT children of the PRODUCER span, and the consumer's XREAD BLOCK is a CLIENT span in flight
while the request is served: the two shapes issue 10 is about (a consumer that ignored the
carrier passed unreported; the request's SERVER root was called a dropped carrier).
"""

from __future__ import annotations

import pytest

from tests.conftest import RunPytest
from tests.integration.stacks.conftest import NO_FINDINGS, assert_no_findings

pytest.importorskip("opentelemetry.exporter.otlp.proto.http.trace_exporter")

ORDERS = """
import json
import os

import redis
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind

PREFIX = os.environ["TRACECHAIN_REDIS_PREFIX"]
STREAM = f"{PREFIX}orders"  # a key of this test's own
CHANNEL = f"{PREFIX}orders"  # channels are not keys, but the prefix keeps them apart as well
BLOCK_MS = 10_000

tracer = trace.get_tracer("orders")


def connect():
    return redis.Redis.from_url(os.environ["TRACECHAIN_REDIS_URL"], decode_responses=True)


def messaging(destination, operation):
    return {
        "messaging.system": "redis",
        "messaging.destination.name": destination,
        "messaging.operation.type": operation,
    }


def place_order(client, order):
    with tracer.start_as_current_span("POST /orders", kind=SpanKind.SERVER):
        with tracer.start_as_current_span(
            "stream.orders publish", kind=SpanKind.PRODUCER, attributes=messaging(STREAM, "send")
        ):
            fields = {"body": json.dumps(order)}
            propagate.inject(fields)
            return client.xadd(STREAM, fields)


def read_order(client, *, use_carrier=True):
    \"\"\"Block in XREAD for the next order and process it; False if none came.\"\"\"
    reply = client.xread({STREAM: "0"}, count=1, block=BLOCK_MS)
    if not reply:
        return False
    [(_, [(_, fields)])] = reply
    parent = propagate.extract(fields) if use_carrier else None
    with tracer.start_as_current_span(
        "stream.orders process", context=parent, kind=SpanKind.CONSUMER,
        attributes=messaging(STREAM, "process"),
    ):
        reserve_stock(json.loads(fields["body"]))
    return True


def announce_order(client, order):
    with tracer.start_as_current_span("POST /orders", kind=SpanKind.SERVER):
        with tracer.start_as_current_span(
            "channel.orders publish", kind=SpanKind.PRODUCER, attributes=messaging(CHANNEL, "send")
        ):
            carrier = {}
            propagate.inject(carrier)
            return client.publish(CHANNEL, json.dumps({"order": order, "trace": carrier}))


def listen_for_order(client, subscribed, *, use_carrier=True):
    \"\"\"Subscribe, set ``subscribed``, and process the next order announced; False if none came.\"\"\"
    with client.pubsub() as pubsub:
        pubsub.subscribe(CHANNEL)
        while (message := pubsub.get_message(timeout=BLOCK_MS / 1000)) is not None:
            if message["type"] == "subscribe":
                subscribed.set()
            elif message["type"] == "message":
                payload = json.loads(message["data"])
                parent = propagate.extract(payload["trace"]) if use_carrier else None
                with tracer.start_as_current_span(
                    "channel.orders process", context=parent, kind=SpanKind.CONSUMER,
                    attributes=messaging(CHANNEL, "process"),
                ):
                    reserve_stock(payload["order"])
                return True
    return False


def reserve_stock(order):
    with tracer.start_as_current_span("stock.Reserve") as span:
        span.set_attribute("order.sku", order["sku"])
"""

# The stock service: one order off the stream, in a process of its own, exporting over OTLP.
STOCK_SERVICE = """
import sys

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

import orders

provider = TracerProvider(resource=Resource.create({"service.name": "stock"}))
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
trace.set_tracer_provider(provider)
RedisInstrumentor().instrument()
try:
    with orders.connect() as client:
        read = orders.read_order(client, use_carrier="--ignore-carrier" not in sys.argv)
finally:
    provider.shutdown()  # flushes: the spans are exported before the process exits
sys.exit(0 if read else 1)
"""

CONFTEST = """
import threading

import pytest
from opentelemetry.instrumentation.redis import RedisInstrumentor


@pytest.fixture(autouse=True)
def xread_started():
    \"\"\"redis-py instrumented for the test; the event is set when an XREAD starts (its CLIENT span opens).\"\"\"
    started = threading.Event()

    def request_hook(span, instance, args, kwargs):
        if args[0] == "XREAD":
            started.set()

    RedisInstrumentor().instrument(request_hook=request_hook)
    yield started
    RedisInstrumentor().uninstrument()
"""

THREAD_CONSUMER = """
import threading

import orders
from pytest_tracechain import assert_child_of, assert_remote_parent, assert_trace_tree


def test_order_consumed_in_a_thread(tracechain, xread_started):
    consumer = threading.Thread(
        target=orders.read_order, args=(orders.connect(),), kwargs={"use_carrier": USE_CARRIER},
        name="orders-consumer",
    )
    consumer.start()
    # The consumer blocks in XREAD BLOCK: its CLIENT span is open while the request is served.
    assert xread_started.wait(10)
    with orders.connect() as client:
        orders.place_order(client, {"sku": "A1"})
    consumer.join(timeout=20)
    assert not consumer.is_alive()
    [process] = tracechain.wait_for("stream.orders process")
    if USE_CARRIER:
        assert_child_of(process, "stream.orders publish")
        assert_remote_parent(process)
        assert_trace_tree('''
            POST /orders [server]
              stream.orders publish [producer]
                XADD [client]
                stream.orders process [consumer]
                  stock.Reserve
            XREAD [client]
        ''')
"""

PROCESS_CONSUMER = """
import subprocess
import sys

import orders
from pytest_tracechain import assert_child_of, assert_remote_parent, assert_trace_tree


def test_order_consumed_in_another_process(tracechain, otlp_receiver):
    with orders.connect() as client:
        orders.place_order(client, {"sku": "A1"})
    args = [] if USE_CARRIER else ["--ignore-carrier"]
    with subprocess.Popen([sys.executable, "stock_service.py", *args], env=otlp_receiver.env) as stock:
        assert stock.wait(timeout=60) == 0
    [process] = tracechain.wait_for("stream.orders process", timeout=10)
    tracechain.wait_for("XREAD", timeout=10)
    assert tracechain.origin(process).pid == stock.pid
    if USE_CARRIER:
        assert_child_of(process, "stream.orders publish")
        assert_remote_parent(process)
        assert_trace_tree('''
            POST /orders [server]
              stream.orders publish [producer]
                XADD [client]
                stream.orders process [consumer]
                  stock.Reserve
            XREAD [client]
        ''')
"""

SUBSCRIBER = """
import threading

import orders
from pytest_tracechain import assert_child_of, assert_remote_parent, assert_trace_tree


def test_order_announced_to_a_subscriber(tracechain):
    subscribed = threading.Event()
    subscriber = threading.Thread(
        target=orders.listen_for_order, args=(orders.connect(), subscribed),
        kwargs={"use_carrier": USE_CARRIER}, name="orders-subscriber",
    )
    subscriber.start()
    assert subscribed.wait(10)  # a message published before SUBSCRIBE took effect would be lost
    with orders.connect() as client:
        assert orders.announce_order(client, {"sku": "A1"}) == 1  # one subscriber received it
    subscriber.join(timeout=20)
    assert not subscriber.is_alive()
    [process] = tracechain.wait_for("channel.orders process")
    if USE_CARRIER:
        assert_child_of(process, "channel.orders publish")
        assert_remote_parent(process)
        assert_trace_tree('''
            POST /orders [server]
              channel.orders publish [producer]
                PUBLISH [client]
                channel.orders process [consumer]
                  stock.Reserve
        ''')
"""


@pytest.fixture
def orders(pytester: pytest.Pytester, redis_prefix: str) -> pytest.Pytester:
    pytester.makepyfile(orders=ORDERS, stock_service=STOCK_SERVICE)
    pytester.makeconftest(CONFTEST)
    return pytester


def consumer_test(pytester: pytest.Pytester, source: str, *, use_carrier: bool) -> None:
    pytester.makepyfile(f"USE_CARRIER = {use_carrier}\n{source}")


def dropped_carrier(test: str, destination: str) -> list[str]:
    """The report of a consumer that ignored the carrier of ``destination``'s producer."""
    return [
        f"*_ {test} _*",
        "1 broken trace chain:",
        f"[[]dropped carrier] '{destination} process' is a consumer root span with neither a parent nor"
        f" a link, although '{destination} publish' (producer) *: the consumer did not extract what was"
        " injected",
        "  fix: extract the context from the incoming headers and start the span with"
        " context=opentelemetry.propagate.extract(headers) (or links=[[]Link(...)] for a batch)",
        "",
        "captured in this test:",
    ]


def test_stream_consumer_thread_continues_the_trace(orders: pytest.Pytester, run_pytest: RunPytest) -> None:
    # Issue 10, false alarm: the consumer's XREAD BLOCK, a CLIENT span in flight while the
    # request is served, made the request's SERVER root a "dropped carrier".
    consumer_test(orders, THREAD_CONSUMER, use_carrier=True)
    assert_no_findings(run_pytest(*NO_FINDINGS), passed=1)


def test_stream_consumer_thread_that_ignores_the_carrier(
    orders: pytest.Pytester, run_pytest: RunPytest
) -> None:
    # Issue 10, silent pass: the instrumented XADD, a child of the PRODUCER span, counted as
    # continuing its trace, so a consumer that ignored the carrier went unreported.
    consumer_test(orders, THREAD_CONSUMER, use_carrier=False)
    result = run_pytest("--tracechain-check=fail")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        dropped_carrier("test_order_consumed_in_a_thread", "stream.orders"),
        consecutive=True,
    )
    result.stdout.fnmatch_lines(
        [
            "└─ stream.orders process [[]consumer] · * · thread 'orders-consumer'  ← dropped carrier",
            "   └─ stock.Reserve · * · thread 'orders-consumer'",
        ],
        consecutive=True,
    )


def test_stream_consumer_process_continues_the_trace(orders: pytest.Pytester, run_pytest: RunPytest) -> None:
    consumer_test(orders, PROCESS_CONSUMER, use_carrier=True)
    assert_no_findings(run_pytest(*NO_FINDINGS), passed=1)


def test_stream_consumer_process_that_ignores_the_carrier(
    orders: pytest.Pytester, run_pytest: RunPytest
) -> None:
    consumer_test(orders, PROCESS_CONSUMER, use_carrier=False)
    result = run_pytest("--tracechain-check=fail")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        dropped_carrier("test_order_consumed_in_another_process", "stream.orders"),
        consecutive=True,
    )
    result.stdout.fnmatch_lines(
        [
            "└─ stream.orders process [[]consumer] · * · pid *  ← dropped carrier",
            "   └─ stock.Reserve · * · pid *",
        ],
        consecutive=True,
    )


def test_pubsub_subscriber_continues_the_trace(orders: pytest.Pytester, run_pytest: RunPytest) -> None:
    consumer_test(orders, SUBSCRIBER, use_carrier=True)
    assert_no_findings(run_pytest(*NO_FINDINGS), passed=1)


def test_pubsub_subscriber_that_ignores_the_carrier(orders: pytest.Pytester, run_pytest: RunPytest) -> None:
    # Issue 10, silent pass: as with XADD, the instrumented PUBLISH under the PRODUCER span.
    consumer_test(orders, SUBSCRIBER, use_carrier=False)
    result = run_pytest("--tracechain-check=fail")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        dropped_carrier("test_order_announced_to_a_subscriber", "channel.orders"),
        consecutive=True,
    )
    result.stdout.fnmatch_lines(
        ["└─ channel.orders process [[]consumer] · * · thread 'orders-subscriber'  ← dropped carrier"]
    )
