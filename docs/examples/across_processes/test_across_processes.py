"""The job's CONSUMER span, in another process, must continue the producer's trace."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from user_service import hello, resend_welcome

from pytest_tracechain import (
    OtlpReceiver,
    TraceAssertionError,
    TraceCapture,
    assert_carrier_has_context,
    assert_child_of,
    assert_remote_parent,
    assert_span_kind,
    assert_trace_tree,
)

JOB = Path(__file__).with_name("user_events_job.py")


# --8<-- [start:run_job]
def run_job(
    otlp_receiver: OtlpReceiver, redis_url: str, stream: str, *args: str
) -> int:
    """Run the job in a process of its own, exporting to the receiver: its pid."""
    env = {**otlp_receiver.env, "REDIS_URL": redis_url, "USER_EVENTS_STREAM": stream}
    with subprocess.Popen(
        [sys.executable, str(JOB), *args], env=env, stderr=subprocess.PIPE, text=True
    ) as job:
        try:
            _, stderr = job.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            job.kill()
            job.communicate()
            pytest.fail("the job did not finish within 60 s", pytrace=False)
    if job.returncode != 0:
        pytest.fail(
            f"the job exited with status {job.returncode}:\n{stderr}", pytrace=False
        )
    return job.pid


# --8<-- [end:run_job]


# --8<-- [start:roundtrip]
def test_job_continues_the_trace_in_another_process(
    tracechain: TraceCapture,
    otlp_receiver: OtlpReceiver,
    redis_url: str,
    redis_client: redis.Redis,
    stream: str,
) -> None:
    hello(redis_client, stream, "ada")
    job_pid = run_job(otlp_receiver, redis_url, stream)

    [consumer] = tracechain.wait_for(f"{stream} process", timeout=10)
    producer = tracechain.one(f"{stream} publish")
    [(_, fields)] = redis_client.xrange(stream)  # the entry the job read
    assert_carrier_has_context(fields, producer)
    assert_span_kind(consumer, "consumer")
    assert_child_of(consumer, producer)
    assert_remote_parent(consumer)
    assert tracechain.origin(consumer).pid == job_pid
    assert tracechain.origin(producer).pid == os.getpid()


# --8<-- [end:roundtrip]


# --8<-- [start:tree]
def test_request_and_job_are_one_trace(
    tracechain: TraceCapture,
    otlp_receiver: OtlpReceiver,
    redis_url: str,
    redis_client: redis.Redis,
    stream: str,
) -> None:
    hello(redis_client, stream, "grace")
    run_job(otlp_receiver, redis_url, stream)

    assert_trace_tree(
        f"""
        GET /hello [server]
          service.User.Create
          {stream} publish [producer]
            {stream} process [consumer]
              mail.Welcome.Send
        """,
        timeout=10,
    )


# --8<-- [end:tree]


# --8<-- [start:ignore_headers]
@pytest.mark.xfail(
    strict=True,
    raises=TraceAssertionError,
    reason="the job ignores the context in the entry: its span starts a new trace",
)
def test_job_that_ignores_the_headers(
    tracechain: TraceCapture,
    otlp_receiver: OtlpReceiver,
    redis_url: str,
    redis_client: redis.Redis,
    stream: str,
) -> None:
    hello(redis_client, stream, "ada")
    run_job(otlp_receiver, redis_url, stream, "--ignore-headers")

    [consumer] = tracechain.wait_for(f"{stream} process", timeout=10)
    assert_child_of(consumer, f"{stream} publish")


# --8<-- [end:ignore_headers]


# --8<-- [start:command]
def test_command_continues_the_request_trace(
    tracechain: TraceCapture, otlp_receiver: OtlpReceiver
) -> None:
    resend_welcome("ada", otlp_receiver.env)

    [mail] = tracechain.wait_for("mail.Welcome.Send", timeout=10)
    assert_child_of(mail, "POST /users/{name}/welcome")
    assert_remote_parent(mail)


# --8<-- [end:command]


# --8<-- [start:command-lost]
@pytest.mark.xfail(
    strict=True,
    raises=TraceAssertionError,
    reason="the command ignores the context in its environment: a new trace",
)
def test_command_that_ignores_the_environment(
    tracechain: TraceCapture, otlp_receiver: OtlpReceiver
) -> None:
    resend_welcome("ada", otlp_receiver.env, "--ignore-environment")

    [mail] = tracechain.wait_for("mail.Welcome.Send", timeout=10)
    assert_child_of(mail, "POST /users/{name}/welcome")


# --8<-- [end:command-lost]
