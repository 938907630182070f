"""The demo's d2g example: shown only where Docker runs (the rest of the demo never needs it).

A busybox image is built locally (Debian's busybox-static in a one-binary rootfs, `docker
import`, `docker save`: nothing is pulled from a registry), published by a native task, and run
by `examples/docker/d2g.yml` as a docker-worker `task-image`.
"""

from __future__ import annotations

import asyncio
import grp
import io
import os
import sys
import tarfile
from pathlib import Path
from typing import Any

import yaml

from generic_worker.d2g import docker

IMAGE = "gw-demo/busybox:1"
BUSYBOX = Path("/bin/busybox")
APPLETS = ("sh", "echo", "cat", "ls", "mkdir", "true")


async def docker_unavailable_reason() -> str | None:
    """Why the d2g example cannot run here, or None when it can."""
    if not await asyncio.to_thread(BUSYBOX.exists):
        return "no /bin/busybox (apt-get install busybox-static)"
    if not await docker.available():
        return "no Docker daemon answers (see docs/d2g.md)"
    try:
        gid = grp.getgrnam("docker").gr_gid
    except KeyError:
        return "no group docker"
    if gid not in os.getgroups():
        if os.geteuid() != 0:
            return "the demo's user is not in group docker (upstream's rule for d2g tasks)"
        # As root, stand for an operator who put the worker's user in group docker.
        os.setgroups([*os.getgroups(), gid])
    return None


def _rootfs(path: Path) -> None:
    with tarfile.open(path, "w") as tar:
        for name in ("bin", "etc", "out", "tmp"):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        tar.add(str(BUSYBOX), "bin/busybox")
        for applet in APPLETS:
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
        motd = b"a busybox image built by make demo\n"
        info = tarfile.TarInfo("etc/motd")
        info.size = len(motd)
        tar.addfile(info, io.BytesIO(motd))


async def build_image(data: Path) -> Path:
    """Build the image and `docker save` it into `data`; return the tarball."""
    rootfs, tarball = data / "rootfs.tar", data / "image.tar"
    await asyncio.to_thread(_rootfs, rootfs)
    await docker.docker(["import", str(rootfs), IMAGE])
    await docker.docker(["save", "-o", str(tarball), IMAGE])
    return tarball


def publisher_task(tarball: Path) -> dict[str, Any]:
    """A native task publishing the image tarball as `public/image.tar`."""
    copy = f"import shutil; shutil.copy({str(tarball)!r}, 'image.tar')"
    return {
        "payload": {
            "command": [[sys.executable, "-c", copy]],
            "maxRunTime": 60,
            "artifacts": [{"type": "file", "path": "image.tar", "name": "public/image.tar"}],
        },
        "metadata": {"description": "publishes a locally built docker image for the d2g example"},
    }


def d2g_task(examples: Path, image_task: str) -> dict[str, Any]:
    """`examples/docker/d2g.yml` with the publisher's task id."""
    task: dict[str, Any] = yaml.safe_load((examples / "docker" / "d2g.yml").read_text())
    task["payload"]["image"]["taskId"] = image_task
    task["dependencies"] = [image_task]
    return task
