"""What this host lets Docker do: `--privileged` needs every capability in the bounding set.

Some VMs (this project's CI among them) run the worker with a capability bounding set that lacks
e.g. CAP_SYS_RESOURCE; there `docker run --privileged` fails ("unable to apply caps"). The d2g
feature refuses such tasks up front with a message saying why, instead of docker's.
"""

from __future__ import annotations

from pathlib import Path

CAP_NAMES = {21: "CAP_SYS_ADMIN", 24: "CAP_SYS_RESOURCE", 25: "CAP_SYS_TIME", 38: "CAP_PERFMON"}


def missing_capabilities(status: str | None = None, last_cap: int | None = None) -> list[str]:
    """Capabilities (names, or `cap <n>`) missing from this process's bounding set, if readable."""
    try:
        if status is None:
            status = Path("/proc/self/status").read_text()
        if last_cap is None:
            last_cap = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    except (OSError, ValueError):
        return []
    bounding = next((line.split()[1] for line in status.splitlines() if line.startswith("CapBnd:")), None)
    if bounding is None:
        return []
    bits = int(bounding, 16)
    return [CAP_NAMES.get(n, f"cap {n}") for n in range(last_cap + 1) if not bits >> n & 1]
