"""`install service`: a systemd unit on Linux that runs the worker with the given config.

Unlike the seed (which ignored `--config`), the unit runs `generic-worker run --config <abs>`.
`ExecStart` names a real executable with separate arguments: the installed `generic-worker`
script, or else the Python interpreter with `-m generic_worker`.

The restart policy follows the exit codes: only a crash (an uncaught exception, a signal such
as an OOM kill) or an internal error (69) restarts the worker. A config or install problem
(64-67, 73, 74) would only fail again, and an intended stop (0, 68 idle, 70 new deployment or
"terminate", 71 SIGINT, 72 shutdown) must not be undone, so those never restart; 68, 70, 71 and
72 count as a clean stop. SIGTERM (what systemd sends on stop) makes the worker abort running
tasks as `exception/worker-shutdown` and upload their logs, so `TimeoutStopSec` leaves time for
that.

`GENERIC_WORKER_SYSTEMD_UNIT_DIR` writes the unit into that directory and does not call
`systemctl` (for packagers' build roots and for tests). Without it the unit goes to
/etc/systemd/system and is enabled, which needs systemd as PID 1.
"""

from __future__ import annotations

import asyncio
import os
import platform
import re
import shlex
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from generic_worker.exitcodes import ExitCode
from generic_worker.process import run_capture

UNIT_DIR_ENV = "GENERIC_WORKER_SYSTEMD_UNIT_DIR"
SYSTEM_UNIT_DIR = Path("/etc/systemd/system")
SYSTEMD_RUNNING = Path("/run/systemd/system")
"""Exists exactly when systemd is PID 1 (what `sd_booted()` checks)."""

RESTART_ON = (ExitCode.INTERNAL_ERROR,)
"""Exit codes after which systemd restarts the worker (crashes by signal restart too)."""
CLEAN_STOPS = (
    ExitCode.IDLE_TIMEOUT,
    ExitCode.NONCURRENT_DEPLOYMENT_ID,
    ExitCode.WORKER_STOPPED,
    ExitCode.WORKER_SHUTDOWN,
)
"""Intended stops: shown by systemd as a clean exit, never restarted."""
NEVER_RESTART = tuple(
    code for code in ExitCode if code >= ExitCode.CANT_LOAD_CONFIG and code not in RESTART_ON
)
"""64-68 and 70-74: restarting would fail again or undo an intended stop."""


def unit_name(service_name: str) -> str:
    """The systemd unit name for a service name: lower case, other characters collapsed to `-`."""
    name = re.sub(r"[^a-z0-9._-]+", "-", service_name.lower()).strip("-")
    return (name or "generic-worker") + ".service"


def systemd_word(word: str) -> str:
    """One argument of `ExecStart=`: double-quoted when needed, `%` specifiers and `$` escaped."""
    word = word.replace("%", "%%").replace("$", "$$")
    if word and not re.search(r"[\s\"'\\;]", word):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def unit_text(service_name: str, config_file: Path, command: Sequence[str]) -> str:
    """The unit file's contents; `command` is the executable and its leading arguments."""
    config = config_file.resolve()
    argv = [*command, "run", "--config", str(config)]
    exec_start = " ".join(systemd_word(a) for a in argv)
    description = service_name.replace("%", "%%")
    return (
        "[Unit]\n"
        f"Description=Taskcluster generic-worker ({description})\n"
        "Wants=network-online.target\n"
        "After=network-online.target\n"
        # A worker that crashes again and again stops being restarted after 5 tries in 10 min.
        "StartLimitIntervalSec=600\n"
        "StartLimitBurst=5\n"
        "\n"
        "[Service]\n"
        "Type=simple\n"
        f"WorkingDirectory={str(config.parent).replace('%', '%%')}\n"
        f"ExecStart={exec_start}\n"
        "KillMode=mixed\n"
        "KillSignal=SIGTERM\n"
        "TimeoutStopSec=120\n"
        "Restart=on-failure\n"
        "RestartSec=10\n"
        f"SuccessExitStatus={' '.join(str(int(c)) for c in CLEAN_STOPS)}\n"
        f"RestartPreventExitStatus={' '.join(str(int(c)) for c in NEVER_RESTART)}\n"
        "\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n"
    )


def worker_command() -> list[str]:
    """How the unit starts the worker: the `generic-worker` script, else `python -m generic_worker`."""
    found = shutil.which("generic-worker")
    if found:
        return [str(Path(found).resolve())]
    return [sys.executable, "-m", "generic_worker"]


def _fail(message: str) -> ExitCode:
    print(f"Error installing generic worker: {message}", file=sys.stderr)
    return ExitCode.CANT_INSTALL_GENERIC_WORKER


def install_service(service_name: str, config_file: Path) -> ExitCode:
    """Write (and, without the unit-dir override, enable) the unit; a failure is one line and 65."""
    if platform.system() != "Linux":
        return _fail(f"install service is not supported on {platform.system()}")
    override = os.environ.get(UNIT_DIR_ENV)
    if not override and not SYSTEMD_RUNNING.is_dir():
        return _fail(
            f"systemd is not running as PID 1 on this machine, so no service was installed "
            f"(set {UNIT_DIR_ENV} to only write the unit file)"
        )
    name = unit_name(service_name)
    path = Path(override or SYSTEM_UNIT_DIR) / name
    try:
        path.write_text(unit_text(service_name, config_file, worker_command()), encoding="utf-8")
    except OSError as e:
        return _fail(f"cannot write {path}: {e.strerror or e}")
    if override:
        print(f"Wrote systemd unit {path} (systemctl not called: {UNIT_DIR_ENV} is set)")
        return ExitCode.TASKS_COMPLETE
    for argv in (["systemctl", "daemon-reload"], ["systemctl", "enable", name]):
        error = asyncio.run(_systemctl(argv))
        if error:
            path.unlink(missing_ok=True)  # leave no half-installed unit behind
            return _fail(error)
    print(f"Installed and enabled systemd unit {path}")
    return ExitCode.TASKS_COMPLETE


async def _systemctl(argv: list[str]) -> str | None:
    try:
        result = await run_capture(argv, timeout=60)
    except OSError as e:
        return f"cannot run {argv[0]}: {e.strerror or e}"
    if result.exit_code != 0:
        text = result.output.decode(errors="replace").strip()
        return f"`{shlex.join(argv)}` exited with {result.exit_code}: {text}"
    return None
