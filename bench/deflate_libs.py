"""zlib vs zlib-ng vs isal on this machine: speed and ratio of gzip on task-log text.

    python -m bench.deflate_libs [--mib 64]

Two corpora, both held in memory (no I/O in the figures):
- log text: varied build-log-like lines (the `artifact_upload` corpus), ratio ~0.2 with zlib 6;
- base64: `head -c N /dev/urandom | base64` output, the 425 MB log benchmark's content.
Each row is one core compressing 1 MiB blocks the way the worker does (raw deflate primed with
the previous block's last 32 KiB, sync flush between blocks), best of 2 rounds, and the
decompression speed of the result. The all-core rate is measured by `log_gzip` and
`artifact_upload` in their own runs.
"""

from __future__ import annotations

import argparse
import base64
import functools
import os
import time
import zlib
from collections.abc import Callable
from typing import Any

from isal import isal_zlib
from zlib_ng import zlib_ng

from bench.artifact_upload import log_corpus

MiB = 1024 * 1024
BLOCK = MiB
WINDOW = 32 * 1024
LIBRARIES: list[tuple[str, Any, tuple[int, ...]]] = [
    ("zlib", zlib, (1, 6)),
    ("zlib-ng", zlib_ng, (1, 2, 6)),
    ("isal", isal_zlib, (1, 2, 3)),
]


def compress_blocks(lib: Any, level: int, data: bytes) -> bytes:
    """Compress `data` block by block as one raw deflate stream (the worker's scheme)."""
    view = memoryview(data)
    out = []
    previous = b""
    for offset in range(0, len(data), BLOCK):
        block = view[offset : offset + BLOCK]
        last = offset + BLOCK >= len(data)
        if previous:
            comp = lib.compressobj(level, lib.DEFLATED, -15, zdict=previous)
        else:
            comp = lib.compressobj(level, lib.DEFLATED, -15)
        out.append(comp.compress(block))
        out.append(comp.flush(lib.Z_FINISH if last else lib.Z_SYNC_FLUSH))
        previous = bytes(block[-WINDOW:])
    return b"".join(out)


def timed(action: Callable[[], object]) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(2):
        start = time.perf_counter()
        result = action()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    """Print one row per library and level for each corpus."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mib", type=int, default=64, help="corpus size")
    args = parser.parse_args()
    size = args.mib * MiB
    corpora = {
        "log text": log_corpus(size),
        "base64": base64.encodebytes(os.urandom(size * 3 // 4))[:size],
    }
    print(f"machine: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, corpus {args.mib} MiB each")
    print(
        f"{'corpus':<9} {'library':<8} {'level':>5} {'compress MB/s':>14} {'ratio':>6} {'inflate MB/s':>13}"
    )
    for corpus, data in corpora.items():
        for name, lib, levels in LIBRARIES:
            for level in levels:
                seconds, packed = timed(functools.partial(compress_blocks, lib, level, data))
                assert isinstance(packed, bytes)
                inflate, plain = timed(functools.partial(lib.decompress, packed, -15))
                assert plain == data
                print(
                    f"{corpus:<9} {name:<8} {level:>5} {size / MiB / seconds:>14.0f} "
                    f"{len(packed) / size:>6.3f} {size / MiB / inflate:>13.0f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
