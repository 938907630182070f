"""Disk-space garbage collection: evict least recently used caches and downloads until enough is free.

Runs before every claim (seed-gw.md §4.6, with its quirk 5 fixed: eviction works). Candidates
are every writable directory cache and every download that no running task is using, evicted
strictly in least-recently-used order across both kinds (upstream's rating is `LastUsed`).
An entry in use is never evicted. If one eviction fails the next is tried (upstream v55.2).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from generic_worker.mounts.diskspace import MIB, free_bytes
from generic_worker.mounts.logs import MountLog


@dataclass(frozen=True)
class Evictable:
    """A cache or download that may be evicted now."""

    last_used: float
    description: str
    evict: Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Outcome:
    """What a collection achieved."""

    free: int
    required: int
    evicted: int
    in_use: int
    """Entries that could not be considered because running tasks use them."""

    @property
    def enough(self) -> bool:
        """True if at least `required` bytes are free now."""
        return self.free >= self.required

    def shortfall_message(self) -> str:
        """The seed's message when not enough could be freed (plus what is still in use)."""
        text = (
            f"Not able to free up enough disk space - require {self.required} bytes, "
            f"but only have {self.free} bytes"
        )
        if self.in_use:
            return f"{text} - {self.in_use} cache(s)/download(s) are in use by running tasks"
        return f"{text} - and nothing left to delete"


async def make_room(
    where: Path,
    required_megabytes: int,
    candidates: Callable[[], Iterable[Evictable]],
    in_use: Callable[[], int],
    log: MountLog,
) -> Outcome:
    """Evict in LRU order until `requiredDiskSpaceMegabytes` are free at `where` (or nothing is left)."""
    required = required_megabytes * MIB
    free = await asyncio.to_thread(free_bytes, where)
    evicted = 0
    tried: set[str] = set()
    while free < required:
        # Asked again after each eviction: tasks may have released or taken entries meanwhile.
        remaining = sorted((c for c in candidates() if c.description not in tried), key=lambda c: c.last_used)
        if not remaining:
            break
        victim = remaining[0]
        tried.add(victim.description)
        log.info(
            f"[mounts] Evicting {victim.description} (least recently used) to free disk space: "
            f"{free // MIB} MiB free, {required // MIB} MiB required"
        )
        await victim.evict()
        evicted += 1
        free = await asyncio.to_thread(free_bytes, where)
    return Outcome(free=free, required=required, evicted=evicted, in_use=in_use())
