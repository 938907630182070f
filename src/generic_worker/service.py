"""`install service`: a systemd unit on Linux that runs the worker with the given config.

Unlike the seed (which ignored `--config`), the unit runs `generic-worker run --config <abs>`.
SIGTERM (what systemd sends on stop) makes the worker abort running tasks as
`exception/worker-shutdown` and upload their logs, so `TimeoutStopSec` leaves time for that.
`GENERIC_WORKER_SYSTEMD_UNIT_DIR` overrides the unit directory (default /etc/systemd/system).
"""

from __future__ import annotations

import asyncio
import os
import platform
import re
import shlex
import shutil
import sys
from pathlib import Path

from generic_worker.exitcodes import ExitCode
from generic_worker.process import run_capture

UNIT_DIR_ENV = "GENERIC_WORKER_SYSTEMD_UNIT_DIR"


def unit_name(service_name: str) -> str:
    """The systemd unit name for a service name: lower case, other characters collapsed to `-`."""
    name = re.sub(r"[^a-z0-9._-]+", "-", service_name.lower()).strip("-")
    return (name or "generic-worker") + ".service"


def unit_text(service_name: str, config_file: Path, executable: str) -> str:
    """The unit file's contents."""
    config = config_file.resolve()
    command = shlex.join([executable, "run", "--config", str(config)])
    return (
        "[Unit]\n"
        f"Description=Taskcluster generic-worker ({service_name})\n"
        "Wants=network-online.target\n"
        "After=network-online.target\n"
        "\n"
        "[Service]\n"
        "Type=simple\n"
        f"WorkingDirectory={config.parent}\n"
        f"ExecStart={command}\n"
        "KillMode=mixed\n"
        "KillSignal=SIGTERM\n"
        "TimeoutStopSec=120\n"
        "Restart=on-failure\n"
        "RestartSec=5\n"
        "\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n"
    )


def _executable() -> str:
    found = shutil.which("generic-worker")
    if found:
        return str(Path(found).resolve())
    return f"{sys.executable} -m generic_worker"


def install_service(service_name: str, config_file: Path) -> ExitCode:
    """Write and enable the unit; any failure is one line on stderr and exit 65."""
    if platform.system() != "Linux":
        print(
            f"Error installing generic worker: install service is not supported on {platform.system()}",
            file=sys.stderr,
        )
        return ExitCode.CANT_INSTALL_GENERIC_WORKER
    unit_dir = Path(os.environ.get(UNIT_DIR_ENV, "/etc/systemd/system"))
    name = unit_name(service_name)
    path = unit_dir / name
    try:
        path.write_text(unit_text(service_name, config_file, _executable()), encoding="utf-8")
    except OSError as e:
        print(
            f"Error installing generic worker: cannot write {path}: {e.strerror or e}",
            file=sys.stderr,
        )
        return ExitCode.CANT_INSTALL_GENERIC_WORKER
    for argv in (["systemctl", "daemon-reload"], ["systemctl", "enable", name]):
        error = asyncio.run(_systemctl(argv))
        if error:
            print(f"Error installing generic worker: {error}", file=sys.stderr)
            return ExitCode.CANT_INSTALL_GENERIC_WORKER
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
