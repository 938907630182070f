"""Reading and validating the config file: every problem is collected and reported at once.

A file that cannot be read or is not a JSON object is a load error (exit 64); anything wrong with
the keys or values is a validation error (exit 73) listing all problems. The file is never
rewritten (the seed rewrote it, secrets included).
"""

from __future__ import annotations

import ipaddress
import json
import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from generic_worker.config.d2g import d2g_config_problems
from generic_worker.config.schema import Config, Kind, config_keys

COMPAT_KEYS: Mapping[str, Kind] = {
    "disableNativePayloads": Kind.BOOL,
    "enableInteractive": Kind.BOOL,
    "enableLoopbackAudio": Kind.BOOL,
    "enableLoopbackVideo": Kind.BOOL,
    "enableMetadata": Kind.BOOL,
    "enableRDP": Kind.BOOL,
    "enableRunAsAdministrator": Kind.BOOL,
    "headlessTasks": Kind.BOOL,
    "interactivePort": Kind.PORT,
    "livelogExposePort": Kind.PORT,
    "livelogPortBase": Kind.PORT,
    "loopbackAudioDeviceNumber": Kind.UINT,
    "loopbackVideoDeviceNumber": Kind.UINT,
    "wstAudience": Kind.STRING,
    "wstServerURL": Kind.STRING,
}
"""Keys of today's upstream worker that are accepted (type-checked) but have no effect here."""

_IDENTIFIER = re.compile(r"^[a-zA-Z0-9_-]{1,38}$")


class ConfigLoadError(Exception):
    """The config file could not be read or is not a JSON object (exit 64)."""


class ConfigInvalidError(Exception):
    """The config has problems (exit 73); `problems` lists every one of them."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        lines = [f"Invalid config file '{path}':"] + [f"  - {p}" for p in problems]
        super().__init__("\n".join(lines))


def read_config_file(path: Path) -> dict[str, Any]:
    """Read the file as a JSON object, or raise ConfigLoadError with a one-line reason."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigLoadError(f"Error loading configuration from file '{path}': {e.strerror or e}") from e
    except UnicodeDecodeError as e:
        raise ConfigLoadError(f"Error loading configuration from file '{path}': not UTF-8 ({e})") from e
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigLoadError(
            f"Error loading configuration from file '{path}': invalid JSON at line {e.lineno} "
            f"column {e.colno}: {e.msg}"
        ) from e
    if not isinstance(data, dict):
        raise ConfigLoadError(
            f"Error loading configuration from file '{path}': expected a JSON object, got {_json_type(data)}"
        )
    return data


def load_config(path: Path) -> tuple[Config, list[str]]:
    """Load and validate `path`; return the Config and warnings (e.g. keys with no effect)."""
    return config_from_mapping(read_config_file(path), str(path))


def config_from_mapping(raw: Mapping[str, Any], source: str = "<config>") -> tuple[Config, list[str]]:
    """Build a validated Config from already-parsed JSON; raise ConfigInvalidError listing all problems.

    Keys match case-insensitively (as Go's JSON decoder does), so `instanceID` sets `instanceId`.
    """
    keys = {info.key.lower(): info for info in config_keys()}
    compat = {name.lower(): (name, kind) for name, kind in COMPAT_KEYS.items()}
    problems: list[str] = []
    warnings: list[str] = []
    values: dict[str, Any] = {}
    seen: dict[str, str] = {}
    for given, value in raw.items():
        lowered = given.lower()
        if lowered in seen:
            problems.append(f'"{given}": given twice (also as "{seen[lowered]}")')
            continue
        seen[lowered] = given
        if lowered in keys:
            info = keys[lowered]
            problem = check_value(info.kind, value)
            if problem:
                problems.append(f'"{info.key}": {problem}')
            else:
                values[info.attribute] = value
                if info.ignored:
                    warnings.append(f'config key "{info.key}": {info.doc}')
        elif lowered in compat:
            name, kind = compat[lowered]
            problem = check_value(kind, value)
            if problem:
                problems.append(f'"{name}": {problem}')
            else:
                warnings.append(f'config key "{name}" of upstream generic-worker has no effect here')
        else:
            problems.append(f'"{given}": unknown config key')
    config = Config(**values)
    problems.extend(cross_checks(config))
    if problems:
        raise ConfigInvalidError(source, problems)
    return config, warnings


