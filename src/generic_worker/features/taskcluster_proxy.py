"""Taskcluster proxy (`features.taskclusterProxy`; worker switch `enableTaskclusterProxy`).

Each task that asks for it gets its own proxy on 127.0.0.1 and `TASKCLUSTER_PROXY_URL` in
its environment; the proxy is closed when the task ends. It signs with the task's current
temporary credentials (so reclaims are picked up with no `PUT /credentials`) and
`authorizedScopes` = the task's scopes plus `queue:create-artifact:<taskId>/<runId>` (as
upstream); each reclaim is logged as upstream does it.

Port: `taskclusterProxyPort`, 0 for any free port. With `capacity` > 1 several proxies run
at once, so a task takes the first free port of `P, P+1, ..., P+4*capacity-1` (upstream
gives slot i the port P+4i).

Isolation: the proxy listens on loopback only, one per task. In the multiuser engine it
serves only processes of the task's own user: each connection's client socket is looked up in
/proc/net/tcp and any other uid (another task's user, root included) gets 403 with nothing
signed. A task that runs as the worker's user (`runTaskAsCurrentUser`) is served for that
user. In the insecure engine any local process can connect while the task runs (tasks run as
the worker's own user anyway, and the engine also runs on macOS, which has no /proc).

`taskclusterProxyInterface: docker-bridge` (d2g): the proxy listens on the gateway of a per-task
docker network (`gw-task-<taskId[:12]>-<runId>`) that the task's container joins, so it is
reachable from that container (as `http://<gateway>:<port>`) and no other; the network is
removed when the task ends.
"""

from __future__ import annotations

import os

from generic_worker.d2g import docker
from generic_worker.engine.feature import FeatureBase, TaskFeature, TaskFeatureBase
from generic_worker.engine.taskrun import TaskRun
from generic_worker.errors import ExecutionErrors, TaskError
from generic_worker.tc import Credentials
from generic_worker.tcproxy import TaskclusterProxy
from generic_worker.tcproxy.server import LOOPBACK

PORTS_PER_SLOT = 4


class TaskclusterProxyFeature(FeatureBase):
    """Gives a task an authenticating proxy to the Taskcluster services."""

    name = "Taskcluster Proxy"

    def is_enabled(self, task: TaskRun) -> bool:
        """`enableTaskclusterProxy`."""
        return task.config.enable_taskcluster_proxy

    def is_requested(self, task: TaskRun) -> bool:
        """`features.taskclusterProxy` (default false)."""
        return bool(task.payload.get("features", {}).get("taskclusterProxy"))

    def new_task_feature(self, task: TaskRun) -> TaskFeature:
        """The per-task part."""
        return _Proxy(task)


class _Proxy(TaskFeatureBase):
    def __init__(self, task: TaskRun) -> None:
        self.task = task
        self.proxy: TaskclusterProxy | None = None
        self.network = ""

    async def start(self) -> None:
        task = self.task
        # As upstream: the task's scopes, plus creating artifacts of this very run (which
        # task.scopes cannot express; the run's temporary credentials hold it).
        scopes = [*task.scopes, f"queue:create-artifact:{task.task_id}/{task.run_id}"]
        port = task.config.taskcluster_proxy_port
        tries = 1 if task.config.capacity == 1 else PORTS_PER_SLOT * task.config.capacity
        host, allowed_uid = LOOPBACK, _allowed_uid(task)
        if task.payload.get("taskclusterProxyInterface") == "docker-bridge":
            # The container's connections come from its own network namespace (no peer uid in
            # ours): the per-task network, which no other task joins, is the isolation.
            host, allowed_uid = await self._docker_network(), None
        proxy = TaskclusterProxy(task.config, lambda: task.credentials, scopes, allowed_uid=allowed_uid)
        try:
            await proxy.start(port, tries=tries, host=host)
        except OSError as e:
            raise TaskError.internal_error(f"could not start taskcluster proxy on port {port}: {e}") from e
        self.proxy = proxy
        task.extra_env["TASKCLUSTER_PROXY_URL"] = proxy.url
        task.status.add_reclaim_listener(self._refreshed)

    async def _docker_network(self) -> str:
        """docker-bridge (d2g): a per-task docker network; the proxy listens on its gateway."""
        task = self.task
        name = f"gw-task-{task.task_id[:12]}-{task.run_id}"
        try:
            gateway = await docker.create_network(name)
        except docker.DockerError as e:
            raise TaskError.internal_error(f"could not create Docker network {name}: {e}") from e
        self.network = name
        task.extra_env["TASKCLUSTER_DOCKER_NETWORK"] = name
        task.extra_env["TASKCLUSTER_PROXY_GATEWAY"] = gateway
        return gateway

    def _refreshed(self, credentials: Credentials) -> None:
        client_id = credentials.get("clientId", "")
        self.task.log.info(
            f"[taskcluster-proxy] Successfully refreshed taskcluster-proxy credentials: {client_id}"
        )

    async def stop(self, errors: ExecutionErrors) -> None:
        self.task.status.remove_reclaim_listener(self._refreshed)
        if self.proxy is not None:
            await self.proxy.close()
        if self.network:
            # Ordering: after the d2g feature removed the container attached to it.
            try:
                await docker.remove_network(self.network)
            except docker.DockerError as e:
                errors.add(TaskError.internal_error(f"could not remove Docker network {self.network}: {e}"))


def _allowed_uid(task: TaskRun) -> int | None:
    """Multiuser: the uid whose processes the proxy serves (None: no check, insecure engine)."""
    if not task.config.multiuser:
        return None
    user = task.command_user
    return user.uid if user is not None else os.geteuid()
