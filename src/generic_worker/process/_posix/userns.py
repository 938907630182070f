"""A user namespace with given id maps, as a file descriptor (for idmapped mounts).

The kernel only makes a user namespace for a process (`unshare(CLONE_NEWUSER)` refuses a
multithreaded caller such as the worker), so a short-lived child unshares before it execs
`sleep`; the worker, still root outside it, writes the child's uid and gid maps, opens
`/proc/<pid>/ns/user` and kills the child. The descriptor keeps the namespace alive.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess

from . import registry

_CLONE_NEWUSER = 0x10000000
_LIBC = ctypes.CDLL(None, use_errno=True)
_UNSHARE = getattr(_LIBC, "unshare", None)  # Linux only
_OWNER = object()


def _unshare_user() -> None:
    """In the child before exec: enter a new user namespace (one system call, nothing else)."""
    if _UNSHARE is None or _UNSHARE(_CLONE_NEWUSER) != 0:
        os._exit(127)


def user_namespace_fd(uid_map: str, gid_map: str) -> int:
    """Return an O_CLOEXEC descriptor of a new user namespace with these `uid_map`/`gid_map` lines.

    Blocking (a fork, two writes and a wait): call it through `asyncio.to_thread`. Raises OSError
    when the kernel refuses (no user namespaces, or no privilege to write the maps).
    """
    sleep = shutil.which("sleep") or "/bin/sleep"
    with registry.LOCK:
        child = subprocess.Popen(
            [sleep, "60"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            close_fds=True,
            preexec_fn=_unshare_user,
        )
        registry.register(child.pid, _OWNER)
    try:
        with open(f"/proc/{child.pid}/uid_map", "w", encoding="ascii") as f:
            f.write(uid_map)
        with open(f"/proc/{child.pid}/gid_map", "w", encoding="ascii") as f:
            f.write(gid_map)
        return os.open(f"/proc/{child.pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        child.kill()
        child.wait()
        with registry.LOCK:
            registry.release_waited(child.pid)
        registry.forget_sessions(_OWNER)
