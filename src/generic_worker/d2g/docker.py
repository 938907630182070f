"""The docker CLI, as d2g uses it: load, pull, inspect, cp, rm, networks.

Every call goes through the process package's `run_capture` (the only code that starts
processes), with a timeout so a hung daemon cannot hang the worker. Failures raise `DockerError`
carrying docker's own output.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from generic_worker.process import TaskUser, run_capture

DOCKER = "docker"
SHORT = 60.0  # inspect, rm, network calls
LONG = 3600.0  # load and pull of big images


CLIENT_ENV = frozenset(
    {
        "PATH",
        "HOME",
        "XDG_RUNTIME_DIR",
        "DOCKER_HOST",
        "DOCKER_CONFIG",
        "DOCKER_CONTEXT",
        "DOCKER_CERT_PATH",
        "DOCKER_TLS_VERIFY",
    }
)
"""The worker's environment variables the docker CLI is given (where the daemon is, how to reach it)."""


class DockerError(Exception):
    """A docker command failed; the message has the command and docker's output."""


async def docker(
    args: Sequence[str],
    *,
    timeout: float = SHORT,  # noqa: ASYNC109 - also kills the CLI
    cwd: Path | None = None,
    user: TaskUser | None = None,
) -> str:
    """Run `docker <args>` (as `user`, if given); return its output, or raise `DockerError`."""
    env = {k: v for k, v in os.environ.items() if k in CLIENT_ENV}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
    if user is not None:
        # The task user's own home, so the CLI never looks into the worker's (`~/.docker`).
        env["HOME"] = str(user.home)
        env.pop("DOCKER_CONFIG", None)
    captured = await run_capture([DOCKER, *args], env=env, cwd=cwd, timeout=timeout, user=user)
    if captured.result.start_error is not None:
        raise DockerError(f"could not run docker: {captured.result.start_error}")
    if captured.timed_out:
        raise DockerError(f"`docker {' '.join(args)}` did not finish within {timeout:.0f}s")
    text = captured.output.decode("utf-8", "replace")
    if not captured.succeeded:
        raise DockerError(f"`docker {' '.join(args)}` failed ({captured.describe()}):\n{text.strip()}")
    return text


async def available() -> bool:
    """True if the docker CLI runs and reaches a daemon."""
    try:
        await docker(["version", "--format", "{{.Server.Version}}"], timeout=20.0)
    except DockerError:
        return False
    return True


async def load(image_file: Path, user: TaskUser | None = None) -> str:
    """`docker load` a (possibly gzip/bzip2/xz/zstd compressed) tarball; return the image's name or id.

    With `user`, the CLI opens the file with that user's rights (a file in its task directory).
    """
    output = await docker(["load", "--quiet", "--input", str(image_file)], timeout=LONG, user=user)
    for line in output.splitlines():
        for prefix in ("Loaded image: ", "Loaded image ID: "):
            if line.startswith(prefix):
                return line.removeprefix(prefix).strip()
    raise DockerError(f"could not determine docker image name from docker load output:\n{output}")


async def pull(name: str) -> None:
    """`docker pull` a registry image."""
    await docker(["pull", "--quiet", name], timeout=LONG)


async def image_id(reference: str) -> str | None:
    """The full id (`sha256:...`) of a local image, or None if there is no such image."""
    try:
        output = await docker(["image", "inspect", "--format", "{{.Id}}", reference])
    except DockerError:
        return None
    return output.strip().splitlines()[0] if output.strip() else None


async def copy_out(container: str, source: str, dest: Path, user: TaskUser | None = None) -> None:
    """`docker cp <container>:<source> <dest>`, as `user` if given.

    The CLI unpacks the files itself, so run as the task user (as upstream) they are the task
    user's and every path under its task directory is checked with its rights, not root's.
    """
    await docker(["cp", f"{container}:{source}", str(dest)], timeout=LONG, user=user)


async def remove_container(name: str) -> None:
    """`docker rm --force`: kills the container if it still runs; no error if it does not exist."""
    try:
        await docker(["rm", "--force", name])
    except DockerError as e:
        if "No such container" not in str(e):
            raise


async def remove_image(image: str) -> bool:
    """`docker rmi` (never forced: an image a container uses stays); True if it was removed."""
    try:
        await docker(["rmi", image])
    except DockerError:
        return False
    return True


async def names(kind: str, prefix: str) -> list[str]:
    """Containers (`kind` "container") or networks (`kind` "network") whose name starts with `prefix`."""
    if kind == "container":
        args = ["ps", "-a", "--filter", f"name={prefix}", "--format", "{{.Names}}"]
    else:
        args = ["network", "ls", "--filter", f"name={prefix}", "--format", "{{.Name}}"]
    output = await docker(args)
    return [n for n in output.split() if n.startswith(prefix)]


async def create_network(name: str) -> str:
    """Create a bridge network; return its IPv4 gateway."""
    await docker(["network", "create", name])
    fmt = "{{range .IPAM.Config}}{{.Gateway}} {{end}}"
    output = await docker(["network", "inspect", name, "--format", fmt])
    for gateway in output.split():
        if gateway.count(".") == 3:
            return gateway
    raise DockerError(f"no IPv4 gateway found for docker network {name} in {output!r}")


async def remove_network(name: str) -> None:
    """Remove a network (no error if it is already gone)."""
    try:
        await docker(["network", "rm", name])
    except DockerError as e:
        if "not found" not in str(e) and "No such network" not in str(e):
            raise
