"""The d2g translation: a docker-worker payload becomes a native payload that runs `docker run`.

A pure function of the (schema-valid) docker-worker payload, the worker's `d2gConfig`, the
container's name and the names in /dev (for GPUs): no I/O, so every documented upstream case is
a unit test. The observable results follow upstream's d2g: the `docker run` arguments and their
order, `env.list` (the task's env plus the worker-set variables, by name so docker reads their
values from its own environment), writable caches `cache<i>`, artifacts `artifact<i><ext>` (copied
out with `docker cp`) or `volume<i><ext>` (bind-mounted), all `optional`, `osGroups: [docker]`,
`taskclusterProxyInterface: docker-bridge`, and the placeholders that the d2g feature fills in at
run time (`__TASK_DIR__`, `__D2G_IMAGE_ID__`, `__TASKCLUSTER_DOCKER_NETWORK__`,
`__TASKCLUSTER_PROXY_GATEWAY__`, `__TASKCLUSTER_VIDEO_DEVICE__`).

One deliberate difference: caches are numbered in sorted name order (upstream numbers them in Go's
random map order), so a translation is reproducible.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from generic_worker.config.d2g import D2GConfig
from generic_worker.d2g.images import ImageSpec, image_spec
from generic_worker.timefmt import parse_tc, to_tc

TASK_DIR = "__TASK_DIR__"
IMAGE_ID = "__D2G_IMAGE_ID__"
DOCKER_NETWORK = "__TASKCLUSTER_DOCKER_NETWORK__"
PROXY_GATEWAY = "__TASKCLUSTER_PROXY_GATEWAY__"
VIDEO_DEVICE = "__TASKCLUSTER_VIDEO_DEVICE__"
ENV_FILE = "env.list"
LIVE_LOG = "public/logs/live.log"
ENV_FILE_LIMIT = 65536  # docker's --env-file reads lines with a 64 KiB scanner
WORKER_SET_VARIABLES = (
    "RUN_ID",
    "TASKCLUSTER_INSTANCE_TYPE",
    "TASKCLUSTER_ROOT_URL",
    "TASKCLUSTER_WORKER_LOCATION",
    "TASK_GROUP_ID",
    "TASK_ID",
)


@dataclass(frozen=True)
class CopyArtifact:
    """An artifact copied out of the stopped container: `docker cp <container>:<source> <dest>`."""

    name: str
    source: str
    dest: str


@dataclass(frozen=True)
class Translation:
    """What the translation produces: the native payload and what the d2g feature needs to run it."""

    payload: dict[str, Any]
    container_name: str
    env_list: str
    image: ImageSpec
    copy_artifacts: tuple[CopyArtifact, ...] = field(default=())


def go_ext(path: str) -> str:
    """The extension of the last path element, as Go's `filepath.Ext` (".bashrc" -> ".bashrc")."""
    for i in range(len(path) - 1, -1, -1):
        if path[i] == "/":
            return ""
        if path[i] == ".":
            return path[i:]
    return ""


def backing_log_name(live: str) -> str:
    """`public/logs/live.log` -> `public/logs/live_backing.log` (`_backing` before the extension)."""
    head, sep, base = live.rpartition("/")
    ext = go_ext(base)
    stem = base[: len(base) - len(ext)] if ext else base
    return f"{head}{sep}{stem}_backing{ext}" if head or sep else f"{stem}_backing{ext}"


def translate(
    dw: Mapping[str, Any],
    config: D2GConfig,
    container_name: str,
    dev_entries: Sequence[str] = (),
) -> Translation:
    """Translate a schema-valid docker-worker payload into a native one (see the module docstring)."""
    features = {"localLiveLog": True, "bulkLog": True, "artifacts": True, **(dw.get("features") or {})}
    capabilities = dw.get("capabilities") or {}
    devices = capabilities.get("devices") or {}
    image = image_spec(dw["image"])
    artifacts = _artifacts(dw) if features["artifacts"] else []
    caches = sorted((dw.get("cache") or {}).items())
    env_list, extra_env_args = _env(dw, features, devices, config)
    argv = _docker_run(
        dw, features, capabilities, devices, config, container_name, caches, artifacts, dev_entries
    )
    argv += [*extra_env_args, "--env-file", ENV_FILE, "--", image.run_reference, *dw.get("command", [])]
    payload: dict[str, Any] = {}
    if artifacts:
        payload["artifacts"] = [a for a, _ in artifacts]
    payload["command"] = [argv]
    payload["features"] = _features(features, devices, config, image)
    payload["logs"] = {"backing": backing_log_name(dw.get("log", LIVE_LOG)), "live": dw.get("log", LIVE_LOG)}
    payload["maxRunTime"] = dw["maxRunTime"]
    mounts: list[dict[str, Any]] = [
        {"cacheName": name, "directory": f"cache{i}"} for i, (name, _) in enumerate(caches)
    ]
    mounts += image.file_mounts()
    if mounts:
        payload["mounts"] = mounts
    on_exit = {k: v for k, v in (dw.get("onExitStatus") or {}).items() if v}
    if on_exit:
        payload["onExitStatus"] = on_exit
    payload["osGroups"] = ["docker"]
    if dw.get("supersederUrl"):
        payload["supersederUrl"] = dw["supersederUrl"]
    payload["taskclusterProxyInterface"] = "docker-bridge"
    copies = tuple(
        CopyArtifact(native["name"], source["path"], native["path"])
        for native, source in artifacts
        if source["type"] != "volume"
    )
    return Translation(payload, container_name, env_list, image, copies)


