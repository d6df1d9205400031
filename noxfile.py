"""Developer sessions; `bash .ci/run` runs the same checks the way CI does.

nox -s tests-3.12    # the test suite on one Python
nox -s examples      # the example suites, also with --assert=plain
nox -s lint types docs minimum
nox -s mutate        # mutation testing of the rules and carriers (on demand)
"""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["lint", "types", "tests", "examples", "docs", "minimum"]

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    session.install("--upgrade", "pip")
    session.install(".", "--group", "test", "--group", "harness")
    session.run("pytest", "-n", "2", *session.posargs, env={"PYTHONDEVMODE": "1"})


@nox.session
def examples(session: nox.Session) -> None:
    session.install("--upgrade", "pip")
    session.install(".", "--group", "test")
    session.run("pytest", "docs/examples", "-v", *session.posargs)
    session.run("pytest", "docs/examples", "-q", "--assert=plain")


@nox.session(python="3.10")
def minimum(session: nox.Session) -> None:
    """The lowest versions pyproject.toml admits."""
    session.install("--upgrade", "pip")
    session.install(
        ".",
        "pytest==8.0.0",
        "opentelemetry-api==1.24.0",
        "opentelemetry-sdk==1.24.0",
        "pytest-xdist==3.8.0",
        "hypothesis==6.155.2",
    )
    session.run("pytest", "-n", "2", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("--upgrade", "pip")
    session.install("--group", "lint")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("python", ".ci/complexity.py", "--limit", "15", "pytest_tracechain")


@nox.session
def types(session: nox.Session) -> None:
    session.install("--upgrade", "pip")
    session.install(".", "--group", "lint")
    session.run("mypy")


@nox.session
def docs(session: nox.Session) -> None:
    session.install("--upgrade", "pip")
    session.install(".", "--group", "docs")
    session.run("mkdocs", "build", "--strict")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks under tests/benchmarks/ (on demand; see docs/performance.md)."""
    session.install("--upgrade", "pip")
    session.install(".", "--group", "test")
    for script in ("bench_spans.py", "bench_per_test.py", "bench_startup.py"):
        session.run("python", f"tests/benchmarks/{script}", *session.posargs)


@nox.session
def mutate(session: nox.Session) -> None:
    """mutmut on _chain, _carriers and _graph against tests/unit/ ([tool.mutmut] in pyproject.toml)."""
    session.install("--upgrade", "pip")
    session.install(".", "--group", "test", "--group", "mutation")
    session.run("mutmut", "run", *session.posargs)
    session.run("mutmut", "results")
