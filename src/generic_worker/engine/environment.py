"""The environment task commands run with (TARGET §7).

Insecure engine: the worker's environment minus the worker's Taskcluster credentials, then
`payload.env`, then the forced variables. Multiuser engine: a clean environment (HOME, USER,
LOGNAME and upstream's default PATH) then the same. `os.environ` is never modified, so nothing
leaks from one task to the next.
"""

from __future__ import annotations

from collections.abc import Mapping

CREDENTIAL_VARIABLES = frozenset(
    {"TASKCLUSTER_CLIENT_ID", "TASKCLUSTER_ACCESS_TOKEN", "TASKCLUSTER_CERTIFICATE"}
)
"""The worker's own credentials: never handed to a task."""

MULTIUSER_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"


def base_environment(
    worker_env: Mapping[str, str], *, multiuser: bool, user: str = "", home: str = ""
) -> dict[str, str]:
    """The starting environment before `payload.env` and forced values."""
    if multiuser:
        return {"HOME": home, "USER": user, "LOGNAME": user, "PATH": MULTIUSER_PATH}
    return {k: v for k, v in worker_env.items() if k not in CREDENTIAL_VARIABLES}


def command_environment(
    base: Mapping[str, str], payload_env: Mapping[str, str], forced: Mapping[str, str]
) -> dict[str, str]:
    """`base`, overlaid with the task's own variables, overlaid with the forced ones."""
    env = dict(base)
    env.update(payload_env)
    env.update(forced)
    return env
