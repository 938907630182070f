"""The CPU quota of this process's cgroup, for the log compressor's spare-CPU check.

In a container with a CPU limit (a Kubernetes pod, `docker run --cpus`), /proc/stat still shows
the whole host: an idle 64-core host looks spare to the compressor, but everything the container
runs, idle priority or not, is charged to one quota, so compressing beside a busy task would
throttle the task. `CgroupCpu.find()` reads the quota of the cgroup this process is in (the
tightest of it and its ancestors) and that cgroup's CPU usage, from cgroup v2 (`cpu.max`,
`cpu.stat`) or the v1 `cpu`/`cpuacct` controllers (`cpu.cfs_quota_us`, `cpuacct.usage`). No quota
(the usual VM or bare-metal worker), no cgroup file system, or anything unreadable: None, and the
machine-wide figure alone decides.

Nothing heavy is imported: the compressor helper imports this at start.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")


class CgroupCpu:
    """A cgroup's CPU limit in cores and a reader of its cumulative CPU time (seconds)."""

    def __init__(self, limit: float, usage: Callable[[], float]) -> None:
        self.limit = limit
        self._usage = usage

    def usage(self) -> float:
        """CPU seconds used by every process of the limiting cgroup so far."""
        return self._usage()

    @classmethod
    def find(cls, proc: Path = Path("/proc"), root: Path = ROOT) -> CgroupCpu | None:
        """The quota that applies to this process, or None (no quota, or nothing readable)."""
        try:
            lines = (proc / "self" / "cgroup").read_text().splitlines()
        except OSError:
            return None
        for line in lines:
            hierarchy, _, rest = line.partition(":")
            controllers, _, path = rest.partition(":")
            try:
                if hierarchy == "0" and not controllers:
                    found = _v2(root, path)
                elif "cpu" in controllers.split(","):
                    found = _v1(root, controllers, path)
                else:
                    continue
            except (OSError, ValueError):
                continue
            if found is not None:
                return found
        return None


def _own_directory(mount: Path, path: str) -> Path:
    """The cgroup's directory under `mount`: by its path, else the mount itself.

    A container's cgroup namespace often shows its own cgroup as the root, or a path that its
    mount does not have.
    """
    own = mount / path.lstrip("/")
    return own if own.is_dir() else mount


def _ancestry(start: Path, mount: Path) -> list[Path]:
    """`start` and its parents up to and including `mount`."""
    chain = [start]
    while chain[-1] != mount and mount in chain[-1].parents:
        chain.append(chain[-1].parent)
    return chain


def _tightest(chain: list[Path], quota: Callable[[Path], float | None]) -> tuple[float, Path] | None:
    """The smallest quota (in cores) along `chain`, and where it is set; None without any."""
    found = [(cores, directory) for directory in chain if (cores := quota(directory)) is not None]
    return min(found, key=lambda pair: pair[0]) if found else None


def _v2(root: Path, path: str) -> CgroupCpu | None:
    if "cpu" not in (root / "cgroup.controllers").read_text().split():
        return None  # hybrid system: cpu is a v1 controller, or not enabled here

    def quota(directory: Path) -> float | None:
        limit_file = directory / "cpu.max"
        if not limit_file.exists():
            return None
        cores, _, period = limit_file.read_text().partition(" ")
        return None if cores == "max" else int(cores) / int(period)

    best = _tightest(_ancestry(_own_directory(root, path), root), quota)
    if best is None:
        return None
    stat = best[1] / "cpu.stat"

    def usage() -> float:
        for row in stat.read_text().splitlines():
            name, _, value = row.partition(" ")
            if name == "usage_usec":
                return int(value) / 1e6
        raise OSError(f"no usage_usec in {stat}")

    usage()  # readable now, or not at all
    return CgroupCpu(best[0], usage)


def _v1(root: Path, controllers: str, path: str) -> CgroupCpu | None:
    names = controllers.split(",")
    mounts = [root / controllers, root / ",".join(reversed(names)), root / "cpu"]
    mount = next((m for m in mounts if (m / "cpu.cfs_quota_us").exists()), None)
    if mount is None:
        return None

    def quota(directory: Path) -> float | None:
        quota_file = directory / "cpu.cfs_quota_us"
        if not quota_file.exists():
            return None
        microseconds = int(quota_file.read_text())  # -1: no quota
        return microseconds / int((directory / "cpu.cfs_period_us").read_text()) if microseconds > 0 else None

    best = _tightest(_ancestry(_own_directory(mount, path), mount), quota)
    if best is None:
        return None
    # The usage lives in the cpuacct controller: the same directory when it is mounted with
    # cpu, else the same relative path under its own mount.
    relative = best[1].relative_to(mount)
    accounting = [best[1], root / "cpuacct" / relative, root / "cpu,cpuacct" / relative]
    usage_file = next((d / "cpuacct.usage" for d in accounting if (d / "cpuacct.usage").exists()), None)
    if usage_file is None:
        return None

    def usage() -> float:
        return int(usage_file.read_text()) / 1e9

    usage()
    return CgroupCpu(best[0], usage)
