"""The demo (docs/examples/demo): the README's first command shows what a failure looks like.

Exactly two of its tests fail, each the way a user meets it: a failed trace
assertion with its hint, and a broken chain the plugin found without one. Each
thing is said once.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import RunPytest, before_short_summary

DEMO = Path(__file__).parents[2] / "docs" / "examples" / "demo"


def test_the_demo_fails_exactly_its_two_broken_tests(
    pytester: pytest.Pytester, run_pytest: RunPytest
) -> None:
    for name in ("signup.py", "test_demo.py"):
        shutil.copy(DEMO / name, pytester.path / name)
    result = run_pytest("-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*_ test_welcome_mail_is_in_the_request_trace _*",
            "*",
            '>       assert_child_of("mail.welcome", "POST /users")',
            "E       pytest_tracechain.TraceAssertionError: 'mail.welcome' is not a child of 'POST /users'",
            "E         expected parent: 'POST /users' (span *)",
            "E         found: no parent (it is the root of its own trace)",
            "E         'mail.welcome' started in thread 'Thread-* (send_welcome)'; 'POST /users' in thread"
            " 'MainThread'",
            "E       ",
            "E       hint: 'mail.welcome' was handed over through a thread at signup.py:30 from thread"
            " 'MainThread' without the context of 'POST /users': start the thread with"
            " contextvars.copy_context().run (Thread(target=ctx.run, args=(fn,))), or use the OpenTelemetry"
            " threading instrumentation.",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*- tracechain: broken trace chains -*",
            "1 broken trace chain:",
            "[[]lost context] 'mail.welcome' started a new trace in thread 'Thread-* (send_welcome)', but the"
            " work was handed over through a thread at signup.py:30 from thread 'MainThread' while 'POST"
            " /users' was current: the context did not cross the boundary",
            "  fix: start the thread with contextvars.copy_context().run (Thread(target=ctx.run,"
            " args=(fn,))), or use the OpenTelemetry threading instrumentation",
            "*_ test_signup_event_is_consumed _*",
            "1 broken trace chain:",
            "[[]dropped carrier] 'users process' is a consumer root span with neither a parent nor a link,"
            " although 'users publish' (producer) injected its context into a carrier at signup.py:42 before"
            " it started and nothing continues its trace: the consumer did not extract what was injected",
        ],
        consecutive=False,
    )
    # Said once: the failed assertion's traces are not rendered again in the chain section.
    # (Under CI=true pytest's short summary repeats each message whole: counted before it.)
    lost_mail = [
        line
        for line in before_short_summary(result)
        if "mail.welcome · " in line and "thread 'Thread-" in line
    ]
    assert len(lost_mail) == 1, lost_mail
