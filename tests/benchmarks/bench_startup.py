"""Start-up cost of having pytest-tracechain installed in a project that does not use it.

1. ``pytest --co -q -p no:cacheprovider`` on a generated suite of 2,000 tests
   that never uses the plugin, with the plugin enabled (as installed) and with
   ``-p no:tracechain``; alternated, median of the repetitions. An extra,
   untimed run with a probe plugin checks that the enabled run really loaded
   pytest-tracechain and imported no OpenTelemetry module.
2. ``python -X importtime -c "import pytest_tracechain.plugin"``: asserts that
   no ``opentelemetry`` module is imported, and shows what the import costs.

    python tests/benchmarks/bench_startup.py            # 10 repetitions
    python tests/benchmarks/bench_startup.py --quick    # 3 repetitions
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
from pathlib import Path

from _common import (
    Series,
    alternate,
    clean_env,
    machine_info,
    progress,
    pytest_blockers,
    pytest_command,
    run_timed,
    table,
)

TESTS_PER_FILE = 100

PROBE = """\
import json
import os
import sys


def pytest_sessionfinish(session):
    loaded = session.config.pluginmanager.has_plugin("tracechain")
    modules = sorted(m for m in sys.modules if m.split(".")[0] in ("opentelemetry", "pytest_tracechain"))
    with open(os.environ["TRACECHAIN_PROBE_OUT"], "w") as out:
        json.dump({"tracechain_loaded": loaded, "modules": modules}, out)
