"""The place in user code where something happened: ``file:line`` of the first user frame.

Hand-offs (``Thread.start``, ``submit``, ``create_task``, ``put``, ``inject``)
and scope leaks are reported at the frame a user would edit: the first one
outside the standard library, OpenTelemetry, this plugin and the libraries
that hand work over on the user's behalf. Frames of installed packages
(site-packages) are passed over when a frame of the user's own code follows.
"""

from __future__ import annotations

import os
import sys
from types import FrameType

__all__ = ["is_machinery_code", "user_site"]

# Libraries whose frames are machinery: they hand work over for the user's code.
_MACHINERY = frozenset(
    {
        *sys.stdlib_module_names,
        "opentelemetry",
        "pytest_tracechain",
        "_pytest",
        "pytest",
        "pluggy",
        "anyio",
        "trio",
        "sniffio",
        "gevent",
        "greenlet",
    }
)
_INSTALLED = (f"{os.sep}site-packages{os.sep}", f"{os.sep}dist-packages{os.sep}")
_DEPTH = 64  # frames looked at, at most


def _is_machinery(frame: FrameType) -> bool:
    name = frame.f_globals.get("__name__")
    return not isinstance(name, str) or name.partition(".")[0] in _MACHINERY


def _describe(frame: FrameType) -> str:
    filename = frame.f_code.co_filename
    try:
        relative = os.path.relpath(filename)
    except ValueError:  # another drive (Windows)
        relative = filename
    shown = filename if relative.startswith(os.pardir) else relative
    return f"{shown}:{frame.f_lineno}"


def user_site(frame: FrameType | None) -> str | None:
    """``file:line`` of the first frame from ``frame`` outwards that a user would fix, or None."""
    fallback: FrameType | None = None
    for _ in range(_DEPTH):
        if frame is None:
            break
        if not _is_machinery(frame):
            if not any(part in frame.f_code.co_filename for part in _INSTALLED):
                return _describe(frame)
            fallback = fallback or frame
        frame = frame.f_back
    return _describe(fallback) if fallback is not None else None


def is_machinery_code(function: object) -> bool:
    """Whether ``function`` belongs to machinery (a pool's worker loop, a server's ``serve_forever``).

    A thread whose target is machinery takes its work later, from elsewhere:
    what was current when it started is not what its work belongs to.
    Builtins and callables without a module (``functools.partial``) are the user's.
    """
    module = getattr(function, "__module__", None)
    return isinstance(module, str) and module.partition(".")[0] in _MACHINERY
