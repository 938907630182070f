"""Deployment check (with `--configure-for-aws` only): stop (70) when the worker type's deployment changes.

Before claiming, at most every `checkForNewDeploymentEverySecs` (the first claim always
checks), the worker reads its worker type from the provisioner (`provisionerBaseURL`, which
`--configure-for-aws` takes from user-data unless the config sets it) with its own credentials,
and compares `secrets["generic-worker"].config.deploymentId` with its config's `deploymentId`.
A different value logs the seed's line and stops the worker once running tasks are done, with
exit 70, after which `shutdownCommand` runs. Any failure (unreachable, refused, an unexpected
answer) counts as "unchanged", so a provisioner outage cannot take a whole pool down.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from generic_worker.engine.feature import FeatureBase, WorkerExit
from generic_worker.engine.worker import WorkerContext
from generic_worker.exitcodes import ExitCode
from generic_worker.tc import TC_ERRORS
from generic_worker.tc.failures import describe
from generic_worker.tc.provisioner import provisioner_client

log = logging.getLogger(__name__)


class DeploymentIdFeature(FeatureBase):
    """Compares the provisioner's deploymentId with the config's before claims."""

    name = "Deployment Id"

    def __init__(self, enabled: bool = False) -> None:
        self.enabled = enabled
        self._worker: WorkerContext | None = None
        self._last_check: float | None = None

    async def initialise(self, worker: WorkerContext) -> None:
        """Keep the worker context (config and current worker credentials)."""
        self._worker = worker
        if self.enabled and not worker.config.provisioner_base_url:
            log.warning("--configure-for-aws without provisionerBaseURL: the deploymentId is never checked")

    def is_requested(self, task: Any) -> bool:
        """No per-task part."""
        return False

    async def before_claim(self) -> bool:
        """Check when due; raise WorkerExit(70) on a new deployment."""
        worker = self._worker
        if not self.enabled or worker is None or not worker.config.provisioner_base_url:
            return True
        interval = worker.config.check_for_new_deployment_every_secs
        now = time.monotonic()
        if self._last_check is not None and now - self._last_check < interval:
            return True
        self._last_check = now
        latest = await self._latest_deployment_id(worker)
        current = worker.config.deployment_id
        if latest is not None and latest != current:
            log.info('New deploymentId found! "%s" => "%s" - therefore shutting down!', current, latest)
            raise WorkerExit(f"deploymentId changed to {latest!r}", ExitCode.NONCURRENT_DEPLOYMENT_ID)
        return True

    async def _latest_deployment_id(self, worker: WorkerContext) -> str | None:
        config = worker.config
        client = provisioner_client(
            worker.services.session,
            config.provisioner_base_url,
            worker.services.worker_credentials,
            max_retries=2,
        )
        try:
            definition = await client.workerType(config.worker_type)
            value = definition["secrets"]["generic-worker"]["config"]["deploymentId"]
        except TC_ERRORS as e:
            log.warning(
                "Could not read the worker type's deploymentId (treated as unchanged): %s", describe(e)
            )
            return None
        except (KeyError, TypeError):
            log.warning(
                "The worker type has no secrets.generic-worker.config.deploymentId (treated as unchanged)"
            )
            return None
        return value if isinstance(value, str) else None
