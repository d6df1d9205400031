"""Helpers shared by the ``bench_*.py`` scripts (not a test module, not collected).

Every measured command runs in a fresh subprocess. Its wall time is taken
around the whole process; CPU time (user + system) and peak RSS come from the
child's own ``rusage`` (``os.wait4``), so they are not mixed up with other
children or with this driver.
"""

from __future__ import annotations

import importlib.metadata
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

# Names of pytest plugins that trace the test run itself. If one is installed in
# the interpreter under test it would add spans to every test and distort the
# figures, so the benchmarks block it with ``-p no:<name>``.
TEST_RUN_TRACERS = ("pytest_opentelemetry", "pytest-otel", "otel")


@dataclass
class Run:
    wall: float  # seconds, whole process
    cpu: float  # seconds, user + system of the child
    maxrss_mb: float  # peak resident set size of the child
    stdout: str
    stderr: str
    started: float  # time.perf_counter() just before the child was spawned
    ended: float  # time.perf_counter() once it had exited (CLOCK_MONOTONIC on Linux)


@dataclass
class Series:
    """Repeated runs of one variant."""

    label: str
    runs: list[Run] = field(default_factory=list)

    def median(self, attr: str) -> float:
        return statistics.median(getattr(run, attr) for run in self.runs)

    def spread(self, attr: str) -> tuple[float, float]:
        values = [getattr(run, attr) for run in self.runs]
        return min(values), max(values)


PYCACHE = Path(tempfile.gettempdir()) / "pytest-tracechain-bench-pycache"


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for measured children.

    No ``OTEL_*`` or ``PYTEST_*`` settings from the caller's shell (a sampler,
    ``OTEL_SDK_DISABLED``, ``PYTEST_ADDOPTS`` would change what is measured).
    Bytecode caching on, as users normally have it, so that pytest's assertion
    rewriting and module compilation happen once in the warm-up run rather than
    in every measured run (``PYTHONDONTWRITEBYTECODE=1`` would make them repeat);
    the ``.pyc`` files go to a cache directory of their own, never into the
    repository or site-packages.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OTEL_", "PYTEST_"))
        and key not in ("PYTHONSTARTUP", "PYTHONBREAKPOINT", "PYTHONDONTWRITEBYTECODE")
    }
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    if extra:
        env.update(extra)
    return env


def has_module(python: str, module: str) -> bool:
    """Whether ``module`` imports under ``python`` (a peer's package is installed)."""
    code = f"import {module}"
    return subprocess.run([python, "-c", code], capture_output=True, env=clean_env()).returncode == 0


