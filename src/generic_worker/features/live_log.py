"""Live log (`features.liveLog`, default on; worker switch `enableLiveLog`).

One `LiveLogServer` serves every task of the worker (started in `initialise`, on
`livelogGETPort`; HTTPS with `livelogCertificate` + `livelogKey`). Per task:

- start: a new token for the task's backing log, and a `reference` artifact `logs.live`
  (default `public/logs/live.log`) to `http(s)://<host>:<port>/log/<token>`, where the host
  is the stateless-DNS name for `publicIP` when `subdomain` is set, else `publicIP`;
- stop: the token is revoked (readers already connected follow the log to its end) and the
  artifact becomes a `link` to the backing log (if the backing log is uploaded, as upstream).

Gating is upstream's: the feature is requested unless the payload says `features.liveLog:
false`, so with `enableLiveLog: false` a task that does not switch it off is refused as
malformed-payload. The live log is best effort (as the seed): a server that cannot start, or
a reference artifact that cannot be created, is a warning and the task runs without it.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Sequence
from datetime import datetime, timedelta

from generic_worker.artifacts import LinkArtifact, ReferenceArtifact
from generic_worker.config import Config
from generic_worker.engine.feature import FeatureBase, TaskFeature, TaskFeatureBase
from generic_worker.engine.taskrun import TaskRun
from generic_worker.engine.worker import WorkerContext
from generic_worker.errors import ExecutionErrors
from generic_worker.livelog import CONTENT_TYPE, LiveLogServer, stateless_dns_name
from generic_worker.payload.model import as_payload, backing_log_name, feature_enabled, live_log_name
from generic_worker.timefmt import now

log = logging.getLogger(__name__)

EXPIRY_SLACK = timedelta(seconds=900)
"""The reference outlives maxRunTime by this much (clock drift, slow starts), as upstream."""


class LiveLogFeature(FeatureBase):
    """Streams each task's log over HTTP(S) while it runs."""

    name = "Live Log"

    def __init__(self) -> None:
        self._server: LiveLogServer | None = None
        self._problem = "the live log server is not running"

    async def initialise(self, worker: WorkerContext) -> None:
        """Start the worker's one live log server (unless `enableLiveLog` is false)."""
        config = worker.config
        if not config.enable_live_log:
            return
        server = LiveLogServer()
        try:
            await server.start(
                config.livelog_get_port, certificate=config.livelog_certificate, key=config.livelog_key
            )
        except (OSError, ssl.SSLError) as e:
            self._problem = f"could not serve the live log on port {config.livelog_get_port}: {e}"
            log.warning("WARNING: %s; tasks will run without a live log", self._problem)
            return
        self._server = server

    def is_enabled(self, task: TaskRun) -> bool:
        """`enableLiveLog`."""
        return task.config.enable_live_log

    def is_requested(self, task: TaskRun) -> bool:
        """`features.liveLog` (default true)."""
        return feature_enabled(as_payload(task.payload), "liveLog")

    def new_task_feature(self, task: TaskRun) -> TaskFeature:
        """The per-task part."""
        return _LiveLog(task, self._server, self._problem)

    async def close(self) -> None:
        """Stop the server and disconnect its readers."""
        if self._server is not None:
            await self._server.close()
            self._server = None


class _LiveLog(TaskFeatureBase):
    def __init__(self, task: TaskRun, server: LiveLogServer | None, problem: str) -> None:
        self.task = task
        self.server = server
        self.problem = problem
        payload = as_payload(task.payload)
        self.name = live_log_name(payload)
        self.backing = backing_log_name(payload) if feature_enabled(payload, "backingLog") else None
        self.token: str | None = None
        self.publishing: asyncio.Task[None] | None = None

    def reserved_artifacts(self) -> Sequence[str]:
        return (self.name,)

    async def start(self) -> None:
        task, server = self.task, self.server
        if server is None or not server.running:
            task.log.warn(f"No live log for this task: {self.problem}")
            return
        expires = min(now() + timedelta(seconds=task.payload["maxRunTime"]) + EXPIRY_SLACK, task.expires)
        url = server.url(url_host(task.config, expires), server.register(task.log))
        self.token = url.rsplit("/", 1)[1]
        artifact = ReferenceArtifact(name=self.name, url=url, expires=expires, content_type=CONTENT_TYPE)
        # In the background: the commands need not wait for this queue call. stop() awaits it
        # before replacing the artifact with the link.
        self.publishing = asyncio.create_task(self._publish_reference(artifact))

    async def _publish_reference(self, artifact: ReferenceArtifact) -> None:
        error = await self.task.publish(artifact)
        if error is not None:
            why = error.message.split("\n", 1)[0]
            self.task.log.warn(f"Could not publish the live log artifact {artifact.name}: {why}")

    async def stop(self, errors: ExecutionErrors) -> None:
        if self.token is None or self.server is None:
            return
        if self.publishing is not None:
            await self.publishing
        self.server.revoke(self.token)
        if self.backing is not None:
            link = LinkArtifact(
                name=self.name, target=self.backing, expires=self.task.expires, content_type=CONTENT_TYPE
            )
            errors.add(await self.task.publish(link))


def url_host(config: Config, expires: datetime) -> str:
    """The host of live log URLs: a stateless-DNS name when `subdomain` is set, else `publicIP`.

    A name is valid until `expires` (the reference artifact's expiry). Config validation
    guarantees an IPv4 `publicIP` and a `livelogSecret` with a subdomain, and a `publicIP`
    whenever the live log is enabled; `localhost` is only a last resort.
    """
    if config.subdomain:
        return stateless_dns_name(config.public_ip, config.subdomain, expires, config.livelog_secret)
    return config.public_ip or "localhost"
