"""gzip built from independently deflated 1 MiB blocks (ISA-L), and the log-following helper.

The block scheme (used for every gzip the worker writes): each block is raw deflate primed with
the last 32 KiB of the previous block as dictionary, so the ratio stays that of one stream; every
block but the last ends with a sync flush (byte-aligned, not final), the last one with the final
bit, so the concatenation is ONE valid deflate stream inside one gzip member (header with mtime 0
and no name, CRC-32 and size trailer) that any gzip reader accepts. Blocks can therefore be
compressed in any thread or process, in any order, and written in order.

`follow_log` is the main loop of the helper program (`python -m generic_worker.deflate`) that
compresses a task's backing log while it grows, in a process of its own at idle CPU priority (see
`artifacts/log_gzip.py`). This module imports nothing heavy, so that program starts in
milliseconds.
"""

from __future__ import annotations

import os
import select
import struct
import sys
import time
from collections.abc import Callable

from isal import isal_zlib

from generic_worker.deflate.cgroup_cpu import CgroupCpu

BLOCK = 1 << 20
WINDOW = 32 * 1024
"""deflate's history: the dictionary each block is primed with."""

GZIP_HEADER = bytes([0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 3])
"""Magic, deflate, no flags, mtime 0, no extra flags, OS Unix."""

DEFAULT_LEVEL = 1
"""ISA-L's levels are 0-3; 1 is its fastest real compression and the measured best trade-off."""

DUTY = 0.5
"""The helper compresses at most this share of the time (half of one core). Measured on a 2-core
VM with a task printing 425 MB as fast as it can: even at idle priority a helper compressing flat
out slowed the task (caches, wake-ups, shared cores); at 0.25 the task ran at the pipe's own cost
but three quarters of the log were left for the end; 0.5 resolved soonest overall."""

SPARE = 0.75
"""The helper compresses only while the rest of the machine left at least this share of a core
idle (measured over `SPARE_WINDOW`, from /proc/stat). Measured on a 2-core VM: any work beside a
task that keeps the CPUs nearly busy costs it, even at idle priority (a `SCHED_IDLE` spin loop
alone: +6-11 % on `head -c 300M /dev/urandom | base64`), because a core that is momentarily busy
makes the scheduler put the task's own processes on one core. Such a log is left for the end,
where it is compressed on every core; on a machine with a free core the helper keeps pace."""

SPARE_WINDOW = 0.1
"""How often (seconds) the idle CPU is measured while there is work (/proc/stat counts in 10 ms
ticks per core, so shorter windows are too coarse)."""

STATUS = struct.Struct("<QIQ")
"""The helper's progress record: log bytes compressed, their CRC-32, bytes in the copy."""


def deflate_block(level: int, data: bytes, dictionary: bytes, last: bool) -> bytes:
    """One raw deflate piece of the stream: sync-flushed, or final when `last`."""
    if dictionary:
        compressor = isal_zlib.compressobj(level, isal_zlib.DEFLATED, -15, zdict=dictionary)
    else:
        compressor = isal_zlib.compressobj(level, isal_zlib.DEFLATED, -15)
    end = isal_zlib.Z_FINISH if last else isal_zlib.Z_SYNC_FLUSH
    return compressor.compress(data) + compressor.flush(end)


class GzipMember:
    """The running state of one gzip member built from blocks: CRC, length, dictionary.

    Blocks must be `take`n in input order; each `take` returns the job that compresses the
    block (to run in any thread). The member is complete after a `last` block and `trailer()`.
    A member can be resumed from a progress record (`crc`, `size`) and the 32 KiB before it.
    """

    def __init__(self, level: int, crc: int = 0, size: int = 0, previous: bytes = b"") -> None:
        self.level = level
        self.crc = crc
        self.size = size
        self._previous = previous

    def take(self, data: bytes, last: bool) -> Callable[[], bytes]:
        """Account for the next block of input; the job that deflates it."""
        self.crc = isal_zlib.crc32(data, self.crc)
        self.size += len(data)
        dictionary, self._previous = self._previous, bytes(data[-WINDOW:])
        level = self.level
        return lambda: deflate_block(level, data, dictionary, last)

    @property
    def previous(self) -> bytes:
        """The dictionary the next block is primed with (the last 32 KiB taken)."""
        return self._previous

    def absorb(self, crc: int, length: int) -> None:
        """Account for `length` bytes with CRC-32 `crc` that were deflated elsewhere, in order.

        For blocks compressed (and checksummed) by jobs that read their own input; the member
        is then only good for its `trailer()`, not for further `take`s (no dictionary kept).
        """
        self.crc = isal_zlib.crc32_combine(self.crc, crc, length)
        self.size += length
        self._previous = b""

    def trailer(self) -> bytes:
        """CRC-32 and length (mod 2^32) of everything taken."""
        return struct.pack("<II", self.crc, self.size & 0xFFFFFFFF)