def _artifacts(dw: Mapping[str, Any]) -> list[tuple[dict[str, Any], Mapping[str, Any]]]:
    """(native artifact, docker-worker artifact) pairs, in artifact-name order."""
    result = []
    source_artifacts: Mapping[str, Any] = dw.get("artifacts") or {}
    for i, name in enumerate(sorted(source_artifacts)):
        source = source_artifacts[name]
        native: dict[str, Any] = {}
        if "expires" in source:
            native["expires"] = to_tc(parse_tc(source["expires"]))
        native["name"] = name
        native["optional"] = True
        ext = go_ext(source["path"])
        if source["type"] == "volume":
            # A volume is bind-mounted from the task directory: a directory artifact there.
            native["path"], native["type"] = f"volume{i}{ext}", "directory"
        else:
            native["path"], native["type"] = f"artifact{i}{ext}", source["type"]
        result.append((native, source))
    return result


def _env(
    dw: Mapping[str, Any], features: Mapping[str, Any], devices: Mapping[str, Any], config: D2GConfig
) -> tuple[str, list[str]]:
    """The `env.list` text and the `-e NAME=value` arguments of values env.list cannot carry."""
    names = list(WORKER_SET_VARIABLES)
    if features.get("taskclusterProxy") and config.allow_taskcluster_proxy:
        names.append("TASKCLUSTER_PROXY_URL")
    if devices.get("loopbackVideo") and config.allow_loopback_video:
        names.append("TASKCLUSTER_VIDEO_DEVICE")
    lines, args = [], []
    env: Mapping[str, str] = dw.get("env") or {}
    for name in sorted(env):
        pair = f"{name}={env[name]}"
        # A newline would split the pair into two lines; over 64 KiB docker cannot read the line.
        if "\n" in env[name] or len(pair) > ENV_FILE_LIMIT:
            args += ["-e", pair]
        else:
            lines.append(pair)
    lines += names
    return "".join(line + "\n" for line in sorted(lines)), args


def _docker_run(
    dw: Mapping[str, Any],
    features: Mapping[str, Any],
    capabilities: Mapping[str, Any],
    devices: Mapping[str, Any],
    config: D2GConfig,
    container_name: str,
    caches: Sequence[tuple[str, str]],
    artifacts: Sequence[tuple[dict[str, Any], Mapping[str, Any]]],
    dev_entries: Sequence[str],
) -> list[str]:
    """`docker run ...` up to (not including) the env arguments, in upstream's order."""
    # -t: docker-worker attached a pseudo-terminal. The image is loaded or pulled beforehand
    # (--pull=never); the log driver is off since the worker already captures the output.
    argv = ["docker", "run", "-t", "--name", container_name, "--memory-swap", "-1", "--pids-limit", "-1"]
    argv += ["--pull=never", "--log-driver=none"]
    if capabilities.get("privileged") and config.allow_privileged:
        argv.append("--privileged")
    elif features.get("allowPtrace") and config.allow_ptrace:
        argv.append("--cap-add=SYS_PTRACE")
    if capabilities.get("disableSeccomp") and config.allow_disable_seccomp:
        argv.append("--security-opt=seccomp=unconfined")
    argv.append("--add-host=localhost.localdomain:127.0.0.1")
    for i, (_, mountpoint) in enumerate(caches):
        argv += ["-v", f"{TASK_DIR}/cache{i}:{mountpoint}"]
    for native, source in artifacts:
        if source["type"] == "volume":
            argv += ["-v", f"{TASK_DIR}/{native['path']}:{source['path']}"]
    argv += _device_args(devices, config)
    if features.get("taskclusterProxy") and config.allow_taskcluster_proxy:
        argv += ["--network", DOCKER_NETWORK, f"--add-host=taskcluster:{PROXY_GATEWAY}"]
    if config.allow_gpus:
        argv += ["--gpus", config.gpus]
        argv += [f"--device=/dev/{name}" for name in sorted(dev_entries) if name.startswith("nvidia")]
    return argv


def _device_args(devices: Mapping[str, Any], config: D2GConfig) -> list[str]:
    """The `--device` and `/dev/shm` arguments of the payload's allowed devices."""
    argv = []
    if devices.get("kvm") and config.allow_kvm:
        argv.append("--device=/dev/kvm")
    if devices.get("hostSharedMemory") and config.allow_host_shared_memory:
        argv += ["-v", "/dev/shm:/dev/shm"]  # a bind mount: /dev/shm is not a device node
    if devices.get("loopbackVideo") and config.allow_loopback_video:
        argv.append(f"--device={VIDEO_DEVICE}")
    if devices.get("loopbackAudio") and config.allow_loopback_audio:
        argv.append("--device=/dev/snd")
    return argv


def _features(
    features: Mapping[str, Any], devices: Mapping[str, Any], config: D2GConfig, image: ImageSpec
) -> dict[str, bool]:
    """The native `features`, only the true ones (upstream's output omits false values)."""
    native = {"resourceMonitor": True}
    if features["artifacts"]:
        native["backingLog"] = bool(features["bulkLog"])
        native["liveLog"] = bool(features["localLiveLog"])
    if config.allow_chain_of_trust:
        native["chainOfTrust"] = bool(features.get("chainOfTrust"))
    # An indexed image is found through the index, with the task's credentials, via the proxy.
    proxy = image.kind == "indexed-image"
    if config.allow_taskcluster_proxy:
        proxy = proxy or bool(features.get("taskclusterProxy"))
    native["taskclusterProxy"] = proxy
    if config.allow_interactive:
        native["interactive"] = bool(features.get("interactive"))
    if config.allow_loopback_audio:
        native["loopbackAudio"] = bool(devices.get("loopbackAudio"))
    if config.allow_loopback_video:
        native["loopbackVideo"] = bool(devices.get("loopbackVideo"))
    return {name: True for name, value in sorted(native.items()) if value}
