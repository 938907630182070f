"""The d2g translation against upstream's documented translations (tools/d2g/d2gtest/testdata).

Each case restates one documented upstream case: the docker-worker payload, the d2gConfig, and
the native payload upstream's d2g produces (container name `taskcontainer`, as in upstream's tests).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from generic_worker.config.d2g import D2GConfig, d2g_config_problems, parse_d2g_config
from generic_worker.d2g.host import missing_capabilities
from generic_worker.d2g.images import InvalidImage
from generic_worker.d2g.scopes import convert_scopes, missing_scopes_error
from generic_worker.d2g.task import D2GTask, write_task_file
from generic_worker.d2g.translate import backing_log_name, go_ext, translate
from generic_worker.payload import Engine
from generic_worker.payload.validate import validate_payload

ALL = D2GConfig(enable_d2g=True)
HEAD = ["docker", "run", "-t", "--name", "taskcontainer", "--memory-swap", "-1", "--pids-limit", "-1"]
HEAD += ["--pull=never", "--log-driver=none"]
HOST = "--add-host=localhost.localdomain:127.0.0.1"
TAIL = ["--env-file", "env.list", "--"]
HELLO = ['echo "Hello world"']
LOGS = {"backing": "public/logs/live_backing.log", "live": "public/logs/live.log"}
FEATURES = {"backingLog": True, "liveLog": True, "resourceMonitor": True}


def native(argv: list[str], *, features: dict[str, bool] | None = None, **extra: Any) -> dict[str, Any]:
    payload = {
        "command": [argv],
        "features": {**FEATURES, **(features or {})},
        "logs": LOGS,
        "maxRunTime": 3600,
        "osGroups": ["docker"],
        "taskclusterProxyInterface": "docker-bridge",
        **extra,
    }
    return dict(sorted(payload.items()))


def run(dw: dict[str, Any], config: D2GConfig = ALL, devices: tuple[str, ...] = ()) -> dict[str, Any]:
    result = translate({"maxRunTime": 3600, **dw}, config, "taskcontainer", devices).payload
    # Every translation is a valid native payload (upstream validates d2g's output too).
    assert validate_payload(result, Engine.INSECURE) == []
    return dict(sorted(result.items()))


IMAGE_FILE_MOUNT = {"file": "dockerimage"}
TASK_IMAGE = {"type": "task-image", "taskId": "2JGiKFtpRnGbVczc6-OJ1Q", "path": "public/test/path"}
INDEXED = {"type": "indexed-image", "namespace": "test.namespace", "path": "test/path"}

CASES: list[tuple[str, dict[str, Any], D2GConfig, dict[str, Any]]] = [
    (
        "default container engine",
        {"image": "ubuntu", "command": HELLO},
        ALL,
        native([*HEAD, HOST, *TAIL, "ubuntu", *HELLO]),
    ),
    (
        "named docker image with chain of trust",
        {
            "image": {"type": "docker-image", "name": "my-little/pony:4.1"},
            "command": ["foo", "bar"],
            "env": {"ABC": "def", "GHI": "jkl"},
            "features": {"chainOfTrust": True},
        },
        ALL,
        native([*HEAD, HOST, *TAIL, "my-little/pony:4.1", "foo", "bar"], features={"chainOfTrust": True}),
    ),
    (
        "indexed image: the proxy is on to reach the index",
        {"image": INDEXED, "command": HELLO},
        ALL,
        native(
            [*HEAD, HOST, *TAIL, "__D2G_IMAGE_ID__", *HELLO],
            features={"taskclusterProxy": True},
            mounts=[
                {"content": {"artifact": "test/path", "namespace": "test.namespace"}, **IMAGE_FILE_MOUNT}
            ],
        ),
    ),
    (
        "indexed image .lz4: decompressed by the mount",
        {"image": {**INDEXED, "path": "test/path.lz4"}, "command": HELLO},
        ALL,
        native(
            [*HEAD, HOST, *TAIL, "__D2G_IMAGE_ID__", *HELLO],
            features={"taskclusterProxy": True},
            mounts=[
                {
                    "content": {"artifact": "test/path.lz4", "namespace": "test.namespace"},
                    "file": "dockerimage",
                    "format": "lz4",
                }
            ],
        ),
    ),
    (
        "task image",
        {"image": TASK_IMAGE, "command": HELLO},
        ALL,
        native(
            [*HEAD, HOST, *TAIL, "__D2G_IMAGE_ID__", *HELLO],
            mounts=[
                {
                    "content": {"artifact": "public/test/path", "taskId": TASK_IMAGE["taskId"]},
                    **IMAGE_FILE_MOUNT,
                }
            ],
        ),
    ),
    (
        "task image .zst with a cache: docker reads zstd itself",
        {
            "image": {**TASK_IMAGE, "path": "public/test/path.zst"},
            "command": HELLO,
            "cache": {"gecko-level-3-checkouts-sparse-v3": "/builds/worker/checkouts"},
        },
        ALL,
        native(
            [
                *HEAD,
                HOST,
                "-v",
                "__TASK_DIR__/cache0:/builds/worker/checkouts",
                *TAIL,
                "__D2G_IMAGE_ID__",
                *HELLO,
            ],
            mounts=[
                {"cacheName": "gecko-level-3-checkouts-sparse-v3", "directory": "cache0"},
                {
                    "content": {"artifact": "public/test/path.zst", "taskId": TASK_IMAGE["taskId"]},
                    **IMAGE_FILE_MOUNT,
                },
            ],
        ),
    ),
    (
        "ptrace, disableSeccomp and taskclusterProxy",
        {
            "image": "ubuntu",
            "command": HELLO,
            "capabilities": {"disableSeccomp": True},
            "features": {"allowPtrace": True, "taskclusterProxy": True},
        },
        ALL,
        native(
            [
                *HEAD,
                "--cap-add=SYS_PTRACE",
                "--security-opt=seccomp=unconfined",
                HOST,
                "--network",
                "__TASKCLUSTER_DOCKER_NETWORK__",
                "--add-host=taskcluster:__TASKCLUSTER_PROXY_GATEWAY__",
                *TAIL,
                "ubuntu",
                *HELLO,
            ],
            features={"taskclusterProxy": True},
        ),
    ),
    (
        "ptrace, disableSeccomp and taskclusterProxy disallowed by d2gConfig",
        {
            "image": "ubuntu",
            "command": HELLO,
            "capabilities": {"disableSeccomp": True, "privileged": True},
            "features": {"allowPtrace": True, "taskclusterProxy": True},
        },
        dataclasses.replace(
            ALL,
            allow_disable_seccomp=False,
            allow_privileged=False,
            allow_ptrace=False,
            allow_taskcluster_proxy=False,
        ),
        native([*HEAD, HOST, *TAIL, "ubuntu", *HELLO]),
    ),
    (
        "privileged wins over ptrace",
        {
            "image": "ubuntu",
            "command": HELLO,
            "capabilities": {"privileged": True},
            "features": {"allowPtrace": True},
        },
        ALL,
        native([*HEAD, "--privileged", HOST, *TAIL, "ubuntu", *HELLO]),
    ),
    (
        "host shared memory is a bind mount",
        {"image": "ubuntu", "command": HELLO, "capabilities": {"devices": {"hostSharedMemory": True}}},
        ALL,
        native([*HEAD, HOST, "-v", "/dev/shm:/dev/shm", *TAIL, "ubuntu", *HELLO]),
    ),
    (
        "kvm device",
        {"image": "ubuntu:latest", "command": HELLO, "capabilities": {"devices": {"kvm": True}}},
        ALL,
        native([*HEAD, HOST, "--device=/dev/kvm", *TAIL, "ubuntu:latest", *HELLO]),
    ),
    (
        "kvm device disallowed",
        {"image": "ubuntu", "command": HELLO, "capabilities": {"devices": {"kvm": True}}},
        dataclasses.replace(ALL, allow_kvm=False),
        native([*HEAD, HOST, *TAIL, "ubuntu", *HELLO]),
    ),
    (
        "loopback video maps to the native feature",
        {"image": "ubuntu", "command": HELLO, "capabilities": {"devices": {"loopbackVideo": True}}},
        ALL,
        native(
            [*HEAD, HOST, "--device=__TASKCLUSTER_VIDEO_DEVICE__", *TAIL, "ubuntu", *HELLO],
            features={"loopbackVideo": True},
        ),
    ),
    (
        "loopback audio maps to the native feature",
        {"image": "ubuntu", "command": HELLO, "capabilities": {"devices": {"loopbackAudio": True}}},
        ALL,
        native([*HEAD, HOST, "--device=/dev/snd", *TAIL, "ubuntu", *HELLO], features={"loopbackAudio": True}),
    ),
    (
        "file artifacts: sorted, optional, milliseconds, no shell injection",
        {
            "image": "ubuntu",
            "command": HELLO,
            "artifacts": {
                "public/build.tar.gz": {
                    "expires": "2024-05-28T16:12:56.693817Z",
                    "path": "/etc/passwd' artifact0; whoami; echo foo > /root/bar; cp 'foo",
                    "type": "file",
                },
                "public/fred": {"path": "/home/worker/artifacts/fred.txt", "type": "file"},
            },
        },
        ALL,
        native(
            [*HEAD, HOST, *TAIL, "ubuntu", *HELLO],
            artifacts=[
                {
                    "expires": "2024-05-28T16:12:56.693Z",
                    "name": "public/build.tar.gz",
                    "optional": True,
                    "path": "artifact0",
                    "type": "file",
                },
                {"name": "public/fred", "optional": True, "path": "artifact1.txt", "type": "file"},
            ],
        ),
    ),
    (
        "volume artifact: bind-mounted directory",
        {
            "image": "ubuntu",
            "command": HELLO,
            "artifacts": {"public/fred": {"path": "/home/worker/artifacts", "type": "volume"}},
        },
        ALL,
        native(
            [*HEAD, HOST, "-v", "__TASK_DIR__/volume0:/home/worker/artifacts", *TAIL, "ubuntu", *HELLO],
            artifacts=[{"name": "public/fred", "optional": True, "path": "volume0", "type": "directory"}],
        ),
    ),
]


@pytest.mark.parametrize(("dw", "config", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_documented_translations(dw: dict[str, Any], config: D2GConfig, expected: dict[str, Any]) -> None:
    assert run(dw, config) == expected


def test_gpus_add_the_nvidia_devices() -> None:
    config = dataclasses.replace(ALL, allow_gpus=True, gpus="device=GPU-3a23c669")
    payload = run({"image": "ubuntu", "command": HELLO}, config, ("null", "nvidiactl", "nvidia0", "sda"))
    argv = payload["command"][0]
    gpu = ["--gpus", "device=GPU-3a23c669", "--device=/dev/nvidia0", "--device=/dev/nvidiactl"]
    assert argv == [*HEAD, HOST, *gpu, *TAIL, "ubuntu", *HELLO]


def test_env_list_and_values_it_cannot_carry() -> None:
    dw = {
        "image": "ubuntu",
        "command": HELLO,
        "env": {" test123 --help  ; whoami ; ": "testing\n123", "B": "x y", "A": "1", "LONG": "v" * 70000},
        "features": {"taskclusterProxy": True},
    }
    translation = translate({"maxRunTime": 1, **dw}, ALL, "taskcontainer")
    argv = translation.payload["command"][0]
    # Multi-line and over-64KiB values go on the command line (sorted by name), the rest in env.list.
    i = argv.index("--env-file")
    assert argv[i - 4 : i] == ["-e", " test123 --help  ; whoami ; =testing\n123", "-e", "LONG=" + "v" * 70000]
    assert translation.env_list == (
        "A=1\nB=x y\nRUN_ID\nTASKCLUSTER_INSTANCE_TYPE\nTASKCLUSTER_PROXY_URL\nTASKCLUSTER_ROOT_URL\n"
        "TASKCLUSTER_WORKER_LOCATION\nTASK_GROUP_ID\nTASK_ID\n"
    )


def test_artifacts_off_means_no_artifacts_and_no_logs_features() -> None:
    dw = {
        "image": "ubuntu",
        "features": {"artifacts": False},
        "artifacts": {"a": {"type": "file", "path": "/a"}},
    }
    payload = run(dw)
    assert "artifacts" not in payload
    assert payload["features"] == {"resourceMonitor": True}


def test_log_names_and_exit_status() -> None:
    payload = run(
        {"image": "ubuntu", "log": "apple/banana.log.txt", "onExitStatus": {"retry": [3], "purgeCaches": []}}
    )
    assert payload["logs"] == {"backing": "apple/banana.log_backing.txt", "live": "apple/banana.log.txt"}
    assert payload["onExitStatus"] == {"retry": [3]}
    assert backing_log_name("live") == "live_backing"
    assert go_ext("/a.b/c") == "" and go_ext("x/.bashrc") == ".bashrc"


def test_copy_artifacts_skip_volumes() -> None:
    dw = {
        "maxRunTime": 1,
        "image": "ubuntu",
        "artifacts": {"b": {"type": "directory", "path": "/out"}, "a": {"type": "volume", "path": "/v"}},
    }
    copies = translate(dw, ALL, "c").copy_artifacts
    assert [(c.name, c.source, c.dest) for c in copies] == [("b", "/out", "artifact1")]


def test_invalid_image_name() -> None:
    with pytest.raises(InvalidImage, match="invalid reference format"):
        translate({"maxRunTime": 1, "image": "UPPER/Case"}, ALL, "c")


QUEUE = "proj-taskcluster/gw-ubuntu-24-04"


def test_scopes_as_upstream_documents_them() -> None:
    given = ["docker-worker:apples", f"docker-worker:capability:device:kvm:{QUEUE}"]
    dw = {"image": "ubuntu", "capabilities": {"devices": {"kvm": True}}}
    assert missing_scopes_error(dw, QUEUE, given) is None
    assert convert_scopes(given, given, QUEUE) == [
        "docker-worker:apples",
        f"docker-worker:capability:device:kvm:{QUEUE}",
        "generic-worker:apples",
        f"generic-worker:os-group:{QUEUE}/docker",
        f"generic-worker:os-group:{QUEUE}/kvm",
        f"generic-worker:os-group:{QUEUE}/libvirt",
    ]
    mapped = convert_scopes(
        [],
        [
            "docker-worker:cache:foo",
            "docker-worker:capability:device:loopbackVideo",
            f"docker-worker:capability:device:loopbackAudio:{QUEUE}",
        ],
        QUEUE,
    )
    assert "generic-worker:cache:foo" in mapped
    assert "generic-worker:loopback-video:*" in mapped
    assert f"generic-worker:loopback-audio:{QUEUE}" in mapped


def test_missing_capability_scopes_text() -> None:
    dw = {"image": "ubuntu", "capabilities": {"privileged": True}, "features": {"allowPtrace": True}}
    message = missing_scopes_error(dw, QUEUE, ["queue:x"])
    assert message == (
        "d2g task requires scopes:\n\n"
        f"(docker-worker:capability:privileged, or\ndocker-worker:capability:privileged:{QUEUE})\nAND\n"
        "(docker-worker:feature:allowPtrace)\n\nbut task only has scopes:\n\nqueue:x\n\n"
        "You probably should add some scopes to your task definition"
    )
    assert (
        missing_scopes_error(dw, QUEUE, ["docker-worker:capability:privileged:*", "docker-worker:feature:*"])
        is None
    )


def test_d2g_config_keys_defaults_and_problems() -> None:
    assert parse_d2g_config({}) == D2GConfig()
    assert D2GConfig().enable_d2g is False and D2GConfig().allow_gpus is False and D2GConfig().gpus == "all"
    assert parse_d2g_config({"enabled2g": True, "allowKVM": False}) == D2GConfig(
        enable_d2g=True, allow_kvm=False
    )
    assert d2g_config_problems({"enableD2G": "true", "bogus": 1, "containerEngine": "podman"}) == [
        '"d2gConfig.enableD2G": must be true or false, got str',
        '"d2gConfig.bogus": unknown config key',
        '"d2gConfig.containerEngine": only "docker" is supported, got \'podman\'',
    ]


def test_chain_of_trust_contract(tmp_path: Any) -> None:
    d2g = D2GTask(translate({"maxRunTime": 1, "image": "ubuntu"}, ALL, "c"), {"image": "ubuntu"}, ["s"])
    assert d2g.chain_of_trust_environment() == {}
    d2g.image_hash = "sha256:" + "1" * 64
    assert d2g.chain_of_trust_environment() == {"imageHash": "sha256:" + "1" * 64}
    d2g.image_artifact_hash = "2" * 64
    target = tmp_path / "chain-of-trust-additional-data.json"
    (tmp_path / "elsewhere").write_text("keep")
    target.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OSError):  # never written through a link at its name
        write_task_file(target, d2g.chain_of_trust_data())
    assert (tmp_path / "elsewhere").read_text() == "keep"
    target.unlink()
    write_task_file(target, d2g.chain_of_trust_data())
    written = json.loads(target.read_text())
    assert written == {
        "environment": {"imageHash": "sha256:" + "1" * 64, "imageArtifactHash": "sha256:" + "2" * 64}
    }


def test_missing_capabilities_reads_the_bounding_set() -> None:
    assert missing_capabilities("CapBnd:\t000001ffffffffff\n", 40) == []
    assert missing_capabilities("CapBnd:\t000001fffeffffff\n", 40) == ["CAP_SYS_RESOURCE"]
    assert missing_capabilities("Name: x\n", 40) == []
