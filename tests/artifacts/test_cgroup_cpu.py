"""The compressor's spare-CPU check sees a container's CPU quota (deflate/cgroup_cpu.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from generic_worker.deflate.cgroup_cpu import CgroupCpu

REAL = Path("/sys/fs/cgroup")


def tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def find(tmp_path: Path, cgroup: str, files: dict[str, str]) -> CgroupCpu | None:
    tree(tmp_path / "proc", {"self/cgroup": cgroup})
    tree(tmp_path / "sys", files)
    return CgroupCpu.find(tmp_path / "proc", tmp_path / "sys")


QUOTAS = {
    "v2: the tightest quota of the cgroup and its ancestors": (
        "0::/pod/ctr\n",
        {
            "cgroup.controllers": "cpuset cpu io memory\n",
            "pod/cpu.max": "150000 100000\n",
            "pod/cpu.stat": "usage_usec 2500000\nuser_usec 2000000\n",
            "pod/ctr/cpu.max": "max 100000\n",
            "pod/ctr/cpu.stat": "usage_usec 1000000\n",
        },
        1.5,
        2.5,
    ),
    "v1: usage from a separate cpuacct hierarchy": (
        "5:cpuacct:/docker/abc\n4:cpu:/docker/abc\n0::/\n",
        {
            "cgroup.controllers": "",
            "cpu/docker/abc/cpu.cfs_quota_us": "50000\n",
            "cpu/docker/abc/cpu.cfs_period_us": "100000\n",
            "cpu/cpu.cfs_quota_us": "-1\n",
            "cpu/cpu.cfs_period_us": "100000\n",
            "cpuacct/docker/abc/cpuacct.usage": "3000000000\n",
        },
        0.5,
        3.0,
    ),
    # The process's path is not under the mount (the container sees its own cgroup as the root).
    "v1: combined controllers seen from inside a cgroup namespace": (
        "3:cpu,cpuacct:/kubepods/pod1/ctr\n",
        {
            "cpu,cpuacct/cpu.cfs_quota_us": "200000\n",
            "cpu,cpuacct/cpu.cfs_period_us": "100000\n",
            "cpu,cpuacct/cpuacct.usage": "7000000000\n",
        },
        2.0,
        7.0,
    ),
}


@pytest.mark.parametrize(("cgroup", "files", "limit", "usage"), QUOTAS.values(), ids=QUOTAS.keys())
def test_the_quota_and_usage_are_found(
    tmp_path: Path, cgroup: str, files: dict[str, str], limit: float, usage: float
):
    found = find(tmp_path, cgroup, files)
    assert found is not None and found.limit == limit and found.usage() == usage


@pytest.mark.parametrize(
    ("cgroup", "files"),
    [
        (
            "0::/a\n",
            {
                "cgroup.controllers": "cpu memory\n",
                "a/cpu.max": "max 100000\n",
                "a/cpu.stat": "usage_usec 1\n",
            },
        ),
        ("4:cpu:/a\n", {"cpu/a/cpu.cfs_quota_us": "-1\n", "cpu/a/cpu.cfs_period_us": "100000\n"}),
        ("0::/a\n", {"cgroup.controllers": "memory\n"}),  # hybrid: no cpu in v2, no v1 cpu line
        (
            "4:cpu:/a\n",
            {"cpu/a/cpu.cfs_quota_us": "50000\n", "cpu/a/cpu.cfs_period_us": "100000\n"},
        ),  # no usage
        ("garbage\n", {}),
    ],
)
def test_no_quota_or_nothing_readable_means_none(tmp_path: Path, cgroup: str, files: dict[str, str]):
    assert find(tmp_path, cgroup, files) is None


def test_no_cgroup_file_system_at_all_means_none(tmp_path: Path):
    assert CgroupCpu.find(tmp_path / "no-proc", tmp_path / "no-sys") is None


@contextmanager
def limited_cgroup(quota_us: int, period_us: int) -> Iterator[list[Path]]:
    """A real cgroup (v2, else v1 cpu + cpuacct) with a CPU quota; its directories to join."""
    name = f"gw-test-{uuid.uuid4().hex[:8]}"
    made: list[Path] = []
    try:
        controllers = REAL / "cgroup.controllers"
        if controllers.exists() and "cpu" in (REAL / "cgroup.subtree_control").read_text().split():
            made.append(REAL / name)
            made[0].mkdir()
            (made[0] / "cpu.max").write_text(f"{quota_us} {period_us}")
        elif (REAL / "cpu" / "cpu.cfs_quota_us").exists() and (REAL / "cpuacct").is_dir():
            for mount in (REAL / "cpu", REAL / "cpuacct"):
                made.append(mount / name)
                made[-1].mkdir()
            (made[0] / "cpu.cfs_period_us").write_text(str(period_us))
            (made[0] / "cpu.cfs_quota_us").write_text(str(quota_us))
        else:
            pytest.skip("no writable cgroup CPU controller here")
    except PermissionError:
        pytest.skip("cgroups need root")
    except OSError as err:
        pytest.skip(f"cannot make a cgroup here: {err}")
    try:
        yield made
    finally:
        for directory in reversed(made):
            directory.rmdir()


CHILD = """
import json, sys, time
from generic_worker.deflate import SpareCpu
from generic_worker.deflate.cgroup_cpu import CgroupCpu
sys.stdin.readline()  # moved into the cgroup by now
cgroup = CgroupCpu.find()
capped, machine = SpareCpu(cgroup), SpareCpu()
deadline = time.monotonic() + 0.3
while time.monotonic() < deadline:  # busy: the quota is the limit, not the machine
    pass
print(json.dumps([cgroup.limit if cgroup else None, capped.cores(), machine.cores()]))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="making cgroups needs root")
def test_a_real_quota_caps_what_the_compressor_counts_as_spare():
    with limited_cgroup(25000, 100000) as cgroups:  # a quarter of a core
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        try:
            for directory in cgroups:
                (directory / "cgroup.procs").write_text(str(child.pid))
            out, _ = child.communicate("go\n", timeout=60)
        finally:
            child.kill()
            child.wait()
    limit, capped, machine = json.loads(out)
    assert limit == 0.25
    # The child spins, so the quota is used up: almost nothing is left, whatever the host has
    # idle (its own use counts as spare: it is what the compressor itself may take).
    assert capped is not None and capped <= 0.25 + 0.1
    assert machine is not None and capped <= machine
