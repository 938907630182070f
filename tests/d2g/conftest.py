"""Docker for the d2g tests: a daemon (started for the session when none runs) and a local image.

The base image is built here from Debian's `busybox-static` (a one-binary rootfs, `docker
import`), never pulled from a registry; `image_tar` is its `docker save` tarball, as a task
would publish it. The worker's user must be in group `docker` (upstream's rule for the insecure
engine): the test process adds docker's group to its own groups for this package's tests.
"""

from __future__ import annotations

import grp
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).parent
DOCKERD = HERE.parent / "docker" / "dockerd.sh"
IMAGE = "gw-d2g-test/busybox:1"
BUSYBOX = Path("/bin/busybox")
APPLETS = ("sh", "echo", "cat", "ls", "sleep", "mkdir", "wget", "env", "true", "false", "id", "test")


def docker_ok() -> bool:
    return (
        shutil.which("docker") is not None
        and subprocess.run(["docker", "info"], capture_output=True).returncode == 0
    )


def _static_busybox() -> bool:
    if not BUSYBOX.exists():
        return False
    with open(BUSYBOX, "rb") as f:
        head = f.read(4096)
    return b"ld-linux" not in head and b"/lib64/" not in head


@pytest.fixture(scope="session")
def dockerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A running Docker daemon, or skip with the reason."""
    if shutil.which("docker") is None:
        pytest.skip("docker CLI not installed (make system-deps installs docker.io)")
    started = None
    if not docker_ok():
        if os.geteuid() != 0:
            pytest.skip("no Docker daemon running and not root to start one")
        run = subprocess.run(
            [str(DOCKERD), "start", str(tmp_path_factory.mktemp("dockerd"))], capture_output=True, text=True
        )
        if run.returncode != 0:
            pytest.skip(f"could not start dockerd: {run.stderr.strip()[-500:]}")
        if run.stdout.startswith("started"):
            started = run.stdout.split()[1]
    yield
    if started:
        subprocess.run([str(DOCKERD), "stop", started], check=False)


@pytest.fixture(scope="session")
def image_tar(dockerd: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[bytes]:
    """`docker save` of a busybox image built locally (removed again at the end of the session)."""
    if not _static_busybox():
        pytest.skip("needs a static /bin/busybox (apt-get install busybox-static)")
    root = tmp_path_factory.mktemp("rootfs")
    for name in ("bin", "tmp", "etc", "out", "vol"):
        (root / name).mkdir()
    shutil.copy(BUSYBOX, root / "bin" / "busybox")
    for applet in APPLETS:
        (root / "bin" / applet).symlink_to("busybox")
    rootfs = subprocess.run(["tar", "-C", str(root), "-c", "."], check=True, capture_output=True).stdout
    subprocess.run(["docker", "import", "-", IMAGE], input=rootfs, check=True, capture_output=True)
    saved = tmp_path_factory.mktemp("image") / "image.tar"
    subprocess.run(["docker", "save", "-o", str(saved), IMAGE], check=True)
    yield saved.read_bytes()
    subprocess.run(["docker", "rmi", IMAGE], check=False, capture_output=True)


@pytest.fixture(scope="package", autouse=True)
def in_docker_group() -> Iterator[None]:
    """The worker's user in group docker, as upstream requires of the insecure engine."""
    try:
        gid = grp.getgrnam("docker").gr_gid
    except KeyError:
        yield
        return
    before = os.getgroups()
    if os.geteuid() == 0 and gid not in before:
        os.setgroups([*before, gid])
    yield
    if os.geteuid() == 0:
        os.setgroups(before)


def leftover_containers() -> list[str]:
    out = subprocess.run(
        ["docker", "ps", "-a", "--filter", "name=taskcontainer_", "--format", "{{.Names}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.split()
