"""The config keys: one typed, frozen `Config`, each field carrying its JSON key and meaning.

The field list is the single source of truth for the loader, `--help` and the README table.
Seed (10.11.1) keys keep the seed's defaults, except the per-service base URLs, which default
to empty ("derive from rootURL") so that `rootURL` can win; see README.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from generic_worker.config.d2g import D2GConfig, parse_d2g_config


class Kind(Enum):
    """How a key's JSON value is checked (beyond its Python type)."""

    STRING = "string"
    URL = "url"
    IP = "ip"
    BOOL = "bool"
    UINT = "uint"
    PORT = "port"
    OBJECT = "object"
    COMMAND = "command"


def _key(
    name: str,
    default: Any,
    doc: str,
    kind: Kind,
    *,
    secret: bool = False,
    ignored: bool = False,
    shown_default: str | None = None,
) -> Any:
    """Declare one config key: its JSON name, default, kind and one-line meaning."""
    meta = {
        "key": name,
        "doc": doc,
        "kind": kind,
        "secret": secret,
        "ignored": ignored,
        "shown_default": shown_default,
    }
    if callable(default):
        return field(default_factory=default, metadata=meta)
    return field(default=default, metadata=meta)


def default_tasks_dir() -> str:
    """The seed's default `tasksDir`: the parent of $HOME (`.` when HOME is unset)."""
    home = os.environ.get("HOME")
    return str(Path(home).parent) if home else "."


S, U, B, P = Kind.STRING, Kind.UINT, Kind.BOOL, Kind.PORT