def run_timed(cmd: Sequence[str], *, cwd: str | None = None, env: Mapping[str, str] | None = None) -> Run:
    """Run ``cmd`` to completion; fail loudly if it exits non-zero."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(list(cmd), cwd=cwd, env=dict(env or clean_env()), stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        end = time.perf_counter()
        wall = end - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        raise SystemExit(
            f"command failed with exit code {proc.returncode}: {' '.join(cmd)}\n"
            f"--- stdout ---\n{stdout[-4000:]}\n--- stderr ---\n{stderr[-4000:]}"
        )
    return Run(
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime,
        maxrss_mb=usage.ru_maxrss / 1024,  # kilobytes on Linux
        stdout=stdout,
        stderr=stderr,
        started=start,
        ended=end,
    )


def count_instructions(cmd: Sequence[str], *, cwd: str | Path, env: Mapping[str, str]) -> int:
    """Instructions ``cmd`` executes, counted by valgrind's callgrind (after a run that writes the .pyc).

    Deterministic where time is not: on this shared machine CPU time moves by
    several per cent from run to run, an instruction count by well under 0.1 %
    (with ``PYTHONHASHSEED`` fixed). It does not count cache misses or time
    spent in the kernel.
    """
    subprocess.run(list(cmd), cwd=cwd, env=dict(env), capture_output=True, check=True)
    run = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *cmd],
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(r"Collected : (\d+)", run.stderr)
    if found is None:
        raise SystemExit(f"callgrind printed no count:\n{run.stderr[-2000:]}")
    return int(found.group(1))


def installed_test_run_tracers(python: str) -> list[str]:
    """pytest11 entry points of test-run tracing plugins installed for ``python``."""
    code = (
        "import importlib.metadata as m\n"
        "print('\\n'.join(e.name for e in m.entry_points(group='pytest11')))\n"
    )
    names = subprocess.run(
        [python, "-c", code], capture_output=True, text=True, check=True, env=clean_env()
    ).stdout.split()
    return [name for name in names if name in TEST_RUN_TRACERS]


def pytest_blockers(python: str) -> list[str]:
    blockers: list[str] = []
    for name in installed_test_run_tracers(python):
        print(f"note: {name} is installed here; measuring with -p no:{name}")
        blockers += ["-p", f"no:{name}"]
    return blockers


def pytest_command(python: str) -> list[str]:
    """The ``pytest`` console script next to ``python`` (``python -m pytest`` if there is none)."""
    script = Path(python).parent / "pytest"
    return [str(script)] if script.exists() else [python, "-m", "pytest"]


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def package_fingerprint() -> str:
    """Which pytest-tracechain source was measured: git commit, local changes, content hash."""
    import hashlib
    import importlib.util

    spec = importlib.util.find_spec("pytest_tracechain")
    if spec is None or spec.origin is None:
        return "pytest_tracechain not importable"
    package = Path(spec.origin).parent
    digest = hashlib.sha256()
    for source in sorted(package.glob("*.py")):
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    text = f"pytest_tracechain source sha256 {digest.hexdigest()[:12]}"
    try:
        commit = subprocess.run(
            ["git", "-C", str(package), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(package), "status", "--porcelain", "--", "."],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return text
    return f"{text}, git {commit}{' + uncommitted changes' if dirty else ''}"


def machine_info() -> str:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 0
    try:
        load = "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover
        load = ""
    return (
        f"{platform.python_implementation()} {platform.python_version()} on "
        f"{platform.system()} {platform.machine()}, {cpus} CPUs usable, {load}\n{versions()}\n"
        f"{package_fingerprint()}"
    )


def versions() -> str:
    """The versions of what is measured, as this interpreter has them."""
    return ", ".join(
        f"{dist} {_version(dist)}"
        for dist in ("opentelemetry-api", "opentelemetry-sdk", "pytest", "pytest-tracechain")
    )


def williams_orders(count: int) -> list[list[int]]:
    """Orders of ``count`` variants, balanced for position and for what ran just before.

    A Williams design: the rows of a Latin square (each variant once in every
    position) in which every variant follows every other exactly once; for an
    odd count, the rows and their mirror images. A plain rotation keeps the
    cyclic order, so each variant is nearly always preceded by the same one.
    """
    first = [0] + [(k + 1) // 2 if k % 2 else count - k // 2 for k in range(1, count)]
    rows = [[(x + shift) % count for x in first] for shift in range(count)]
    return rows if count % 2 == 0 or count == 1 else rows + [row[::-1] for row in rows]


def alternate(
    variants: Iterable[str],
    reps: int,
    *,
    warmup: bool = True,
    pairs: Iterable[tuple[str, str]] = (),
) -> Iterable[tuple[int, str]]:
    """(repetition, variant) pairs: every repetition runs each variant once, orders from ``williams_orders``.

    Over a multiple of ``len(williams_orders(n))`` repetitions every variant has
    run in every position, and after every other variant, equally often, so a
    slow phase of a busy machine or an effect of the run before (the file cache,
    a cooling core) falls evenly on all of them. Repetition ``-1`` is an
    unrecorded warm-up of each variant (file cache, ``.pyc`` files).

    The two variants of each of ``pairs`` run next to each other, as one entry
    of the design, each of them first in half of the repetitions, so that a
    slow phase of the machine longer than the two runs falls on both (on this
    host much of the load moves faster than that: it takes many repetitions
    either way, see ``median_interval``). Over twice the design's rows each
    order of a pair comes once in every row.
    """
    names = list(variants)
    paired = {name for pair in pairs for name in pair}
    blocks: list[tuple[str, ...]] = [tuple(pair) for pair in pairs]
    blocks += [(name,) for name in names if name not in paired]
    orders = williams_orders(len(blocks))
    cycle = len(orders) * (2 if pairs else 1)
    if reps % cycle:
        progress(f"note: {reps} repetitions: the orders balance over multiples of {cycle}")
    if warmup:
        for name in names:
            yield -1, name
    for rep in range(reps):
        flip = (rep + rep // len(orders)) % 2
        for index in orders[rep % len(orders)]:
            block = blocks[index]
            for name in block[::-1] if flip else block:
                yield rep, name


def median_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """A distribution-free confidence interval for the median of ``values``.

    The order statistics ``x(k)`` and ``x(n - k + 1)`` with the largest ``k``
    for which the binomial distribution gives at least ``confidence`` that the
    median lies between them; ``(min, max)`` when there are too few values
    for that (under 6 at 95 %).
    """
    ordered = sorted(values)
    n = len(ordered)
    if not n:
        raise ValueError("no values")
    below = 0.0  # P(B <= k - 1), B the number of values under the median: Binomial(n, 1/2)
    k = 0  # the largest k whose interval holds the median with ``confidence``
    while k < n // 2:
        below += math.comb(n, k) / 2**n
        if 2 * below > 1 - confidence:
            break
        k += 1
    if k == 0:
        return ordered[0], ordered[-1]
    return ordered[k - 1], ordered[n - k]


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table, so the output can be pasted into docs/performance.md."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(headers), sep, *(line(row) for row in rows)])


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_pythons(values: Sequence[str] | None) -> dict[str, str]:
    """``--python LABEL=PATH`` options (an A/B comparison of two venvs); default: this interpreter.

    Every variant is run under every interpreter, interleaved with the others
    (``alternate`` over the pairs), so both sides see the same machine.
    """
    if not values:
        return {"": sys.executable}
    pythons: dict[str, str] = {}
    for value in values:
        label, sep, path = value.partition("=")
        if not sep or not label or not path:
            raise SystemExit(
                f"--python takes LABEL=PATH (e.g. base=/work/bench-base/bin/python), not {value!r}"
            )
        pythons[label] = path
    return pythons


def fingerprint_of(python: str, env: Mapping[str, str] | None = None) -> str:
    """``package_fingerprint()`` and ``versions()`` as seen by another interpreter (the tree its
    venv installs, or the one ``env``'s ``PYTHONPATH`` puts first)."""
    code = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import _common; "
        "print(_common.package_fingerprint() + '; ' + _common.versions())"
    )
    return subprocess.run(
        [python, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env=dict(env or clean_env()),
        cwd=tempfile.gettempdir(),  # not the repository, whose tree would shadow a venv's
    ).stdout.strip()


def parse_sources(values: Sequence[str] | None) -> dict[str, str]:
    """``--source LABEL=DIR`` options: an A/B of two checkouts under one interpreter.

    Each label runs the same interpreter with ``PYTHONPATH=DIR`` (a checkout's
    root, ahead of whatever the venv installs), so two venvs' differences
    cannot show as a difference of the code.
    """
    sources: dict[str, str] = {}
    for value in values or ():
        label, sep, path = value.partition("=")
        if not sep or not label or not (Path(path) / "pytest_tracechain").is_dir():
            raise SystemExit(
                f"--source takes LABEL=DIR, DIR a checkout with pytest_tracechain/, not {value!r}"
            )
        sources[label] = str(Path(path).resolve())
    return sources


# The bare-SDK pattern the per-test and per-span benchmarks compare with: one global provider,
# SimpleSpanProcessor(InMemorySpanExporter()), a fixture that clears the exporter after the test.
BARE_CONFTEST = """\
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

_exporter = InMemorySpanExporter()
_provider = TracerProvider()
_provider.add_span_processor(SimpleSpanProcessor(_exporter))
trace.set_tracer_provider(_provider)


@pytest.fixture
def spans():
    yield _exporter
    _exporter.clear()
"""
