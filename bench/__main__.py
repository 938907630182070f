"""`python -m bench [NAME...]`: run every (or each named) benchmark module's `main()` in turn.

Each runs with its default arguments; `python -m bench.<name> --help` shows a benchmark's own.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path


def main() -> int:
    """Import each `bench/*.py` module (or those named) and run its `main()`; return 1 if any raised."""
    failed = 0
    wanted = set(sys.argv[1:])
    unknown = wanted - {path.stem for path in Path(__file__).parent.glob("*.py")}
    if unknown:
        print(f"no such benchmark: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 1
    for path in sorted(Path(__file__).parent.glob("*.py")):
        if path.stem.startswith("_") or (wanted and path.stem not in wanted):
            continue
        module = importlib.import_module(f"bench.{path.stem}")
        entry = getattr(module, "main", None)
        if entry is None:
            continue
        print(f"== bench.{path.stem}", flush=True)
        saved = sys.argv
        sys.argv = [f"bench.{path.stem}"]  # each benchmark parses its own (default) arguments
        try:
            entry()
        except Exception as err:  # report and go on with the other benchmarks
            failed = 1
            print(f"bench.{path.stem} failed: {err!r}", flush=True)
        finally:
            sys.argv = saved
    return failed


if __name__ == "__main__":
    sys.exit(main())
