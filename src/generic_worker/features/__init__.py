"""The feature list: the only place that names features, in the order they start.

Features start in this order and stop in reverse order. Every ordering constraint is noted.
"""

from __future__ import annotations

from generic_worker.config import Config
from generic_worker.engine.feature import Feature
from generic_worker.features.backing_log import BackingLogFeature
from generic_worker.features.chain_of_trust import ChainOfTrustFeature
from generic_worker.features.command_executor import CommandExecutorFeature
from generic_worker.features.d2g import D2GFeature
from generic_worker.features.d2g_image_gc import D2GImageGCFeature
from generic_worker.features.deployment_id import DeploymentIdFeature
from generic_worker.features.live_log import LiveLogFeature
from generic_worker.features.max_run_time import MaxRunTimeFeature
from generic_worker.features.metrics import MetricsFeature
from generic_worker.features.mounts import MountsFeature
from generic_worker.features.os_groups import OSGroupsFeature
from generic_worker.features.payload_artifacts import PayloadArtifactsFeature
from generic_worker.features.payload_validator import PayloadValidatorFeature
from generic_worker.features.resource_monitor import ResourceMonitorFeature
from generic_worker.features.run_as_current_user import RunTaskAsCurrentUserFeature
from generic_worker.features.spot_termination import SpotTerminationFeature
from generic_worker.features.supersede import SupersedeFeature
from generic_worker.features.task_timer import TaskTimerFeature
from generic_worker.features.taskcluster_proxy import TaskclusterProxyFeature
from generic_worker.features.unsupported import UnsupportedFeature


def build_features(config: Config, *, configure_for_aws: bool = False) -> list[Feature]:
    """THE ordered feature list for a worker with `config` (`run --configure-for-aws` or not)."""
    del config  # every feature decides per task from the config it gets then
    return [
        # First, so its stop runs last: the uploaded log is complete, and is uploaded even
        # when the payload turns out to be malformed.
        BackingLogFeature(),
        # Before anything that reads the payload.
        PayloadValidatorFeature(),
        # Counts the run as running from here to its stop (after everything later has stopped).
        MetricsFeature(),
        # Early: a spot termination aborts the task at any later stage (mounts included), and
        # the backing log is still uploaded.
        SpotTerminationFeature(enabled=configure_for_aws),
        # Worker-level only (before claims): no per-task part, so its place does not matter.
        DeploymentIdFeature(enabled=configure_for_aws),
        UnsupportedFeature(),
        # Right after validation: a superseded task starts nothing else and runs no command.
        SupersedeFeature(),
        # Before mounts and commands, so their output can be followed live; its stop (token
        # revoked, artifact linked to the backing log) runs after theirs.
        LiveLogFeature(),
        # Before mounts and commands: TASKCLUSTER_PROXY_URL must be in the commands' env.
        TaskclusterProxyFeature(),
        # Before OS groups (which skip the task user then) and before mounts and artifacts,
        # whose file work then runs as the worker's user too.
        RunTaskAsCurrentUserFeature(),
        OSGroupsFeature(),
        # Before mounts: its disk-space GC (cached docker images) runs before caches are evicted.
        D2GImageGCFeature(),
        # After the live log and the proxy (its downloads show live), before chain of trust and
        # payload artifacts: caches are unmounted (moved back or purged) only after the
        # artifacts in them were uploaded. Before the commands, whose exit code decides purges.
        MountsFeature(),
        # Before payload artifacts, so its stop runs after them and can hash them.
        ChainOfTrustFeature(),
        PayloadArtifactsFeature(),
        # d2g: after the proxy (its docker network) and mounts (the image file, caches); after
        # payload artifacts, so its stop (docker cp) runs before they are uploaded; before the
        # command executor (docker run), so its stop (docker rm --force) runs after the commands
        # were killed.
        D2GFeature(),
        # Samples memory while the commands run; its summary is logged after
        # `=== Task Finished ===` and before the payload artifacts are uploaded.
        ResourceMonitorFeature(),
        # Armed as late as possible before the commands; the clock counts from the claim.
        MaxRunTimeFeature(),
        # Its stop logs `=== Task Finished ===` right after the commands, before uploads.
        TaskTimerFeature(),
        # Last: its start runs the commands; its stop kills what they left behind.
        CommandExecutorFeature(),
    ]
