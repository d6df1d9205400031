"""Greenlets under gevent: run with ``python -m gevent.monkey --module pytest``.

Without gevent, or without the monkey-patching, the module is skipped: a
greenlet spawned in a process that was not patched is not what a gevent
application runs.
"""

from __future__ import annotations

import pytest

monkey = pytest.importorskip("gevent.monkey")
if not monkey.is_module_patched("threading"):
    pytest.skip(
        "run under gevent: python -m gevent.monkey --module pytest "
        "docs/examples/greenlets",
        allow_module_level=True,
    )

# Imported after the skip: the application needs gevent.
from mailer import sign_up, sign_up_lost  # noqa: E402

from pytest_tracechain import (  # noqa: E402
    TraceAssertionError,
    TraceCapture,
    assert_child_of,
)

pytestmark = pytest.mark.tracechain(check="fail")


# --8<-- [start:spawn-lost]
@pytest.mark.xfail(strict=True, raises=TraceAssertionError, reason="an empty context")
def test_spawn_lost() -> None:
    sign_up_lost("ada").join()


# --8<-- [end:spawn-lost]
# --8<-- [start:spawn]
def test_spawn(tracechain: TraceCapture) -> None:
    sign_up("ada").join()

    assert_child_of("mail.Welcome.Send", "POST /users")


# --8<-- [end:spawn]
