"""Mounts, caches and downloads: the parts behind `features/mounts.py`.

- `spec`: the payload's mounts, read and checked (`MountSpec`, `parse_mounts`);
- `sources`: where content comes from (artifact, indexed artifact, URL, raw, base64);
- `download`: streaming HTTP downloads hashed while written, with retries;
- `downloads`: the download cache in `downloadsDir` and `file-caches.json`;
- `caches`: writable directory caches in `cachesDir` and `directory-caches.json`;
- `mounting`: the three mount kinds, with the seed's `[mounts]` lines;
- `extract`, `compression`, `files`, `paths`: safe extraction, decompression, copies and paths;
- `diskspace`, `eviction`: free space, write budgets (decompression bombs) and LRU eviction;
- `purge`: purge-cache requests; `statefile`, `store`: crash-safe state files.
"""

from generic_worker.mounts.caches import DirectoryCaches
from generic_worker.mounts.downloads import DownloadCache
from generic_worker.mounts.errors import MountError
from generic_worker.mounts.eviction import make_room
from generic_worker.mounts.logs import WorkerLog
from generic_worker.mounts.mounting import MountContext, Mounted, new_mount
from generic_worker.mounts.purge import PurgeRequests
from generic_worker.mounts.sources import FetchContext
from generic_worker.mounts.spec import MalformedMounts, MountSpec, cache_names, parse_mounts

__all__ = [
    "DirectoryCaches",
    "DownloadCache",
    "FetchContext",
    "MalformedMounts",
    "MountContext",
    "MountError",
    "MountSpec",
    "Mounted",
    "PurgeRequests",
    "WorkerLog",
    "cache_names",
    "make_room",
    "new_mount",
    "parse_mounts",
]
