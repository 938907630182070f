"""Crash reports: a worker crash (exit 69) is sent to Sentry when `sentryProject` is set.

As in the seed, the DSN comes from the auth service (`GET <auth>/sentry/<project>/dsn`, scope
`auth:sentry:<project>`, with the worker's credentials) at the moment of the crash, and the
report carries the seed's tags (`cleanUpTaskDirs`, `deploymentId`, `instanceType`,
`runTasksAsCurrentUser`, `workerGroup`, `workerId`, `workerType`, `gwVersion`, `GOOS`,
`GOARCH`; the last two name Go's spelling of this machine's OS and architecture), plus
`implementation: python`. The report is sent with `sentry-sdk` through a client of its own
(no global hooks: nothing else in the process is captured) and flushed before the worker goes
on to exit. Whatever goes wrong here (no endpoint, no scope, Sentry unreachable) is one warning:
reporting a crash never causes a second one.
"""

from __future__ import annotations

import asyncio
import logging
import platform

import sentry_sdk

from generic_worker import __version__
from generic_worker.config import Config
from generic_worker.tc import TC_ERRORS, ServiceFactory
from generic_worker.tc.failures import describe
from generic_worker.worker_log import add_secret

log = logging.getLogger(__name__)

FLUSH_TIMEOUT = 10.0
_GOARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "i686": "386"}


def crash_tags(config: Config) -> dict[str, str]:
    """The tags a crash report carries."""
    machine = platform.machine().lower()
    return {
        "cleanUpTaskDirs": str(config.clean_up_task_dirs).lower(),
        "deploymentId": config.deployment_id,
        "instanceType": config.instance_type,
        "runTasksAsCurrentUser": str(config.run_tasks_as_current_user).lower(),
        "workerGroup": config.worker_group,
        "workerId": config.worker_id,
        "workerType": config.worker_type,
        "gwVersion": __version__,
        "GOOS": platform.system().lower(),
        "GOARCH": _GOARCH.get(machine, machine),
        "implementation": "python",
    }


async def report_crash(services: ServiceFactory, config: Config, error: BaseException) -> None:
    """Send `error` to Sentry if `sentryProject` is set; never raises."""
    project = config.sentry_project
    if not project:
        log.info("No sentry project defined, not reporting to sentry")
        return
    try:
        answer = await services.client("auth", max_retries=2).sentryDSN(project)
        dsn = str(answer["dsn"]["secret"])
    except TC_ERRORS as e:
        log.warning("Could not get a Sentry DSN for project %s, crash not reported: %s", project, describe(e))
        return
    except (KeyError, TypeError):
        log.warning("The auth service gave no Sentry DSN for project %s, crash not reported", project)
        return
    add_secret(dsn)  # it is a credential: never in the worker log
    try:
        sent = await asyncio.to_thread(_send, dsn, crash_tags(config), error)
    except Exception as e:  # noqa: BLE001 - the crash boundary: reporting must not crash again
        log.warning("Could not report the crash to Sentry: %s: %s", type(e).__name__, e)
        return
    if sent:
        log.info("Crash reported to Sentry project %s", project)
    else:
        log.warning("Could not report the crash to Sentry project %s in %.0fs", project, FLUSH_TIMEOUT)


def _send(dsn: str, tags: dict[str, str], error: BaseException) -> bool:
    """Capture `error` with a private client and flush it (blocking); True if it went out.

    The client is used directly (not through sentry-sdk's context scopes, which would look for
    a global client), so nothing is installed process-wide.
    """
    client = sentry_sdk.Client(
        dsn,
        default_integrations=False,
        auto_enabling_integrations=False,
        release=f"generic-worker@{__version__}",
    )
    try:
        scope = sentry_sdk.Scope()
        for name, value in tags.items():
            scope.set_tag(name, value)
        event, hint = sentry_sdk.utils.event_from_exception(error, client_options=client.options)
        event_id = client.capture_event(event=event, hint=hint, scope=scope)
        client.flush(timeout=FLUSH_TIMEOUT)
    finally:
        client.close(timeout=FLUSH_TIMEOUT)
    return event_id is not None
