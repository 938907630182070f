"""`d2gConfig`: how docker-worker payloads are translated and run (upstream's keys and defaults).

The object is merged key by key over the defaults, as upstream merges nested config objects;
unknown keys and wrong types are config problems (exit 73), all reported at once.
`containerEngine` is accepted for configs written for older upstream workers; only `docker`
is supported.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class D2GConfig:
    """The typed `d2gConfig` object; field names are the snake_case of the JSON keys."""

    enable_d2g: bool = False
    allow_chain_of_trust: bool = True
    allow_disable_seccomp: bool = True
    allow_gpus: bool = False
    allow_host_shared_memory: bool = True
    allow_interactive: bool = True
    allow_kvm: bool = True
    allow_loopback_audio: bool = True
    allow_loopback_video: bool = True
    allow_privileged: bool = True
    allow_ptrace: bool = True
    allow_taskcluster_proxy: bool = True
    container_engine: str = "docker"
    gpus: str = "all"
    log_translation: bool = True


JSON_KEYS: Mapping[str, str] = {
    "enableD2G": "enable_d2g",
    "allowChainOfTrust": "allow_chain_of_trust",
    "allowDisableSeccomp": "allow_disable_seccomp",
    "allowGPUs": "allow_gpus",
    "allowHostSharedMemory": "allow_host_shared_memory",
    "allowInteractive": "allow_interactive",
    "allowKVM": "allow_kvm",
    "allowLoopbackAudio": "allow_loopback_audio",
    "allowLoopbackVideo": "allow_loopback_video",
    "allowPrivileged": "allow_privileged",
    "allowPtrace": "allow_ptrace",
    "allowTaskclusterProxy": "allow_taskcluster_proxy",
    "containerEngine": "container_engine",
    "gpus": "gpus",
    "logTranslation": "log_translation",
}
"""Every `d2gConfig` key and the attribute it sets."""

SUPPORTED_ENGINES = ("docker",)


def d2g_config_problems(raw: Mapping[str, Any]) -> list[str]:
    """Every problem with a `d2gConfig` object (keys match case-insensitively, as Go's decoder)."""
    problems = []
    by_lower = {key.lower(): key for key in JSON_KEYS}
    defaults = D2GConfig()
    for given, value in raw.items():
        key = by_lower.get(given.lower())
        if key is None:
            problems.append(f'"d2gConfig.{given}": unknown config key')
            continue
        expected = type(getattr(defaults, JSON_KEYS[key]))
        if type(value) is not expected:
            what = "true or false" if expected is bool else "a string"
            problems.append(f'"d2gConfig.{key}": must be {what}, got {type(value).__name__}')
        elif key == "containerEngine" and value not in SUPPORTED_ENGINES:
            problems.append(f'"d2gConfig.containerEngine": only "docker" is supported, got {value!r}')
    return problems


def parse_d2g_config(raw: Mapping[str, Any]) -> D2GConfig:
    """The typed config of a `d2gConfig` object that `d2g_config_problems` found no problem in."""
    by_lower = {key.lower(): attr for key, attr in JSON_KEYS.items()}
    values = {by_lower[k.lower()]: v for k, v in raw.items() if k.lower() in by_lower}
    return dataclasses.replace(D2GConfig(), **values)
