"""The demo: what a failure looks like. Two of these three tests fail on purpose.

``pytest docs/examples/demo`` shows a failed trace assertion with its hint, and
a broken chain the plugin found without any assertion (fail mode). The other
example suites hold the fixed versions; CI checks that exactly these fail.
"""

from __future__ import annotations

import pytest
from signup import consume_signup, create_user, publish_signup, sign_up

from pytest_tracechain import TraceCapture, assert_child_of


def test_sign_up_creates_the_user(tracechain: TraceCapture) -> None:
    create_user("ada")
    assert_child_of("db.insert_user", "POST /users")


def test_welcome_mail_is_in_the_request_trace(tracechain: TraceCapture) -> None:
    sign_up("ada")
    # Fails: the mail is sent from a thread that never got the request's context.
    assert_child_of("mail.welcome", "POST /users")


@pytest.mark.tracechain(check="fail")
def test_signup_event_is_consumed() -> None:
    # No assertion: the chain check fails the test, the consumer dropped the carrier.
    publish_signup("ada")
    consume_signup()