@dataclass(frozen=True, repr=False)
class Config:
    """The worker's whole configuration, validated at load time and never rewritten.

    Attribute names are the snake_case of the JSON keys; the JSON key of each field is in its
    metadata (`config_keys()` lists them).
    """

    access_token: str = _key(
        "accessToken", "", "Taskcluster access token of the worker's client", S, secret=True
    )
    allowed_high_memory_duration_secs: int = _key(
        "allowedHighMemoryDurationSecs",
        5,
        "Resource monitor: seconds memory may stay too high before abort",
        U,
    )
    auth_base_url: str = _key(
        "authBaseURL", "", "Auth service base URL (legacy; overrides rootURL for auth)", Kind.URL
    )
    availability_zone: str = _key("availabilityZone", "", "Availability zone, for information", S)
    caches_dir: str = _key("cachesDir", "caches", "Where writable directory caches are kept", S)
    capacity: int = _key("capacity", 1, "How many tasks may run at once", U)
    certificate: str = _key("certificate", "", "Certificate of temporary worker credentials", S, secret=True)
    check_for_new_deployment_every_secs: int = _key(
        "checkForNewDeploymentEverySecs",
        1800,
        "With --configure-for-aws: deploymentId check interval",
        U,
    )
    clean_up_task_dirs: bool = _key("cleanUpTaskDirs", True, "Delete old task directories", B)
    client_id: str = _key("clientId", "", "Taskcluster client id of the worker", S)
    create_object_artifacts: bool = _key(
        "createObjectArtifacts",
        False,
        "Upload artifacts through the object service instead of s3",
        B,
    )
    d2g_config: dict[str, Any] = _key(
        "d2gConfig",
        dict,
        "docker-worker payloads (d2g): enableD2G and the allow* switches (docs/d2g.md)",
        Kind.OBJECT,
    )
    deployment_id: str = _key("deploymentId", "", "Deployment id (with --configure-for-aws)", S)
    disable_oom_protection: bool = _key(
        "disableOOMProtection", False, "Resource monitor: only warn, never abort, on low memory", B
    )
    disable_reboots: bool = _key("disableReboots", False, "Never reboot (reboots never happen on Linux)", B)
    downloads_dir: str = _key("downloadsDir", "downloads", "Where mount downloads are cached", S)
    ed25519_signing_key_location: str = _key(
        "ed25519SigningKeyLocation", "", "ed25519 chain-of-trust key file (multiuser engine)", S
    )
    enable_chain_of_trust: bool = _key("enableChainOfTrust", True, "Allow features.chainOfTrust", B)
    enable_live_log: bool = _key("enableLiveLog", True, "Allow features.liveLog", B)
    enable_mounts: bool = _key("enableMounts", True, "Allow payload mounts", B)
    enable_os_groups: bool = _key("enableOSGroups", True, "Allow payload osGroups", B)
    enable_resource_monitor: bool = _key("enableResourceMonitor", True, "Allow features.resourceMonitor", B)
    enable_run_task_as_current_user: bool = _key(
        "enableRunTaskAsCurrentUser",
        True,
        "Multiuser: allow features.runTaskAsCurrentUser (always off when capacity > 1)",
        B,
    )
    enable_taskcluster_proxy: bool = _key(
        "enableTaskclusterProxy", True, "Allow features.taskclusterProxy", B
    )
    idle_timeout_secs: int = _key(
        "idleTimeoutSecs", 0, "Exit (68) after this long without a task; 0 = never", U
    )
    instance_id: str = _key("instanceId", "", "Cloud instance id (chain of trust)", S)
    instance_type: str = _key("instanceType", "", "Instance type; also TASKCLUSTER_INSTANCE_TYPE", S)
    livelog_certificate: str = _key(
        "livelogCertificate", "", "TLS certificate file for the live log (HTTPS)", S
    )
    livelog_executable: str = _key(
        "livelogExecutable", "livelog", "Ignored: the live log is built in", S, ignored=True
    )
    livelog_get_port: int = _key("livelogGETPort", 60023, "Port the live log is served on", P)
    livelog_key: str = _key("livelogKey", "", "TLS key file for the live log (HTTPS)", S)
    livelog_put_port: int = _key(
        "livelogPUTPort", 60022, "Ignored: the live log is built in", P, ignored=True
    )
    livelog_secret: str = _key(
        "livelogSecret",
        "",
        "HMAC secret for the live log's stateless-DNS host name",
        S,
        secret=True,
    )
    log_format: str = _key("logFormat", "text", "Worker log on stderr: text, or json (one object a line)", S)
    max_memory_usage_percent: int = _key(
        "maxMemoryUsagePercent", 90, "Resource monitor: memory use (percent) considered too high", U
    )
    max_task_run_time: int = _key(
        "maxTaskRunTime", 86400, "Largest maxRunTime a task may ask for (seconds)", U
    )
    metadata_base_url: str = _key(
        "metadataBaseURL",
        "http://169.254.169.254",
        "EC2 metadata service (--configure-for-aws)",
        Kind.URL,
    )
    metrics_address: str = _key(
        "metricsAddress", "127.0.0.1", "Address the Prometheus /metrics endpoint listens on", Kind.IP
    )
    metrics_port: int = _key("metricsPort", 0, "Port of the Prometheus /metrics endpoint; 0 = off", P)
    min_available_memory_bytes: int = _key(
        "minAvailableMemoryBytes", 524288000, "Resource monitor: available memory considered too low", U
    )
    number_of_tasks_to_run: int = _key(
        "numberOfTasksToRun", 0, "Exit (0) after this many tasks; 0 = never", U
    )
    private_ip: str = _key("privateIP", "", "Private IP address (chain of trust)", Kind.IP)
    provisioner_base_url: str = _key("provisionerBaseURL", "", "AWS provisioner base URL (legacy)", Kind.URL)
    provisioner_id: str = _key("provisionerId", "test-provisioner", "Provisioner id of the task queue", S)
    public_ip: str = _key("publicIP", "", "Public IP address (live log URL host, chain of trust)", Kind.IP)
    purge_cache_base_url: str = _key(
        "purgeCacheBaseURL",
        "",
        "Purge-cache service base URL (legacy; overrides rootURL)",
        Kind.URL,
    )
    queue_base_url: str = _key(
        "queueBaseURL", "", "Queue base URL (legacy; overrides rootURL for the queue)", Kind.URL
    )
    reboot_command: str = _key(
        "rebootCommand", "shutdown -r now", "Command that reboots the machine", Kind.COMMAND
    )
    region: str = _key("region", "", "Cloud region (chain of trust)", S)
    required_disk_space_megabytes: int = _key(
        "requiredDiskSpaceMegabytes", 10240, "Free disk space kept before each claim (MiB)", U
    )
    root_url: str = _key(
        "rootURL", "", "Taskcluster root URL; services at <rootURL>/api/<service>/v1/", Kind.URL
    )
    run_after_user_creation: str = _key(
        "runAfterUserCreation", "", "Multiuser: command run as each new task user", S
    )
    run_tasks_as_current_user: bool = _key(
        "runTasksAsCurrentUser",
        True,
        "true: insecure engine; false: multiuser engine (root, Linux)",
        B,
    )
    sentry_project: str = _key(
        "sentryProject", "", "Sentry project that worker crashes (69) are reported to", S
    )
    shutdown_command: str = _key(
        "shutdownCommand", "shutdown now", "Command that shuts the machine down", Kind.COMMAND
    )
    shutdown_machine_on_idle: bool = _key(
        "shutdownMachineOnIdle", False, "Shut the machine down on idle exit", B
    )
    shutdown_machine_on_internal_error: bool = _key(
        "shutdownMachineOnInternalError", False, "Shut the machine down on internal error", B
    )
    signing_key_location: str = _key(
        "signingKeyLocation", "", "OpenPGP chain-of-trust key (multiuser engine)", S
    )
    subdomain: str = _key(
        "subdomain",
        "taskcluster-worker.net",
        "Stateless-DNS domain for live log URLs; empty = use publicIP",
        S,
    )
    task_status_poll_interval_secs: int = _key(
        "taskStatusPollIntervalSecs",
        10,
        "How often a running task's status is polled (cancellation)",
        U,
    )
    taskcluster_proxy_executable: str = _key(
        "taskclusterProxyExecutable",
        "taskcluster-proxy",
        "Ignored: the Taskcluster proxy is built in",
        S,
        ignored=True,
    )
    taskcluster_proxy_port: int = _key(
        "taskclusterProxyPort", 80, "Loopback port of the task's Taskcluster proxy", P
    )
    tasks_dir: str = _key(
        "tasksDir",
        default_tasks_dir,
        "Parent directory of task_<n> directories",
        S,
        shown_default="parent of $HOME",
    )
    worker_group: str = _key("workerGroup", "test-worker-group", "Worker group", S)
    worker_id: str = _key("workerId", "", "Worker id", S)
    worker_location: str = _key("workerLocation", "", "JSON worker location; TASKCLUSTER_WORKER_LOCATION", S)
    worker_type: str = _key("workerType", "", "Worker type of the task queue", S)
    worker_type_metadata: dict[str, Any] = _key(
        "workerTypeMetadata",
        dict,
        "Free-form object written at the top of every task log",
        Kind.OBJECT,
    )

    def __repr__(self) -> str:
        """Show every key, with secrets masked, so the config can be logged safely."""
        parts = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.metadata["secret"] and value:
                value = "*************"
            parts.append(f"{f.metadata['key']}={value!r}")
        return "Config(" + ", ".join(parts) + ")"

    @property
    def task_queue_id(self) -> str:
        """`<provisionerId>/<workerType>`, the queue this worker claims from."""
        return f"{self.provisioner_id}/{self.worker_type}"

    @property
    def d2g(self) -> D2GConfig:
        """The typed `d2gConfig`, merged over upstream's defaults."""
        return parse_d2g_config(self.d2g_config)

    @property
    def multiuser(self) -> bool:
        """True when tasks run as their own OS users (the multiuser engine)."""
        return not self.run_tasks_as_current_user

    def service_base_url(self, service: str) -> str:
        """Base URL of a Taskcluster service: the legacy per-service key if set, else rootURL's."""
        legacy = {
            "queue": self.queue_base_url,
            "auth": self.auth_base_url,
            "purge-cache": self.purge_cache_base_url,
        }.get(service, "")
        if legacy:
            return legacy.rstrip("/")
        return f"{self.root_url.rstrip('/')}/api/{service}/v1"


