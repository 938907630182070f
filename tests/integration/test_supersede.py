"""Supersede against a real tc-local and a small superseder service on loopback (TARGET §10, seed-gw.md §2.4)."""

import json
import socket

import pytest

from generic_worker.exitcodes import ExitCode
from generic_worker.features.supersede import parse_supersedes, superseder_query

from .harness import GW
from .superseder_service import Superseder

NOT_ABLE = "[supersede] Not able to see if this task has been superseded!"


def payload(superseder_url: str) -> dict[str, object]:
    return {
        "command": [["/bin/sh", "-c", "echo commands ran"]],
        "maxRunTime": 30,
        "supersederUrl": superseder_url,
    }


async def test_a_superseded_task_runs_no_commands(
    gw: GW, superseder: Superseder, caplog: pytest.LogCaptureFixture
):
    task_id = await gw.submit(payload(superseder.url + "?project=gecko"))
    superseder.answer(["newer-task-id-aaaaaaaa", task_id])
    assert await gw.run() == ExitCode.TASKS_COMPLETE
    # Today's queue (and tc-local) refuses the reason `superseded` (400): the run resolves
    # completed rather than staying `running` until its claim expires (TARGET §10).
    assert await gw.resolution(task_id) == "completed/completed"
    refusals = [r.getMessage() for r in caplog.records if "refused exception/superseded" in r.getMessage()]
    assert len(refusals) == 1 and "resolving completed/completed instead" in refusals[0]
    assert superseder.queries == [{"project": "gecko", "taskId": task_id}]
    log = await gw.log(task_id)
    assert "commands ran" not in log and "Executing command" not in log
    assert f"Task {task_id} has been superseded by task newer-task-id-aaaaaaaa" in log
    artifacts = await gw.artifacts(task_id)
    assert artifacts["public/superseded-by.json"]["contentType"] == "application/json"
    assert json.loads(await gw.content(task_id, "public/superseded-by.json")) == {
        "taskId": "newer-task-id-aaaaaaaa"
    }
    local = next(gw.task_dirs()) / "generic-worker" / "superseded-by.json"
    assert local.read_text() == '{\n  "taskId": "newer-task-id-aaaaaaaa"\n}\n'
    assert "public/logs/live.log" not in artifacts  # nothing after supersede started


@pytest.mark.parametrize("first_is_this_task", [True, False], ids=["this-task-first", "empty-list"])
async def test_not_superseded_runs_normally(gw: GW, superseder: Superseder, first_is_this_task: bool):
    task_id = await gw.submit(payload(superseder.url))
    superseder.answer([task_id, "older-task-id-bbbbbbbb"] if first_is_this_task else [])
    assert await gw.run() == ExitCode.TASKS_COMPLETE
    assert await gw.resolution(task_id) == "completed/completed"
    assert superseder.queries == [{"taskId": task_id}]
    log = await gw.log(task_id)
    assert "commands ran" in log and "[supersede]" not in log
    assert "public/superseded-by.json" not in await gw.artifacts(task_id)


@pytest.mark.parametrize(
    ("status", "body", "warning"),
    [
        (200, b"not json", "Not able to interpret response from supersederUrl"),
        (200, b'{"supersedes": "abc"}', "Not able to interpret response from supersederUrl"),
        (200, b"[1, 2]", "Not able to interpret response from supersederUrl"),
        (404, b"{}", "[supersede] Problem accessing supersederUrl: HTTP status 404 Not Found"),
        (503, b"{}", "[supersede] Problem accessing supersederUrl: HTTP status 503 Service Unavailable"),
    ],
)
async def test_a_bad_answer_only_warns(
    gw: GW, superseder: Superseder, status: int, body: bytes, warning: str
):
    superseder.status, superseder.body = status, body
    task_id = await gw.submit(payload(superseder.url))
    assert await gw.run() == ExitCode.TASKS_COMPLETE
    assert await gw.resolution(task_id) == "completed/completed"
    log = await gw.log(task_id)
    assert warning in log and NOT_ABLE in log and "commands ran" in log
    assert len(superseder.queries) == (3 if status >= 500 else 1)  # 5xx is retried


async def test_an_unreachable_superseder_only_warns(gw: GW):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound but not listening: connections are refused
        task_id = await gw.submit(payload(f"http://127.0.0.1:{closed.getsockname()[1]}/supersedes"))
        assert await gw.run() == ExitCode.TASKS_COMPLETE
    assert await gw.resolution(task_id) == "completed/completed"
    log = await gw.log(task_id)
    assert "[supersede] Problem accessing supersederUrl: ClientConnectorError" in log
    assert NOT_ABLE in log and "commands ran" in log


def test_task_id_is_appended_to_the_query():
    assert superseder_query("http://s/x", "T") == "http://s/x?taskId=T"
    assert superseder_query("http://s/x?a=1&b=%20", "T") == "http://s/x?a=1&b=%20&taskId=T"
    assert superseder_query("https://s:8/x/?", "T") == "https://s:8/x/?taskId=T"
    assert superseder_query("http://s/x?a=1#frag", "T") == "http://s/x?a=1&taskId=T#frag"


def test_parse_supersedes():
    assert parse_supersedes(b'{"supersedes": ["a", "b"]}') == ["a", "b"]
    assert parse_supersedes(b'{"supersedes": [], "other": 1}') == []
    for bad in (b"", b"null", b"{}", b'{"supersedes": [1]}', b'{"supersedes": {"a": 1}}', b"\xff"):
        with pytest.raises(ValueError):
            parse_supersedes(bad)
