"""The whole shape of a request's traces in one assertion: text, generated, late."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator

import pytest
from app import (
    BackgroundJobs,
    Broker,
    import_users,
    import_users_lost,
    process,
    process_linked,
    purge_unverified,
    run_consumer,
    signup,
    signup_lost,
)

from pytest_tracechain import TraceAssertionError, TraceCapture, assert_trace_tree


# --8<-- [start:fixtures]
@pytest.fixture
def broker() -> Broker:
    return Broker()


@pytest.fixture
def jobs() -> Iterator[BackgroundJobs]:
    background = BackgroundJobs()
    yield background
    background.join()


# --8<-- [end:fixtures]


# --8<-- [start:text]
SIGNUP = """
    POST /users [server]
      users.create
        INSERT users [client]
      user.created publish [producer]
        user.created process [consumer]
          mail.send [client]
"""


def test_signup_has_the_expected_shape(
    tracechain: TraceCapture, broker: Broker, jobs: BackgroundJobs
) -> None:
    signup(broker, jobs, "ada")
    jobs.join()
    process(broker.receive())

    assert_trace_tree(SIGNUP)


# --8<-- [end:text]


# --8<-- [start:two-traces]
PURGE = """
    users.purge_unverified
      DELETE users [client]
"""


def test_a_request_and_a_scheduled_job(
    tracechain: TraceCapture, broker: Broker, jobs: BackgroundJobs
) -> None:
    signup(broker, jobs, "ada")
    jobs.join()
    process(broker.receive())
    purge_unverified()

    assert_trace_tree(SIGNUP + PURGE)  # two roots: two traces


# --8<-- [end:two-traces]


# --8<-- [start:regex]
def test_names_as_patterns(
    tracechain: TraceCapture, broker: Broker, jobs: BackgroundJobs
) -> None:
    signup(broker, jobs, "ada")
    jobs.join()
    process(broker.receive())

    assert_trace_tree(r"""
        ~(POST|PUT) /users [server]
          users.create
            ~INSERT \S*users [client]
          ~user\.\w+ publish [producer]
            ~user\.\w+ process [consumer]
              ~.*
    """)


# --8<-- [end:regex]


# --8<-- [start:dict]
SIGNUP_AS_DICT = {
    "POST /users [server]": {
        "users.create": ["INSERT users [client]"],
        "user.created publish [producer]": {
            "user.created process [consumer]": ["mail.send [client]"],
        },
    },
}


def test_signup_as_a_dict(
    tracechain: TraceCapture, broker: Broker, jobs: BackgroundJobs
) -> None:
    signup(broker, jobs, "ada")
    jobs.join()
    process(broker.receive())

    assert_trace_tree(SIGNUP_AS_DICT)


# --8<-- [end:dict]


# --8<-- [start:generated]
def expected_import(count: int) -> tuple[object, ...]:
    """An import of ``count`` users: (name, children), (name, kind, children) tuples."""
    user = ("users.create", ["INSERT users [client]"])
    consumed = ("user.created process", "consumer", ["mail.send [client]"])
    event = ("user.created publish", "producer", [consumed])
    return (
        "POST /users/import",
        "server",
        [("users.import", [user] * count), *[event] * count],
    )


@pytest.mark.parametrize("count", [1, 3, 40])
def test_import_has_one_branch_per_user(
    tracechain: TraceCapture, broker: Broker, jobs: BackgroundJobs, count: int
) -> None:
    import_users(broker, jobs, [f"user-{i}" for i in range(count)])
    jobs.join()
    for _ in range(count):
        process(broker.receive())

    assert_trace_tree(expected_import(count))


# --8<-- [end:generated]


# --8<-- [start:spans]
def test_the_consumer_side_alone(
    tracechain: TraceCapture, broker: Broker, jobs: BackgroundJobs
) -> None:
    signup(broker, jobs, "ada")
    jobs.join()
    process(broker.receive())

    consumer_side = tracechain.find(re.compile(r"user\.created process|mail\.send"))
    assert_trace_tree(
        """
        user.created process [consumer]
          mail.send [client]
        """,
        spans=consumer_side,
    )


# --8<-- [end:spans]


# --8<-- [start:timeout]
@pytest.fixture
def consumer(broker: Broker) -> Iterator[threading.Thread]:
    """The event consumer, running in its own thread for the test."""
    thread = threading.Thread(target=run_consumer, args=(broker,), name="consumer")
    thread.start()
    yield thread
    broker.close()
    thread.join()


def test_late_spans(
    tracechain: TraceCapture,
    broker: Broker,
    jobs: BackgroundJobs,
    consumer: threading.Thread,
) -> None:
    signup(broker, jobs, "ada")

    # users.create ends in the job's thread and user.created process in the
    # consumer's thread, both after signup returns: wait for the tree.
    assert_trace_tree(SIGNUP, timeout=5)


# --8<-- [end:timeout]


# --8<-- [start:broken]
@pytest.mark.xfail(
    strict=True,
    raises=TraceAssertionError,
    reason="the background thread starts without the request's context: a new trace",
)
def test_signup_lost(
    tracechain: TraceCapture, broker: Broker, jobs: BackgroundJobs
) -> None:
    signup_lost(broker, jobs, "ada")
    jobs.join()
    process(broker.receive())

    assert_trace_tree(SIGNUP)


@pytest.mark.xfail(
    strict=True,
    raises=TraceAssertionError,
    reason="the consumer links to the producer instead of continuing its trace",
)
def test_consumer_linked(
    tracechain: TraceCapture, broker: Broker, jobs: BackgroundJobs
) -> None:
    signup(broker, jobs, "ada")
    jobs.join()
    process_linked(broker.receive())

    assert_trace_tree(SIGNUP)


# --8<-- [end:broken]


# --8<-- [start:broken-large]
@pytest.mark.xfail(
    strict=True,
    raises=TraceAssertionError,
    reason="the import job starts without the request's context: a new root trace",
)
def test_import_lost(
    tracechain: TraceCapture, broker: Broker, jobs: BackgroundJobs
) -> None:
    import_users_lost(broker, jobs, [f"user-{i}" for i in range(120)])
    jobs.join()
    for _ in range(120):
        process(broker.receive())

    assert_trace_tree(expected_import(120))


# --8<-- [end:broken-large]


# --8<-- [start:statuses]
@pytest.mark.xfail(
    strict=True,
    raises=TraceAssertionError,
    reason="the expectation differs on purpose: a missing, a wrong-kind, an extra span",
)
def test_each_status(
    tracechain: TraceCapture, broker: Broker, jobs: BackgroundJobs
) -> None:
    signup(broker, jobs, "ada")
    jobs.join()
    process(broker.receive())
    purge_unverified()

    assert_trace_tree("""
        POST /users [server]
          users.create
            INSERT users [client]
            audit.write
          user.created publish [client]
            user.created process [consumer]
              mail.send [client]
    """)


# --8<-- [end:statuses]
