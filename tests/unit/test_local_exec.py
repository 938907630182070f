"""The pure parts of `generic-worker exec`: task files, config layering, task completion, artifact paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from generic_worker.local.artifacts_copy import local_path
from generic_worker.local.platform import complete_task, merge_config
from generic_worker.local.taskfile import TaskFileError, parse_task


def test_a_bare_payload_becomes_a_task_and_a_definition_is_kept():
    assert parse_task('maxRunTime: 5\ncommand: [["true"]]\n', "t") == {
        "payload": {"maxRunTime": 5, "command": [["true"]]}
    }
    definition = parse_task('{"payload": {"maxRunTime": 5}, "scopes": ["a"], "dependencies": []}', "t")
    assert definition == {"payload": {"maxRunTime": 5}, "scopes": ["a"]}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2]", "must hold an object"),
        ("payload: 3", "`payload` must be an object"),
        ("a: [", "neither JSON nor YAML"),
    ],
)
def test_unusable_task_files_say_why(text, message):
    with pytest.raises(TaskFileError, match=message):
        parse_task(text, "t.yml")


def test_config_layers_compare_keys_case_insensitively():
    merged = merge_config(
        {"cachesDir": "/d", "publicIP": "127.0.0.1"}, {"cachesdir": "/mine", "ROOTURL": "x"}, {"rootURL": "y"}
    )
    assert merged == {"publicIP": "127.0.0.1", "cachesdir": "/mine", "rootURL": "y"}


def test_complete_task_uses_the_local_queue_and_fresh_times():
    task = {
        "taskQueueId": "real/queue",
        "created": "2001-01-01T00:00:00.000Z",
        "payload": {},
        "metadata": {"name": "n"},
    }
    done = complete_task(task, "file", ("p", "w"), "sched")
    assert "taskQueueId" not in done
    assert (done["provisionerId"], done["workerType"], done["schedulerId"]) == ("p", "w", "sched")
    assert (
        done["created"] > "2020" and done["deadline"] > done["created"] and done["expires"] > done["deadline"]
    )
    assert done["metadata"]["name"] == "n" and done["metadata"]["owner"]
    assert task["created"] == "2001-01-01T00:00:00.000Z"  # the caller's dict is not changed


@pytest.mark.parametrize("name", ["../escape", "public/../../x", "/etc/passwd", "a//b", "public/./x", ""])
def test_artifact_names_that_leave_the_folder_are_refused(name):
    assert local_path(Path("/out"), name) is None


def test_artifact_names_become_relative_paths():
    assert local_path(Path("/out"), "public/logs/live_backing.log") == Path(
        "/out/public/logs/live_backing.log"
    )