@dataclass(frozen=True)
class KeyInfo:
    """One config key as the loader, --help and the README see it."""

    key: str
    attribute: str
    kind: Kind
    default: Any
    doc: str
    secret: bool
    ignored: bool
    shown_default: str | None

    def default_text(self) -> str:
        """The default as shown to operators (JSON-ish)."""
        if self.shown_default is not None:
            return self.shown_default
        if isinstance(self.default, bool):
            return "true" if self.default else "false"
        if isinstance(self.default, str):
            return f'"{self.default}"'
        if isinstance(self.default, dict):
            return "{}"
        return str(self.default)


def config_keys() -> tuple[KeyInfo, ...]:
    """Every config key, in alphabetical order of its JSON name."""
    infos = []
    for f in dataclasses.fields(Config):
        if f.default is not dataclasses.MISSING:
            default: Any = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:  # pragma: no cover - every field has a default
            raise AssertionError(f.name)
        m = f.metadata
        infos.append(
            KeyInfo(
                key=m["key"],
                attribute=f.name,
                kind=m["kind"],
                default=default,
                doc=m["doc"],
                secret=m["secret"],
                ignored=m["ignored"],
                shown_default=m["shown_default"],
            )
        )
    return tuple(sorted(infos, key=lambda i: i.key.lower()))
