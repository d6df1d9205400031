"""Getting the routing processor onto the tracer provider the code under test uses.

OpenTelemetry lets the global tracer provider be set once. At first use we
install one SDK ``TracerProvider`` for the session, or add our processor to the
SDK provider the application already set. Code under test that sets its own
SDK provider later is refused by OpenTelemetry as usual, but we attach to that
provider too, so spans it creates directly are still captured.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from pytest_tracechain import _scope, _spawn, _state
from pytest_tracechain._errors import TraceChainUsageError
from pytest_tracechain._router import Router
from pytest_tracechain._state import CaptureState

_lock = threading.Lock()
_router: Router | None = None
_attached: list[TracerProvider] = []
_original_set: Any = None


def router() -> Router:
    """The session's router, attached to the global provider (installing one if needed).

    Called at every captured test's setup: it also patches spawn points whose
    modules the code under test has imported since (see ``_spawn.install``).
    """
    global _router, _patched
    active = _router
    if active is None:
        with _lock:
            if _router is None:
                new_router = Router()
                _attach_global(new_router)
                _watch_set_tracer_provider(new_router)
                os.register_at_fork(after_in_child=new_router.after_fork_in_child)
                _router = new_router
            active = _router
    if not _patched:  # undone at the end of each pytest session
        _scope.install(active)
        _bind_proxy_tracers()  # the global provider is an SDK one now
        _patched = True
    _spawn.install(active.is_capturing, active.record_injection, active.current_capture)
    return active


_patched = False


def shutdown() -> None:
    """Undo the patches at the end of the session (the provider stays: it is global)."""
    global _patched
    _spawn.uninstall()
    _scope.uninstall()
    _unbind_proxy_tracers()
    if _router is not None:
        _router.let_go()
    _patched = False


def settle() -> None:
    """Wait until the requests the ``otlp_receiver`` answered are in the captures (at once when none is left).

    Every read of a capture calls it first (``Router.settle``).
    """
    active = _router
    if active is not None:
        active.settle()


def existing_router() -> Router | None:
    """The router if some test already installed it, without installing it."""
    return _router


def running_state() -> CaptureState | None:
    """The capture state of the running test, if one is captured."""
    return _router.current if _router is not None else None


def _attach_global(new_router: Router) -> None:
    provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
        provider = trace.get_tracer_provider()  # another thread may have won the race
    if not isinstance(provider, TracerProvider):
        raise TraceChainUsageError(
            "pytest-tracechain needs an OpenTelemetry SDK TracerProvider "
            "(opentelemetry.sdk.trace.TracerProvider) as the global tracer provider, "
            f"but the global provider is {type(provider).__module__}.{type(provider).__qualname__}. "
            "Set an SDK TracerProvider before the first test that uses tracechain, "
            "or leave the global provider unset and the plugin installs one."
        )
    _attach(provider, new_router)


def _bind_proxy_tracers() -> None:
    """Let ProxyTracers hand their spans straight to the real tracer, now that the provider is set.

    Code that calls ``trace.get_tracer`` at import, before the first test
    installs the provider, holds a ``ProxyTracer``: it delegates every span
    through a context manager of its own (4-9 % of a span's cost). Patched
    here, a proxy's first look-up of ``start_span`` or ``start_as_current_span``
    finds its real tracer as its first call did, puts that tracer's methods on
    the proxy and gives the real method, so later spans skip the proxy, even
    through a method held from that look-up (``span = tracer.start_as_current_span``).
    Undone by ``shutdown``; a bound proxy stays bound, to the same tracer.
    """
    proxy_class = trace.ProxyTracer
    if _proxy_methods or not isinstance(getattr(proxy_class, "_tracer", None), property):
        return  # bound already, or an API whose proxy this does not know
    for name in ("start_span", "start_as_current_span"):
        _proxy_methods[name] = original = proxy_class.__dict__[name]
        setattr(proxy_class, name, _Binding(name, original))


class _Binding:
    """A ProxyTracer method that binds the proxy to its real tracer when it is looked up.

    A non-data descriptor: once the proxy is bound, its own attributes (the
    real tracer's methods) are found first and this is not consulted again.
    """

    def __init__(self, name: str, original: Any) -> None:
        self.name = name
        self.original = original

    def __get__(self, proxy: trace.ProxyTracer | None, owner: type | None = None) -> Any:
        if proxy is None:
            return self.original  # looked up on the class
        found = proxy._tracer
        if getattr(proxy, "_real_tracer", None) is not found:  # no provider yet: the no-op tracer
            return self.original.__get__(proxy, owner)
        proxy.start_span = found.start_span  # type: ignore[method-assign]
        proxy.start_as_current_span = found.start_as_current_span  # type: ignore[method-assign]
        return getattr(found, self.name)


_proxy_methods: dict[str, Any] = {}


def _unbind_proxy_tracers() -> None:
    for name, original in _proxy_methods.items():
        setattr(trace.ProxyTracer, name, original)
    _proxy_methods.clear()


def _attach(provider: TracerProvider, new_router: Router) -> None:
    if any(existing is provider for existing in _attached):
        return
    provider.add_span_processor(new_router)
    _attached.append(provider)


def _watch_set_tracer_provider(new_router: Router) -> None:
    """Attach to SDK providers the code under test tries to set later."""
    global _original_set
    original = getattr(trace, "_set_tracer_provider", None)
    if original is None or _original_set is not None:
        return
    _original_set = original

    def set_and_attach(tracer_provider: Any, log: bool) -> None:
        if isinstance(tracer_provider, TracerProvider):
            _attach(tracer_provider, new_router)
        original(tracer_provider, log)

    trace._set_tracer_provider = set_and_attach


# Samplers that drop every root span (their descriptions): nothing a test starts is recorded.
_DROPPING = ("AlwaysOffSampler", "TraceIdRatioBased{0}", "TraceIdRatioBased{0.0}")


def why_nothing_is_captured() -> str | None:
    """Why the provider records no span a test starts, when it cannot: else None."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return (
            "OTEL_SDK_DISABLED=true is set, so the OpenTelemetry SDK makes no spans at all: "
            "unset it for the tests"
        )
    if not _attached:
        return None
    sampler = getattr(_attached[0], "sampler", None)
    description = sampler.get_description() if sampler is not None else ""
    root = description.removeprefix("ParentBased{root:")
    if any(root == name or root.startswith(name + ",") for name in _DROPPING):
        return (
            f"the tracer provider's sampler ({description}) drops every root span, so the spans a test "
            "starts are never recorded: use the default sampler in tests (unset OTEL_TRACES_SAMPLER, "
            "or TracerProvider(sampler=ALWAYS_ON))"
        )
    return None


_state.why_nothing_is_captured = why_nothing_is_captured


def tracer(instrumenting_module_name: str = "pytest-tracechain") -> trace.Tracer:
    """A tracer of the provider in use (the global SDK provider)."""
    router()
    return trace.get_tracer(instrumenting_module_name)