def pwrite_all(fd: int, data: bytes, offset: int) -> None:
    """Write every byte of `data` at `offset` (pwrite may take only part)."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


class SpareCpu:
    """Cores the rest of the machine left idle since the last look (Linux /proc/stat).

    The helper's own CPU time counts as idle: it is what the helper may use. With a `cgroup`
    quota (a container's CPU limit, `cgroup_cpu`), the answer is also capped by what the quota
    left unused, since /proc/stat sees the whole host. Where /proc/stat does not exist (macOS)
    `cores()` answers None and the helper relies on its priority alone.
    """

    def __init__(self, cgroup: CgroupCpu | None = None) -> None:
        self._tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._cgroup = cgroup
        self._last = self._sample()

    def _sample(self) -> tuple[float, float, float | None] | None:
        """(time, machine idle + own CPU, quota left + own CPU), each cumulative in core-seconds."""
        try:
            with open("/proc/stat", "rb") as stat:
                fields = stat.readline().split()
        except OSError:
            return None
        at, own = time.monotonic(), time.process_time()
        idle = (int(fields[4]) + int(fields[5])) / self._tick  # idle + iowait, in core-seconds
        left = None
        if self._cgroup is not None:
            try:
                left = self._cgroup.limit * at - self._cgroup.usage() + own
            except (OSError, ValueError):
                self._cgroup = None  # gone or unreadable: the machine's figure alone
        return at, idle + own, left

    def cores(self) -> float | None:
        """Idle cores (plus our own use) on average since the previous call; None if unknown."""
        now = self._sample()
        last, self._last = self._last, now
        if now is None or last is None or now[0] <= last[0]:
            return None
        elapsed = now[0] - last[0]
        spare = (now[1] - last[1]) / elapsed
        if now[2] is not None and last[2] is not None:
            spare = min(spare, (now[2] - last[2]) / elapsed)
        return spare


def follow_log(
    log_fd: int,
    copy_fd: int,
    status_fd: int,
    limits_fd: int,
    level: int,
    duty: float,
    min_spare: float = 0.0,
) -> None:
    """Compress the log's whole blocks into the copy as the limits read from `limits_fd` allow.

    Limits are lines of byte counts (whole blocks of the log that are written); the copy already
    holds the gzip header. After each block the progress record goes to `status_fd` (offset 0),
    written after the block's bytes: whoever takes over after this process is killed resumes from
    the record and overwrites anything written past it. `duty` caps the share of wall time spent
    compressing: after a block that took t seconds, the next waits t * (1 / duty - 1). With
    `min_spare` > 0, blocks are compressed only while the rest of the machine leaves at least that
    share of a core idle (`SpareCpu`, looked at every `SPARE_WINDOW` while there is work).
    """
    member = GzipMember(level)
    done, written, limit = 0, len(GZIP_HEADER), 0
    pending = b""
    next_at = 0.0  # no block starts before this (the duty cycle's pause, or the next CPU look)
    spare = SpareCpu(CgroupCpu.find()) if min_spare > 0 else None
    looked = time.monotonic()  # the start of `spare`'s current window
    open_until = 0.0  # blocks may start until then: the last window had spare CPU
    waiter = select.poll()
    waiter.register(limits_fd, select.POLLIN)
    while True:
        now = time.monotonic()
        if spare is not None and done + BLOCK <= limit and now >= max(next_at, open_until):
            elapsed = now - looked
            if elapsed < SPARE_WINDOW:  # too short to measure: wait for the window's end
                next_at = looked + SPARE_WINDOW
                continue
            cores = spare.cores()
            looked = now
            if cores is None:
                spare = None  # nothing to measure with: the priority alone decides
            elif elapsed > 2 * SPARE_WINDOW or cores < min_spare:
                # A window much longer than SPARE_WINDOW spans a wait for work: it only restarts.
                next_at = now + SPARE_WINDOW
                continue
            else:
                open_until = now + SPARE_WINDOW
        if done + BLOCK <= limit and now >= next_at:
            data = os.pread(log_fd, BLOCK, done)
            if len(data) != BLOCK:
                return  # the log is not what the parent said: stop, the parent redoes the rest
            piece = member.take(data, False)()
            pwrite_all(copy_fd, piece, written)
            done += BLOCK
            written += len(piece)
            os.pwrite(status_fd, STATUS.pack(done, member.crc, written), 0)
            next_at = time.monotonic() + (time.monotonic() - now) * (1 / duty - 1)
            continue
        # Wait for a new limit: without work for as long as it takes, else until the pause ends.
        timeout = None if done + BLOCK > limit else (next_at - now) * 1000
        if waiter.poll(timeout):
            chunk = os.read(limits_fd, 4096)
            if not chunk:
                return  # the worker is gone, or done with us
            *lines, pending = (pending + chunk).split(b"\n")
            limit = max([limit, *(int(line) for line in lines if line)])


def main(argv: list[str], limits_fd: int) -> int:
    """`python -m generic_worker.deflate LOG_FD COPY_FD STATUS_FD LEVEL [MIN_SPARE]`, limits on stdin.

    MIN_SPARE (default 0: no check) is the idle share of a core the machine must leave for a
    block to be compressed (`SPARE` at idle priority).
    """
    log_fd, copy_fd, status_fd, level = (int(arg) for arg in argv[:4])
    min_spare = float(argv[4]) if len(argv) > 4 else 0.0
    try:
        follow_log(log_fd, copy_fd, status_fd, limits_fd, level, DUTY, min_spare)
    except OSError as err:  # disk full...: the worker finishes the copy from the last record
        print(f"generic-worker log compressor stopped: {err}", file=sys.stderr)
        return 1
    return 0