def check_value(kind: Kind, value: Any) -> str | None:
    """Return why `value` is not acceptable for a key of `kind`, or None if it is."""
    if kind in (Kind.STRING, Kind.URL, Kind.IP, Kind.COMMAND):
        if not isinstance(value, str):
            return f"must be a string, got {_json_type(value)}"
        return _check_string(kind, value)
    if kind is Kind.BOOL:
        return None if isinstance(value, bool) else f"must be true or false, got {_json_type(value)}"
    if kind in (Kind.UINT, Kind.PORT):
        if isinstance(value, bool) or not isinstance(value, int):
            return f"must be a whole number, got {_json_type(value)}"
        if value < 0:
            return f"must not be negative, got {value}"
        if kind is Kind.PORT and value > 65535:
            return f"must be a port number (0-65535), got {value}"
        return None
    if kind is Kind.OBJECT:
        return None if isinstance(value, dict) else f"must be a JSON object, got {_json_type(value)}"
    raise AssertionError(kind)  # pragma: no cover


def _check_string(kind: Kind, value: str) -> str | None:
    if not value:
        return None
    if kind is Kind.URL:
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            return f"must be an http(s) URL, got {value!r}"
    elif kind is Kind.IP:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            return f"invalid IP address: {value}"
    elif kind is Kind.COMMAND:
        try:
            if not shlex.split(value):
                return "must not be empty"
        except ValueError as e:
            return f"cannot be split into a command line: {e}"
    return None


def _required(config: Config) -> list[str]:
    problems = []
    for info in config_keys():
        if info.key in REQUIRED_KEYS and not getattr(config, info.attribute):
            problems.append(f'"{info.key}": is required but not set')
    if not config.root_url and not config.queue_base_url:
        problems.append('"rootURL": is required (or the legacy "queueBaseURL") but not set')
    return problems


REQUIRED_KEYS = frozenset(
    {
        "accessToken",
        "cachesDir",
        "clientId",
        "downloadsDir",
        "provisionerId",
        "tasksDir",
        "workerGroup",
        "workerId",
        "workerType",
    }
)


def cross_checks(config: Config) -> list[str]:
    """Problems that involve a key's value or several keys together."""
    problems = _required(config)
    problems.extend(d2g_config_problems(config.d2g_config))
    for key, value in (
        ("provisionerId", config.provisioner_id),
        ("workerType", config.worker_type),
        ("workerGroup", config.worker_group),
        ("workerId", config.worker_id),
    ):
        if value and not _IDENTIFIER.match(value):
            problems.append(f'"{key}": must be 1-38 characters of a-z A-Z 0-9 _ -, got {value!r}')
    if config.capacity < 1:
        problems.append('"capacity": must be at least 1')
    if config.max_task_run_time < 1:
        problems.append('"maxTaskRunTime": must be at least 1')
    if config.max_memory_usage_percent > 100:
        problems.append('"maxMemoryUsagePercent": must be at most 100')
    if config.task_status_poll_interval_secs < 1:
        problems.append('"taskStatusPollIntervalSecs": must be at least 1')
    if config.log_format not in ("text", "json"):
        problems.append(f'"logFormat": must be "text" or "json", got {config.log_format!r}')
    if config.metrics_port and not config.metrics_address:
        problems.append('"metricsAddress": must be an IP address when "metricsPort" is set')
    if bool(config.livelog_certificate) != bool(config.livelog_key):
        problems.append('"livelogCertificate" and "livelogKey": set both (HTTPS) or neither (HTTP)')
    problems.extend(_live_log_checks(config))
    if (
        config.multiuser
        and config.enable_chain_of_trust
        and not config.ed25519_signing_key_location
        and not config.signing_key_location
    ):
        problems.append(
            '"signingKeyLocation": required by the multiuser engine with enableChainOfTrust '
            '(or set "ed25519SigningKeyLocation", or set "enableChainOfTrust" to false)'
        )
    return problems


def _live_log_checks(config: Config) -> list[str]:
    if not config.enable_live_log:
        return []
    problems = []
    if not config.public_ip:
        problems.append('"publicIP": required for live log URLs (or set "enableLiveLog" to false)')
    if config.subdomain:
        if config.public_ip and not _is_ipv4(config.public_ip):
            problems.append('"publicIP": must be IPv4 when "subdomain" is set (stateless DNS names)')
        if not config.livelog_secret:
            problems.append(
                '"livelogSecret": required when "subdomain" is set (stateless DNS names); '
                'or set "subdomain" to "" to use publicIP in live log URLs'
            )
    return problems


def _is_ipv4(value: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(value), ipaddress.IPv4Address)
    except ValueError:
        return False


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__  # pragma: no cover