"""

ASSERTING_IMPORT = (
    "import pytest_tracechain.plugin, sys; "
    "assert 'opentelemetry' not in sys.modules, 'opentelemetry imported'; "
    "leaked = sorted(m for m in sys.modules if m.startswith('opentelemetry')); "
    "assert not leaked, leaked"
)


def write_suite(root: Path, n_tests: int) -> Path:
    suite = root / "suite"
    suite.mkdir()
    (suite / "pytest.ini").write_text("[pytest]\n")
    for start in range(0, n_tests, TESTS_PER_FILE):
        count = min(TESTS_PER_FILE, n_tests - start)
        body = "".join(f"\n\ndef test_{i}():\n    pass\n" for i in range(count))
        (suite / f"test_{start // TESTS_PER_FILE:03d}.py").write_text(body.lstrip())
    return suite


def probe(pytest: list[str], args: list[str], suite: Path, tmp: Path) -> dict[str, object]:
    probe_dir = tmp / "probe"
    probe_dir.mkdir(exist_ok=True)
    (probe_dir / "tracechain_bench_probe.py").write_text(PROBE)
    out = tmp / "probe.json"
    env = clean_env({"PYTHONPATH": str(probe_dir), "TRACECHAIN_PROBE_OUT": str(out)})
    run_timed([*pytest, *args, "-p", "tracechain_bench_probe"], cwd=str(suite), env=env)
    result: dict[str, object] = json.loads(out.read_text())
    return result


def parse_importtime(stderr: str) -> list[tuple[int, int, str]]:
    """(self µs, cumulative µs, module with its indentation) per ``-X importtime`` line."""
    rows = []
    for line in stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| (.*)$", line)
        if match:
            rows.append((int(match[1]), int(match[2]), match[3]))
    return rows


def importtime(reps: int) -> None:
    python = sys.executable
    print("\n## `python -X importtime -c 'import pytest_tracechain.plugin'`\n")
    # The brief's command, asserting that no OpenTelemetry module was imported.
    run = run_timed([python, "-X", "importtime", "-c", ASSERTING_IMPORT], env=clean_env())
    rows = parse_importtime(run.stderr)
    otel = [name.strip() for _, _, name in rows if "opentelemetry" in name]
    if otel:
        raise SystemExit(f"importing pytest_tracechain.plugin imported OpenTelemetry: {otel}")
    print(
        f"`import pytest_tracechain.plugin` imports {len(rows)} modules, none of them "
        f'opentelemetry (asserted: "opentelemetry" not in sys.modules).\n'
    )
    # What the plugin adds on top of pytest, which pytest has imported anyway
    # by the time it loads plugins: median over repetitions.
    samples: dict[str, list[int]] = {}
    own: list[str] = []
    for _ in range(reps):
        run = run_timed(
            [python, "-X", "importtime", "-c", "import pytest; import pytest_tracechain.plugin"],
            env=clean_env(),
        )
        rows = parse_importtime(run.stderr)
        names = [name.strip() for _, _, name in rows]
        start = names.index("pytest") + 1 if "pytest" in names else 0
        own = names[start:]
        for _, cumulative, name in rows[start:]:
            samples.setdefault(name.strip(), []).append(cumulative)
    print(
        table(
            ["module imported after pytest", "cumulative import time (median)"],
            [[f"`{name}`", f"{statistics.median(samples[name]) / 1000:.2f} ms"] for name in own],
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 repetitions")
    parser.add_argument("--tests", type=int, default=2_000, help="tests in the suite (2,000)")
    parser.add_argument("--reps", type=int, help="repetitions (default 10)")
    args = parser.parse_args()
    reps = args.reps or (3 if args.quick else 10)

    print(machine_info())
    print(f"{args.tests:,} tests that do not use the plugin, {reps} repetitions, alternated, medians\n")
    pytest = pytest_command(sys.executable)
    base_args = ["--co", "-q", "-p", "no:cacheprovider", *pytest_blockers(sys.executable)]
    variants = {
        "enabled": ("plugin enabled (installed, unused)", base_args),
        "disabled": ("-p no:tracechain", [*base_args, "-p", "no:tracechain"]),
    }
    series = {key: Series(label) for key, (label, _) in variants.items()}
    with tempfile.TemporaryDirectory(prefix="tracechain-bench-") as tmp_name:
        tmp = Path(tmp_name)
        suite = write_suite(tmp, args.tests)
        for rep, key in alternate(variants, reps):
            run = run_timed([*pytest, *variants[key][1]], cwd=str(suite), env=clean_env())
            if f"{args.tests} tests collected" not in run.stdout:
                raise SystemExit(f"unexpected output:\n{run.stdout[-2000:]}")
            progress(f"  rep {rep:>2} {key}: wall {run.wall:.3f} s, cpu {run.cpu:.3f} s")
            if rep >= 0:
                series[key].runs.append(run)
        enabled = probe(pytest, variants["enabled"][1], suite, tmp)
        disabled = probe(pytest, variants["disabled"][1], suite, tmp)

    if not enabled["tracechain_loaded"] or disabled["tracechain_loaded"]:
        raise SystemExit(f"plugin not loaded as expected: enabled={enabled} disabled={disabled}")
    otel = [m for m in enabled["modules"] if str(m).startswith("opentelemetry")]  # type: ignore[attr-defined]
    if otel:
        raise SystemExit(f"the enabled run imported OpenTelemetry: {otel}")

    base = series["disabled"]
    rows = []
    for key, s in series.items():
        lo, hi = s.spread("wall")
        rows.append(
            [
                f"`pytest {' '.join(variants[key][1])}`",
                f"{s.median('wall') * 1e3:.0f} ms",
                f"{lo * 1e3:.0f}–{hi * 1e3:.0f} ms",
                f"{s.median('cpu') * 1e3:.0f} ms",
                f"{(s.median('wall') - base.median('wall')) * 1e3:+.0f} ms" if s is not base else "—",
                f"{s.median('wall') / base.median('wall'):.3f}",
                f"{s.median('maxrss_mb'):.0f} MB",
            ]
        )
    print(
        table(
            ["command", "wall", "wall min–max", "CPU", "vs disabled", "ratio", "peak RSS"],
            rows,
        )
    )
    modules = ", ".join(str(m) for m in enabled["modules"])  # type: ignore[attr-defined]
    print(
        f"\nprobe of the enabled run: pytest-tracechain loaded; modules of ours or OpenTelemetry's "
        f"imported by the end of the session: {modules or 'none'}"
    )
    importtime(reps)


if __name__ == "__main__":
    main()
