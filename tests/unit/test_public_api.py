"""Every public function and method checks its arguments at the entry.

A wrong type is a ``TypeError`` and a wrong value a ``ValueError``, each naming
the function and the argument (``f() argument 'x' ...``), never an error from
deep inside. One case per function and bad argument; the coverage tests fail
when a public name, method or parameter has no case, so a new one is noticed.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

import pytest_tracechain
from pytest_tracechain import (
    Origin,
    TraceCapture,
    assert_carrier_has_context,
    assert_chain_intact,
    assert_child_of,
    assert_descendant_of,
    assert_linked_to,
    assert_outlives,
    assert_remote_parent,
    assert_root,
    assert_same_trace,
    assert_span_kind,
    assert_trace_tree,
)
from pytest_tracechain._state import CaptureState
from tests.unit.spans import span

S = span("a", 1)

# Public names with no function or method that takes an argument (checked below).
WITHOUT_ARGUMENTS = {
    "OtlpReceiver": "made by the otlp_receiver fixture; `endpoint`, `env`, `traces_endpoint` are data",
    "Trace": "a record the capture makes: fields and a property",
    "TraceAssertionError": "an exception",
    "TraceChainWarning": "a warning",
}


def capture() -> TraceCapture:
    return TraceCapture(CaptureState("test_x"), _ispytest=True)


@dataclass(frozen=True)
class Case:
    func: str  # as errors name it: "assert_child_of", "TraceCapture.find"
    param: str  # the parameter of its signature this case covers
    call: Callable[[], object]
    shown: str = ""  # the argument as the message names it, when not ``param`` ("spans[0]")
    error: type[Exception] = TypeError

    @property
    def id(self) -> str:
        return f"{self.func}-{self.shown or self.param}-{self.error.__name__}"


def cases() -> list[Case]:
    cap = capture()
    return [
        Case("assert_same_trace", "spans", lambda: assert_same_trace(1, S), "spans[0]"),  # type: ignore[arg-type]
        Case("assert_same_trace", "spans", lambda: assert_same_trace(S, None), "spans[1]"),  # type: ignore[arg-type]
        Case("assert_child_of", "child", lambda: assert_child_of(1, S)),  # type: ignore[arg-type]
        Case("assert_child_of", "parent", lambda: assert_child_of(S, 1)),  # type: ignore[arg-type]
        Case("assert_descendant_of", "span", lambda: assert_descendant_of(1, S)),  # type: ignore[arg-type]
        Case("assert_descendant_of", "ancestor", lambda: assert_descendant_of(S, 1)),  # type: ignore[arg-type]
        Case("assert_span_kind", "span", lambda: assert_span_kind(1, "server")),  # type: ignore[arg-type]
        Case("assert_span_kind", "kind", lambda: assert_span_kind(S, 1)),  # type: ignore[arg-type]
        Case("assert_span_kind", "kind", lambda: assert_span_kind(S, "sever"), error=ValueError),
        Case("assert_root", "span", lambda: assert_root(1)),  # type: ignore[arg-type]
        Case("assert_remote_parent", "span", lambda: assert_remote_parent(1)),  # type: ignore[arg-type]
        Case("assert_linked_to", "span", lambda: assert_linked_to(1, S)),  # type: ignore[arg-type]
        Case("assert_linked_to", "other", lambda: assert_linked_to(S, 1)),  # type: ignore[arg-type]
        Case("assert_outlives", "span", lambda: assert_outlives(1, S)),  # type: ignore[arg-type]
        Case("assert_outlives", "other", lambda: assert_outlives(S, 1)),  # type: ignore[arg-type]
        Case("assert_trace_tree", "expected", lambda: assert_trace_tree(1, [S])),  # type: ignore[arg-type]
        Case("assert_trace_tree", "spans", lambda: assert_trace_tree("a", 1)),  # type: ignore[arg-type]
        Case("assert_trace_tree", "spans", lambda: assert_trace_tree("a", [1, 2])),  # type: ignore[list-item]
        Case("assert_trace_tree", "timeout", lambda: assert_trace_tree("a", cap, timeout="x")),  # type: ignore[arg-type]
        Case(
            "assert_trace_tree", "timeout", lambda: assert_trace_tree("a", cap, timeout=-1), error=ValueError
        ),
        Case("assert_chain_intact", "capture", lambda: assert_chain_intact(1)),  # type: ignore[arg-type]
        Case("assert_chain_intact", "capture", lambda: assert_chain_intact([1])),  # type: ignore[list-item]
        Case("assert_carrier_has_context", "carrier", lambda: assert_carrier_has_context(1)),
        Case("assert_carrier_has_context", "span", lambda: assert_carrier_has_context({}, 1)),  # type: ignore[arg-type]
        *filter_cases("find", cap.find),
        *filter_cases("one", cap.one),
        *filter_cases("wait_for", cap.wait_for),
        Case("TraceCapture.wait_for", "count", lambda: cap.wait_for("a", count="2")),  # type: ignore[arg-type]
        Case("TraceCapture.wait_for", "count", lambda: cap.wait_for("a", count=0), error=ValueError),
        Case("TraceCapture.wait_for", "timeout", lambda: cap.wait_for("a", timeout="5")),  # type: ignore[arg-type]
        Case("TraceCapture.wait_for", "timeout", lambda: cap.wait_for("a", timeout=-1), error=ValueError),
        Case("TraceCapture.origin", "span", lambda: cap.origin(1)),  # type: ignore[arg-type]
        Case("TraceCapture.is_root", "span", lambda: cap.is_root(1)),  # type: ignore[arg-type]
        Case("TraceCapture.render", "highlight", lambda: cap.render(highlight=[1, 2])),  # type: ignore[arg-type]
        Case("TraceCapture.render", "limit", lambda: cap.render(limit="x")),  # type: ignore[arg-type]
        Case("TraceCapture.render", "limit", lambda: cap.render(limit=-1), error=ValueError),
        Case("TraceCapture.render", "color", lambda: cap.render(color="x")),  # type: ignore[arg-type]
        Case("TraceCapture.tree", "attributes", lambda: cap.tree(attributes="http.route")),  # type: ignore[arg-type]
        Case("TraceCapture.tree", "attributes", lambda: cap.tree(attributes=[1])),  # type: ignore[list-item]
        Case("TraceCapture.tree", "attributes", lambda: cap.tree(attributes=["links"]), error=ValueError),
        Case("TraceCapture.tree", "attributes", lambda: cap.tree(attributes=["a b"]), error=ValueError),
        Case("TraceCapture.tree", "normalize", lambda: cap.tree(normalize="hex")),  # type: ignore[arg-type]
        Case("TraceCapture.tree", "where", lambda: cap.tree(where="db")),  # type: ignore[arg-type]
        Case("TraceCapture.tree", "trace", lambda: cap.tree(trace=1.5)),  # type: ignore[arg-type]
        Case("TraceCapture.tree", "trace", lambda: cap.tree(trace="abc"), error=ValueError),
        Case("Origin.describe", "this_pid", lambda: Origin(1, "MainThread", 1).describe(this_pid="1")),  # type: ignore[arg-type]
    ]


def filter_cases(method: str, call: Callable[..., object]) -> list[Case]:
    """The bad filters of find, one and wait_for."""
    func = f"TraceCapture.{method}"
    return [
        Case(func, "name", lambda: call(42)),
        Case(func, "kind", lambda: call(kind=1)),
        Case(func, "kind", lambda: call(kind="serve"), error=ValueError),
        Case(func, "trace_id", lambda: call(trace_id=1.0)),
        Case(func, "trace_id", lambda: call(trace_id="abc"), error=ValueError),
        Case(func, "attributes", lambda: call(attributes=[("a", 1)])),
        Case(func, "attributes", lambda: call(attributes={1: "a"})),
    ]


CASES = cases()


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_a_wrong_argument_is_an_error_naming_the_function_and_the_argument(case: Case) -> None:
    with pytest.raises(case.error) as info:
        case.call()
    assert type(info.value) is case.error
    shown = re.escape(case.shown or case.param)
    # 'x' must be ... for a wrong type; x=value is not ... for a wrong value of the right type
    assert re.match(rf"{re.escape(case.func)}\(\) argument ('{shown}'|{shown}=)", str(info.value)), str(
        info.value
    )


def package_frames(raised: pytest.ExceptionInfo[BaseException]) -> list[str]:
    """The frames of the package the traceback shows (those without ``__tracebackhide__``)."""
    shown = raised.traceback.filter(raised)
    return [entry.frame.code.name for entry in shown if Path(entry.path).parent.name == "pytest_tracechain"]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_the_error_points_at_the_callers_line(case: Case) -> None:
    with pytest.raises(case.error) as info:
        case.call()
    assert package_frames(info) == []


def public_parameters() -> dict[str, list[str]]:
    """Every public function and method (as errors name it), with the parameters it takes."""
    found: dict[str, list[str]] = {}
    for name in pytest_tracechain.__all__:
        value = getattr(pytest_tracechain, name)
        if not isinstance(value, type):
            found[name] = list(inspect.signature(value).parameters)
            continue
        for attr, member in vars(value).items():
            if not attr.startswith("_") and inspect.isfunction(member):
                found[f"{name}.{attr}"] = list(inspect.signature(member).parameters)[1:]  # without self
    return found


def test_every_parameter_of_every_public_function_and_method_has_a_case() -> None:
    covered = {(case.func, case.param) for case in CASES}
    wanted = {(func, param) for func, params in public_parameters().items() for param in params}
    assert sorted(wanted - covered) == [], (
        "add a case for each (a bad type, and a bad value where one exists)"
    )
    assert sorted(covered - wanted) == [], "cases of parameters that are gone"


def test_every_public_name_has_cases_or_takes_no_arguments() -> None:
    with_cases = {case.func.split(".")[0] for case in CASES}
    assert sorted(set(pytest_tracechain.__all__) - with_cases - WITHOUT_ARGUMENTS.keys()) == []
    assert sorted(with_cases & WITHOUT_ARGUMENTS.keys()) == []
    taking = {func.split(".")[0] for func, params in public_parameters().items() if params}
    assert sorted(taking & WITHOUT_ARGUMENTS.keys()) == []
