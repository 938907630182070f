"""Starting one command: its output pipe, the fork/exec, and a clear reason when it cannot start.

The command gets its own session (so its own process group: one `killpg` reaches the whole
foreground tree), stdin from /dev/null (or a pipe fed with `stdin` bytes), and stdout and stderr
both on the write end of ONE pipe (made by `pump`), so the two streams interleave exactly as
written. Nothing else is inherited: `close_fds=True`, and every fd this package opens is
close-on-exec.

Linux: each command's process leader gets `PR_SET_PDEATHSIG(SIGKILL)` (set in the child between
fork and exec, after the switch to the task user, which would clear it), so when the worker dies,
even by SIGKILL, its commands die with it; what they started is found by the next worker's
start-up sweep (`leftovers`). The signal fires when the *thread* that forked exits: spawns run on
the event loop's thread, which lives as long as the worker.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Any

from ..model import Command
from . import registry
from .subreaper import die_with_parent

_log = logging.getLogger(__name__)


class StartError(Exception):
    """The command could not be started; the message says why, in words for the task log."""


@dataclass(frozen=True)
class Spawned:
    """A started command: the process and when it started."""

    popen: subprocess.Popen[bytes]
    started_at: float

    @property
    def pid(self) -> int:
        """The command's pid, which is also its session and process group id."""
        return self.popen.pid


def spawn(cmd: Command, owner: object, *, output_fd: int, stdin: bytes | None = None) -> Spawned:
    """Start `cmd` in a new session writing to `output_fd`; raise `StartError` if it cannot start.

    `output_fd` (the write end of the command's pipe) becomes its stdout and stderr; the caller
    keeps it and must close its own copy afterwards, or the pipe never reaches EOF.

    Runs on the event loop: the spawn is about 0.2 ms with vfork, and 1.5-6 ms when switching
    user (Python then forks, and the cost grows with the worker's RSS). Keeping it synchronous
    makes "spawn, then register" atomic with respect to abort and to the orphan reaper.

    Caveat with a `TaskUser`: Python changes directory before it switches user (Go does it after),
    so a `cwd` the task user may not enter does not stop the start. The engine gives each task
    user its own directory, so this only matters for a misconfigured one.
    """
    if not cmd.argv:
        raise StartError("the command is empty")
    stdin_r = stdin_w = -1
    try:
        if stdin is not None:
            stdin_r, stdin_w = os.pipe()
        with registry.LOCK:
            started_at = time.monotonic()
            popen = subprocess.Popen(
                list(cmd.argv),
                cwd=str(cmd.cwd),
                env=dict(cmd.env),
                stdin=stdin_r if stdin is not None else subprocess.DEVNULL,
                stdout=output_fd,
                stderr=output_fd,
                start_new_session=True,
                close_fds=True,
                preexec_fn=die_with_parent,
                **_user_kwargs(cmd),
            )
            registry.register(popen.pid, owner)
    except (OSError, ValueError) as err:
        if stdin_w >= 0:
            os.close(stdin_w)
        raise StartError(start_error_message(err, cmd)) from err
    finally:
        if stdin_r >= 0:
            os.close(stdin_r)  # the child has its own copy
    if stdin is not None:
        threading.Thread(target=_feed, args=(stdin_w, stdin), name=f"stdin-{popen.pid}", daemon=True).start()
    return Spawned(popen=popen, started_at=started_at)


def _user_kwargs(cmd: Command) -> dict[str, Any]:
    if cmd.user is None:
        return {}
    return {"user": cmd.user.uid, "group": cmd.user.gid, "extra_groups": list(cmd.user.groups)}


def _feed(fd: int, data: bytes) -> None:
    """Write `data` to the child's stdin in a thread (it may block until the child reads)."""
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except OSError as err:  # EPIPE: the child exited or closed stdin without reading it all
        _log.debug("stdin of a command not fully written: %s", err)
    finally:
        os.close(fd)


def start_error_message(err: OSError | ValueError, cmd: Command) -> str:
    """Say in plain words why `cmd` could not start (the text goes into the task log).

    Only the reason, like Go's `exec: "x": executable file not found in $PATH`: the caller
    supplies its own "command 2 could not start" context.
    """
    prog = cmd.argv[0]
    if isinstance(err, ValueError):  # e.g. an embedded NUL byte in an argument or variable
        return f"invalid command: {err}"
    cwd = str(cmd.cwd)
    # Python reports a failure before exec (chdir, or switching user) with the cwd as filename.
    if err.filename == cwd and err.filename != prog:
        return _cwd_reason(err.errno, cwd, cmd)
    return f'"{prog}": {_exec_reason(err, cmd)}'


def _cwd_reason(code: int | None, cwd: str, cmd: Command) -> str:
    if code == errno.EPERM and cmd.user is not None:
        return f"could not switch to user {cmd.user.name} (uid {cmd.user.uid}): permission denied"
    if code == errno.ENOENT:
        return f"working directory {cwd} does not exist"
    if code == errno.ENOTDIR:
        return f"working directory {cwd} is not a directory"
    if code == errno.EACCES:
        return f"working directory {cwd}: permission denied"
    return f"working directory {cwd}: {os.strerror(code or 0)}"


def _exec_reason(err: OSError, cmd: Command) -> str:
    prog = cmd.argv[0]
    bare = "/" not in prog
    path = cmd.env.get("PATH", os.defpath)
    if err.errno == errno.ENOENT:
        found = shutil.which(prog, path=path) if bare else os.path.join(cmd.cwd, prog)
        if found is not None and os.path.exists(found):
            # execve says ENOENT for a missing #! interpreter (or ELF loader) too.
            return f"{found} exists but its interpreter (#! line) was not found"
        return f"executable not found in PATH ({path})" if bare else "no such file"
    if err.errno == errno.EACCES:
        return "permission denied (is it executable, and are its directories searchable?)"
    if err.errno == errno.ENOEXEC:
        return "exec format error (neither a binary for this machine nor a #! script)"
    if err.errno == errno.EPERM and cmd.user is not None:
        return f"could not switch to user {cmd.user.name} (uid {cmd.user.uid}): permission denied"
    return os.strerror(err.errno or 0) if err.errno else str(err)
