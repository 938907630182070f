"""Payload validation: every problem reported, worded as the seed's gojsonschema worded it."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from generic_worker.payload import Engine
from generic_worker.payload.formats import is_uri
from generic_worker.payload.validate import (
    INVALID_PAYLOAD_HEADER,
    invalid_payload_log_lines,
    payload_problems_for_non_object,
    validate_payload,
)

TASK_ID = "KTBKfEgxR5GdfIIREQIvFQ"
SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
ONE_OF = "Must validate one and only one schema (oneOf)"


def payload(**extra: Any) -> dict[str, Any]:
    """A minimal valid payload plus ``extra``."""
    return {"command": [["/bin/true"]], "maxRunTime": 30, **extra}


def problems(value: object, engine: Engine = Engine.INSECURE) -> list[str]:
    return validate_payload(value, engine)


ALL_CONTENT = [
    {"taskId": TASK_ID, "artifact": "public/build/a.tar.gz"},
    {"taskId": TASK_ID, "artifact": "public/build/a.tar.gz", "sha256": SHA},
    {"namespace": "project.app.latest", "artifact": "public/a.zip"},
    {"url": "https://example.com/a.tar.gz"},
    {"url": "https://example.com/a.tar.gz", "sha256": SHA},
    {"raw": "hello"},
    {"base64": "aGVsbG8="},
]

EVERYTHING = payload(
    command=[["/bin/bash", "-c", "echo hello"], ["/bin/true"]],
    env={"FOO": "bar", "EMPTY": ""},
    artifacts=[
        {
            "type": "file",
            "path": "out/a.txt",
            "name": "public/a.txt",
            "expires": "2030-01-01T00:00:00.000Z",
            "contentType": "text/plain",
            "contentEncoding": "gzip",
            "optional": True,
        },
        {"type": "directory", "path": "out", "contentEncoding": "identity"},
    ],
    features={
        "backingLog": True,
        "chainOfTrust": True,
        "interactive": False,
        "liveLog": False,
        "loopbackAudio": False,
        "loopbackVideo": False,
        "resourceMonitor": True,
        "taskclusterProxy": True,
    },
    logs={"live": "public/live.log", "backing": "public/backing.log"},
    mounts=[
        *({"file": f"f{i}", "content": content} for i, content in enumerate(ALL_CONTENT)),
        {"file": "c.gz", "content": {"raw": "x"}, "format": "gz"},
        {"directory": "cache", "cacheName": "banana-cache"},
        {"directory": "cache2", "cacheName": "c", "content": ALL_CONTENT[0], "format": "tar.zst"},
        {"directory": "ro", "content": {"url": "https://example.com/a.zip"}, "format": "zip"},
    ],
    onExitStatus={"retry": [1, 123], "purgeCaches": [0, 2]},
    osGroups=["audio", "video"],
    supersederUrl="https://superseder.example.com/api?x=1",
    taskclusterProxyInterface="localhost",
)


@pytest.mark.parametrize("engine", list(Engine))
@pytest.mark.parametrize(
    "valid",
    [payload(), EVERYTHING, payload(maxRunTime=3, env={"A": "b"}), payload(maxRunTime=30.0)],
    ids=["minimal", "every-property", "hello-goodbye", "whole-float"],
)
def test_valid_payloads_have_no_problems(valid: dict[str, Any], engine: Engine) -> None:
    assert problems(valid, engine) == []


def test_run_task_as_current_user_exists_only_in_the_multiuser_schema() -> None:
    value = payload(features={"runTaskAsCurrentUser": True})
    assert problems(value, Engine.MULTIUSER) == []
    assert problems(value, Engine.INSECURE) == [
        "features: Additional property runTaskAsCurrentUser is not allowed"
    ]


# The seed's and upstream's own test cases (modern-gw.md §5.2-5.4), with their exact lines.
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({}, ["(root): command is required", "(root): maxRunTime is required"]),
        (
            {"a": "b"},
            [
                "(root): Additional property a is not allowed",
                "(root): command is required",
                "(root): maxRunTime is required",
            ],
        ),
        (
            payload(onExitStatus={"retry": [-1]}),
            ["onExitStatus.retry.0: Must be greater than or equal to 1"],
        ),
        (
            payload(onExitStatus={"purgeCaches": [-1]}),
            ["onExitStatus.purgeCaches.0: Must be greater than or equal to 0"],
        ),
        (
            payload(env={"FOO": 37}),
            ["env.FOO: Invalid type. Expected: string, given: integer"],
        ),
        (payload(extraField=1), ["(root): Additional property extraField is not allowed"]),
        (payload(command=[]), ["command: Array must have at least 1 items"]),
        (
            payload(mounts=[{"file": "f", "content": {"taskId": TASK_ID, "artifact": "a", "sha356": SHA}}]),
            [
                f"mounts.0: {ONE_OF}",
                f"mounts.0.content: {ONE_OF}",
                "mounts.0.content: Additional property sha356 is not allowed",
            ],
        ),
        (
            payload(artifacts=[{"type": "file", "path": "a", "contentEncoding": "jpg"}]),
            [
                "artifacts.0.contentEncoding: artifacts.0.contentEncoding must be one of the "
                'following: "identity", "gzip"'
            ],
        ),
        (
            payload(artifacts=[{"type": "file", "path": "a", "contentEncoding": ""}]),
            [
                "artifacts.0.contentEncoding: artifacts.0.contentEncoding must be one of the "
                'following: "identity", "gzip"'
            ],
        ),
        (
            payload(artifacts=[{"type": "file", "path": "a"}, {"type": "file", "path": "a"}]),
            ["artifacts: array items[0,1] must be unique"],
        ),
    ],
    ids=[
        "empty",
        "a-b",
        "retry-negative",
        "purge-negative",
        "env-number",
        "extra-field",
        "no-commands",
        "sha356",
        "encoding-jpg",
        "encoding-empty",
        "artifact-twice",
    ],
)
def test_upstream_cases(value: dict[str, Any], expected: list[str]) -> None:
    for engine in Engine:
        assert problems(value, engine) == expected


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"maxRunTime": 0}, ["maxRunTime: Must be greater than or equal to 1"]),
        ({"maxRunTime": 1.5}, ["maxRunTime: Invalid type. Expected: integer, given: number"]),
        ({"maxRunTime": "3"}, ["maxRunTime: Invalid type. Expected: integer, given: string"]),
        ({"maxRunTime": None}, ["maxRunTime: Invalid type. Expected: integer, given: null"]),
        ({"env": {"X": True}}, ["env.X: Invalid type. Expected: string, given: boolean"]),
        ({"env": []}, ["env: Invalid type. Expected: object, given: array"]),
        ({"command": [[]]}, ["command.0: Array must have at least 1 items"]),
        ({"command": ["ls -l"]}, ["command.0: Invalid type. Expected: array, given: string"]),
        ({"command": [["a", 1]]}, ["command.0.1: Invalid type. Expected: string, given: integer"]),
        (
            {"features": {"chainOfTrust": "yes"}},
            ["features.chainOfTrust: Invalid type. Expected: boolean, given: string"],
        ),
        ({"features": {"bogus": True}}, ["features: Additional property bogus is not allowed"]),
        ({"logs": {"live": 1}}, ["logs.live: Invalid type. Expected: string, given: integer"]),
        ({"osGroups": ["a", "b", "a"]}, ["osGroups: array items[0,2] must be unique"]),
        (
            {"onExitStatus": {"retry": [5, 5.0]}},
            ["onExitStatus.retry: array items[0,1] must be unique"],
        ),
        (
            {"onExitStatus": {"retry": [2, 2, 2]}},
            [
                "onExitStatus.retry: array items[0,1] must be unique",
                "onExitStatus.retry: array items[1,2] must be unique",
            ],
        ),
        (
            {"onExitStatus": {"retry": "1"}},
            ["onExitStatus.retry: Invalid type. Expected: array, given: string"],
        ),
        ({"supersederUrl": "not a url"}, ["supersederUrl: Does not match format 'uri'"]),
        (
            {"taskclusterProxyInterface": "eth0"},
            [
                "taskclusterProxyInterface: taskclusterProxyInterface must be one of the "
                'following: "localhost", "docker-bridge"'
            ],
        ),
        # A value of the wrong type gets only the type line, as gojsonschema stopped there.
        (
            {"artifacts": [{"type": "file", "path": "a", "contentEncoding": 5}]},
            ["artifacts.0.contentEncoding: Invalid type. Expected: string, given: integer"],
        ),
        (
            {"artifacts": [{"type": "link", "path": "a", "expires": "tomorrow"}]},
            [
                "artifacts.0.expires: Does not match format 'date-time'",
                'artifacts.0.type: artifacts.0.type must be one of the following: "file", "directory"',
            ],
        ),
        (
            {"artifacts": [{"name": "x"}]},
            [
                "artifacts.0: path is required",
                "artifacts.0: type is required",
            ],
        ),
    ],
)
def test_message_kinds(extra: dict[str, Any], expected: list[str]) -> None:
    assert problems(payload(**extra)) == expected


@pytest.mark.parametrize(
    ("mount", "expected"),
    [
        (
            {"file": "f", "content": {"taskId": "not-a-slug", "artifact": "a"}},
            [
                f"mounts.0: {ONE_OF}",
                f"mounts.0.content: {ONE_OF}",
                "mounts.0.content.taskId: Does not match pattern "
                "'^[A-Za-z0-9_-]{8}[Q-T][A-Za-z0-9_-][CGKOSWaeimquy26-][A-Za-z0-9_-]{10}[AQgw]$'",
            ],
        ),
        (
            {"file": "f", "content": {"url": "https://e.com/x", "sha256": "ABC"}},
            [
                f"mounts.0: {ONE_OF}",
                f"mounts.0.content: {ONE_OF}",
                "mounts.0.content.sha256: Does not match pattern '^[a-f0-9]{64}$'",
            ],
        ),
        (
            {"file": "f", "content": {"url": "example.com/x"}},
            [
                f"mounts.0: {ONE_OF}",
                f"mounts.0.content: {ONE_OF}",
                "mounts.0.content.url: Does not match format 'uri'",
            ],
        ),
        (
            {"file": "f", "content": {"raw": "x" * 65537}},
            [
                f"mounts.0: {ONE_OF}",
                f"mounts.0.content: {ONE_OF}",
                "mounts.0.content.raw: String length must be less than or equal to 65536",
            ],
        ),
        (
            {"file": "f", "content": {"namespace": "n" * 256, "artifact": "a" * 1025}},
            [
                f"mounts.0: {ONE_OF}",
                f"mounts.0.content: {ONE_OF}",
                "mounts.0.content.artifact: String length must be less than or equal to 1024",
                "mounts.0.content.namespace: String length must be less than or equal to 255",
            ],
        ),
        (
            {"directory": "d", "cacheName": "c", "format": "zip"},
            [f"mounts.0: {ONE_OF}", "mounts.0: Has a dependency on content"],
        ),
        (
            {"directory": "d", "cacheName": "c", "content": {"raw": "x"}},
            [f"mounts.0: {ONE_OF}", "mounts.0: Has a dependency on format"],
        ),
        (
            {"directory": "d", "content": {"raw": "x"}, "format": "tar.7z"},
            [
                f"mounts.0: {ONE_OF}",
                "mounts.0.format: mounts.0.format must be one of the following: "
                '"7z", "rar", "tar", "tar.br", "tar.bz2", "tar.gz", "tar.lz", "tar.lz4", '
                '"tar.mz", "tar.sz", "tar.xz", "tar.zst", "tar.zz", "zip"',
            ],
        ),
        (
            {"file": "f"},
            [f"mounts.0: {ONE_OF}", "mounts.0: content is required"],
        ),
        (
            "cache",
            [f"mounts.0: {ONE_OF}", "mounts.0: Invalid type. Expected: object, given: string"],
        ),
        (
            {"directory": "d", "content": {"base64": "%%"}, "format": "zip", "x": 1},
            [
                f"mounts.0: {ONE_OF}",
                "mounts.0: Additional property x is not allowed",
                f"mounts.0.content: {ONE_OF}",
                "mounts.0.content.base64: Does not match pattern '^[A-Za-z0-9/+]+[=]{0,2}$'",
            ],
        ),
    ],
    ids=[
        "bad-task-id",
        "bad-sha",
        "relative-url",
        "raw-too-long",
        "indexed-too-long",
        "format-without-content",
        "content-without-format",
        "unknown-archive-format",
        "file-without-content",
        "not-an-object",
        "extra-key-and-bad-base64",
    ],
)
def test_mount_problems_name_the_closest_kind(mount: object, expected: list[str]) -> None:
    assert problems(payload(mounts=[mount])) == expected


def test_several_problems_sorted_by_path_with_numeric_indices() -> None:
    artifacts: list[dict[str, Any]] = [{"type": "file", "path": f"p{i}"} for i in range(12)]
    artifacts[10]["contentEncoding"] = "br"
    artifacts[2]["optional"] = "yes"
    value = payload(
        artifacts=artifacts,
        zzz=1,
        env={"B": 2, "A": 1},
        maxRunTime=-5,
        onExitStatus={"retry": [0]},
    )
    assert problems(value) == [
        "(root): Additional property zzz is not allowed",
        "artifacts.2.optional: Invalid type. Expected: boolean, given: string",
        "artifacts.10.contentEncoding: artifacts.10.contentEncoding must be one of the "
        'following: "identity", "gzip"',
        "env.A: Invalid type. Expected: string, given: integer",
        "env.B: Invalid type. Expected: string, given: integer",
        "maxRunTime: Must be greater than or equal to 1",
        "onExitStatus.retry.0: Must be greater than or equal to 1",
    ]


def test_validation_does_not_change_the_payload() -> None:
    value = copy.deepcopy(EVERYTHING)
    value["features"]["bogus"] = 1
    before = copy.deepcopy(value)
    assert problems(value) != []
    assert value == before


@pytest.mark.parametrize(
    ("value", "given"),
    [
        ([], "array"),
        ("{}", "string"),
        (None, "null"),
        (3, "integer"),
        (2.5, "number"),
        (True, "boolean"),
    ],
)
def test_a_payload_that_is_not_an_object_gives_one_line(value: object, given: str) -> None:
    line = f"(root): Invalid type. Expected: object, given: {given}"
    assert payload_problems_for_non_object(value) == [line]
    assert problems(value) == [line]


def test_an_object_has_no_non_object_problem() -> None:
    assert payload_problems_for_non_object({}) == []


def test_log_lines_are_the_seeds() -> None:
    assert invalid_payload_log_lines(["(root): command is required"]) == [
        "TASK FAIL since the task payload is invalid. See errors:",
        "- (root): command is required",
    ]
    assert INVALID_PAYLOAD_HEADER == "TASK FAIL since the task payload is invalid. See errors:"


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("https://example.com/a?taskId=x", True),
        ("http://localhost:8080/", True),
        ("mailto:someone@example.com", True),
        ("s3://bucket/key%20name", True),
        ("example.com/a", False),
        ("/relative/path", False),
        ("", False),
        ("http://exa mple.com/", False),
        ("http://example.com:port/", False),
        ("http://example.com/%zz", False),
        ("http:\\\\example.com", False),
        ("http://example.com/\n", False),
        ("1http://example.com", False),
    ],
)
def test_uri_format(text: str, ok: bool) -> None:
    assert is_uri(text) is ok
    assert (problems(payload(supersederUrl=text)) == []) is ok


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("2030-01-25T23:31:13.787Z", True),
        ("2030-01-25T23:31:13+01:00", True),
        ("2030-01-25", False),
        ("2030-01-25 23:31:13Z", False),
        ("2030-13-25T23:31:13Z", False),
    ],
)
def test_date_time_format(text: str, ok: bool) -> None:
    value = payload(artifacts=[{"type": "file", "path": "a", "expires": text}])
    assert (problems(value) == []) is ok
