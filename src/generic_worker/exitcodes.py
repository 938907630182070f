"""The worker's process exit codes: one enum, the README's table.

The numbers are generic-worker's, so operators' service wrappers (which restart, reboot or
shut down depending on the code) keep working unchanged.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Every code `generic-worker` exits with; `__main__` is the only caller of `sys.exit`."""

    TASKS_COMPLETE = 0
    """`numberOfTasksToRun` reached, or a one-shot target (keys, schema, --help) succeeded."""
    USAGE_ERROR = 1
    """The command line did not match the usage text (docopt prints the usage section)."""
    TASK_EXCEPTION = 2
    """`exec` only: the task was resolved exception (malformed payload, Ctrl-C, ...)."""
    TASK_COMPLETED = 0
    """`exec` only (same number as TASKS_COMPLETE): the task was resolved completed."""
    TASK_FAILED = 1
    """`exec` only (same number as USAGE_ERROR): the task was resolved failed."""
    CANT_LOAD_CONFIG = 64
    """The config file could not be read or parsed."""
    CANT_INSTALL_GENERIC_WORKER = 65
    """`install service` failed, or is not supported on this platform."""
    CANT_CREATE_KEYPAIR = 66
    """`new-openpgp-keypair` / `new-ed25519-keypair` could not write the key."""
    REBOOT_REQUIRED = 67
    """Never produced on Linux: task users are created without a reboot."""
    IDLE_TIMEOUT = 68
    """No task claimed for `idleTimeoutSecs`."""
    INTERNAL_ERROR = 69
    """The worker crashed; the running task was resolved `exception/internal-error`."""
    NONCURRENT_DEPLOYMENT_ID = 70
    """The deployment changed, or worker-manager / worker-runner said terminate."""
    WORKER_STOPPED = 71
    """SIGINT: the running task(s) finished, then the worker stopped."""
    WORKER_SHUTDOWN = 72
    """SIGTERM or a spot termination: running tasks resolved `exception/worker-shutdown`."""
    INVALID_CONFIG = 73
    """The config has unknown keys, wrong types or bad values (all are reported)."""
    CANT_GRANT_CONTROL_OF_WINSTA_AND_DESKTOP = 74
    """`grant-winsta-access` failed; always off Windows."""


EXIT_CODE_TABLE: tuple[tuple[ExitCode, str], ...] = (
    (
        ExitCode.TASKS_COMPLETE,
        "Tasks complete (numberOfTasksToRun reached), or a one-shot command succeeded"
        " (exec: the task completed)",
    ),
    (
        ExitCode.USAGE_ERROR,
        "Bad command line; the usage section is printed to stderr (exec: the task failed)",
    ),
    (ExitCode.TASK_EXCEPTION, "exec: the task was resolved exception (the reason is printed)"),
    (
        ExitCode.CANT_LOAD_CONFIG,
        "Not able to load the config file (unreadable, or not valid JSON); exec: unusable task file",
    ),
    (ExitCode.CANT_INSTALL_GENERIC_WORKER, "Not able to install generic-worker as a service"),
    (
        ExitCode.CANT_CREATE_KEYPAIR,
        "Not able to create a key pair (new-openpgp-keypair / new-ed25519-keypair)",
    ),
    (ExitCode.REBOOT_REQUIRED, "Reboot required (never on Linux)"),
    (ExitCode.IDLE_TIMEOUT, "Worker idle for idleTimeoutSecs"),
    (
        ExitCode.INTERNAL_ERROR,
        "Internal error; the running task was resolved exception/internal-error",
    ),
    (
        ExitCode.NONCURRENT_DEPLOYMENT_ID,
        "Deployment changed, or worker-manager/worker-runner said terminate",
    ),
    (ExitCode.WORKER_STOPPED, "Stopped by SIGINT after finishing the running task(s)"),
    (
        ExitCode.WORKER_SHUTDOWN,
        "Shut down by SIGTERM or the cloud; tasks resolved exception/worker-shutdown",
    ),
    (ExitCode.INVALID_CONFIG, "Invalid config (every problem is listed)"),
    (
        ExitCode.CANT_GRANT_CONTROL_OF_WINSTA_AND_DESKTOP,
        "Not able to grant window station access (always off Windows)",
    ),
)
"""Short descriptions for `--help` and the README, in code order."""
