"""The certificate document: members, order, exact bytes, additional data."""

from __future__ import annotations

import json

from generic_worker.config import config_from_mapping
from generic_worker.cot import RunIdentity, build_certificate, environment_of, render, with_additional_data

RUN = RunIdentity(task_id="abcTASKid", run_id=0, worker_group="test-worker-group", worker_id="test-worker-id")
DEFINITION = {
    "workerType": "wt",
    "provisionerId": "prov",
    "taskGroupId": "abcTASKid",
    "schedulerId": "test-scheduler",
    "created": "2026-12-06T05:00:00.000Z",
    "deadline": "2026-12-06T06:00:00.000Z",
    "expires": "2027-12-06T05:00:00.000Z",
    "dependencies": [],
    "scopes": ["queue:get-artifact:x"],
    "routes": [],
    "priority": "lowest",
    "retries": 5,
    "requires": "all-completed",
    "tags": {"z": "1", "a": "2"},
    "extra": {},
    "metadata": {"source": "https://s", "owner": "o@example.com", "name": "n", "description": "<d> & e"},
    "payload": {"maxRunTime": 30, "command": [["true"]], "features": {"chainOfTrust": True}},
}
ENV = {
    "publicIpAddress": "12.34.56.78",
    "privateIpAddress": "87.65.43.21",
    "instanceId": "i",
    "instanceType": "t",
    "region": "r",
}


def config(**extra: object):
    base = {"rootURL": "http://x", "accessToken": "a", "clientId": "c", "workerId": "w", "workerType": "t"}
    return config_from_mapping({**base, "enableLiveLog": False, **extra})[0]


def test_members_come_in_upstreams_order_with_sorted_maps():
    cert = build_certificate(RUN, DEFINITION, {"b/y": "22", "a/x": "11"}, ENV)
    assert list(cert) == [
        "chainOfTrustVersion",
        "artifacts",
        "task",
        "taskId",
        "runId",
        "workerGroup",
        "workerId",
        "environment",
    ]
    assert cert["chainOfTrustVersion"] == 1
    assert cert["artifacts"] == {"a/x": {"sha256": "11"}, "b/y": {"sha256": "22"}}
    assert list(cert["artifacts"]) == ["a/x", "b/y"]
    assert list(cert["task"]) == sorted(DEFINITION)
    assert list(cert["task"]["metadata"]) == ["description", "name", "owner", "source"]
    assert list(cert["task"]["tags"]) == ["a", "z"]
    # The payload keeps the queue's order (Go keeps it as raw JSON).
    assert list(cert["task"]["payload"]) == ["maxRunTime", "command", "features"]
    assert cert["task"] == DEFINITION
    assert (cert["taskId"], cert["runId"], cert["workerGroup"], cert["workerId"]) == (
        "abcTASKid",
        0,
        "test-worker-group",
        "test-worker-id",
    )


def test_bytes_are_gos_marshal_indent():
    cert = build_certificate(
        RUN, {"metadata": {"name": "<b>&</b> \u00e9\u2028"}}, {"x": "00"}, {"region": ""}
    )
    expected = (
        "{\n"
        '  "chainOfTrustVersion": 1,\n'
        '  "artifacts": {\n'
        '    "x": {\n'
        '      "sha256": "00"\n'
        "    }\n"
        "  },\n"
        '  "task": {\n'
        '    "metadata": {\n'
        '      "name": "\\u003cb\\u003e\\u0026\\u003c/b\\u003e \u00e9\\u2028"\n'
        "    }\n"
        "  },\n"
        '  "taskId": "abcTASKid",\n'
        '  "runId": 0,\n'
        '  "workerGroup": "test-worker-group",\n'
        '  "workerId": "test-worker-id",\n'
        '  "environment": {\n'
        '    "region": ""\n'
        "  }\n"
        "}"
    )
    data = render(cert)
    assert data == expected.encode("utf-8")
    assert json.loads(data) == cert


def test_empty_objects_and_lists_render_compactly():
    data = render(build_certificate(RUN, {"dependencies": [], "extra": {}}, {}, {}))
    assert b'"artifacts": {},' in data
    assert b'"dependencies": [],' in data


def test_environment_names_the_configured_fields_and_omits_an_unset_public_ip():
    full = config(
        publicIP="12.34.56.78",
        privateIP="87.65.43.21",
        instanceId="i-1",
        instanceType="p3.enormous",
        region="r",
    )
    assert environment_of(full) == {
        "publicIpAddress": "12.34.56.78",
        "privateIpAddress": "87.65.43.21",
        "instanceId": "i-1",
        "instanceType": "p3.enormous",
        "region": "r",
    }
    assert list(environment_of(full)) == [
        "publicIpAddress",
        "privateIpAddress",
        "instanceId",
        "instanceType",
        "region",
    ]
    bare = environment_of(config())
    assert "publicIpAddress" not in bare
    assert bare == {"privateIpAddress": "", "instanceId": "", "instanceType": "", "region": ""}


def test_additional_data_is_merged_under_the_certificate():
    # Upstream's test data: the task may add members, never change the worker's.
    additional = {"foo": "bar1", "task": {"foo": "bar2", "schedulerId": "fake-scheduler-id"}, "runId": 7}
    cert = build_certificate(RUN, DEFINITION, {"a": "1"}, ENV)
    merged = with_additional_data(cert, additional)
    assert merged["foo"] == "bar1"
    assert merged["task"]["foo"] == "bar2"
    assert merged["task"]["schedulerId"] == "test-scheduler"
    assert merged["task"]["provisionerId"] == "prov"
    assert merged["runId"] == 0
    assert merged["environment"] == ENV
    assert additional["task"] == {"foo": "bar2", "schedulerId": "fake-scheduler-id"}  # inputs untouched
    data = render(merged, sort_keys=True)
    keys = list(json.loads(data))
    assert keys == sorted(keys)


def test_d2g_image_hashes_are_the_workers_and_cannot_be_forged():
    # Upstream merges its own d2g file under the certificate, which the task could rewrite;
    # here the hashes are part of the worker's document, so forged values lose.
    image = {"imageHash": "sha256:" + "1" * 64, "imageArtifactHash": "sha256:" + "2" * 64}
    env = environment_of(config(), image)
    assert env["imageHash"] == image["imageHash"] and env["imageArtifactHash"] == image["imageArtifactHash"]
    forged = {"environment": {"imageHash": "sha256:forged", "imageArtifactHash": "x", "note": "added"}}
    merged = with_additional_data(build_certificate(RUN, DEFINITION, {}, env), forged)
    assert merged["environment"] == {**env, "note": "added"}
