"""Fail when a function of the package is more complex than the limit (radon's cyclomatic complexity).

python .ci/complexity.py [--limit 15] [paths...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from radon.complexity import cc_visit


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--limit", type=int, default=15)
    parser.add_argument("paths", nargs="*", default=["pytest_tracechain"])
    args = parser.parse_args()
    over = []
    for root in map(Path, args.paths):
        for path in sorted(root.rglob("*.py") if root.is_dir() else [root]):
            for block in cc_visit(path.read_text(encoding="utf-8")):
                if block.complexity > args.limit:
                    over.append(f"{path}:{block.lineno} {block.fullname} {block.complexity}")
    for line in over:
        print(line)
    print(f"{len(over)} function(s) above cyclomatic complexity {args.limit}")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
