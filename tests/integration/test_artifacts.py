"""Artifacts end to end (modern-gw.md §5.4; TARGET §9) with the real worker and tc-local."""

from datetime import UTC, datetime, timedelta

from generic_worker.timefmt import parse_tc, to_tc

from .harness import GW

HELLO_GOODBYE = [["echo", "hello world!"], ["echo", "goodbye world!"]]
X_TXT = "test artifact\n"


def copy_x(path: str) -> list[str]:
    return ["/bin/sh", "-c", f"mkdir -p \"$(dirname '{path}')\" && printf 'test artifact\\n' > '{path}'"]


async def test_logs_are_published(gw: GW):
    task_id = await gw.submit({"command": HELLO_GOODBYE, "maxRunTime": 30})
    await gw.run()
    artifacts = await gw.artifacts(task_id)
    backing = artifacts["public/logs/live_backing.log"]
    assert backing["storageType"] == "s3"
    assert backing["contentType"] == "text/plain; charset=utf-8"
    status, headers, _ = await gw.fetch(task_id, "public/logs/live_backing.log")
    assert status == 200
    assert headers["Content-Encoding"] == "gzip"
    assert parse_tc(backing["expires"]) == parse_tc((await gw.status(task_id))["expires"])


async def test_missing_artifact_fails_task(gw: GW):
    payload = {
        "command": HELLO_GOODBYE,
        "maxRunTime": 30,
        "artifacts": [{"type": "file", "path": "Nonexistent/art i fact.txt"}],
    }
    task_id = await gw.submit(payload)
    await gw.run()
    assert await gw.resolution(task_id) == "failed/failed"
    artifacts = await gw.artifacts(task_id)
    assert artifacts["Nonexistent/art i fact.txt"]["storageType"] == "error"
    log = await gw.log(task_id)
    assert "TASK FAILURE during artifact upload: file-missing-on-worker: Could not read file" in log
    status, _, body = await gw.fetch(task_id, "Nonexistent/art i fact.txt")
    assert status == 424
    assert b"file-missing-on-worker" in body


async def test_missing_optional_file_artifact_does_not_fail(gw: GW):
    payload = {
        "command": HELLO_GOODBYE,
        "maxRunTime": 30,
        "artifacts": [{"type": "file", "path": "Nonexistent/artifact.txt", "optional": True}],
    }
    task_id = await gw.submit(payload)
    await gw.run()
    assert await gw.resolution(task_id) == "completed/completed"
    artifacts = await gw.artifacts(task_id)
    assert set(artifacts) == {
        "Nonexistent/artifact.txt",
        "public/logs/live_backing.log",
        "public/logs/live.log",
    }
    assert artifacts["Nonexistent/artifact.txt"]["storageType"] == "error"
    log = await gw.log(task_id)
    assert "hello world!" in log and "goodbye world!" in log


async def test_missing_optional_directory_artifact_does_not_fail(gw: GW):
    payload = {
        "command": HELLO_GOODBYE,
        "maxRunTime": 30,
        "artifacts": [{"type": "directory", "path": "Nonexistent/dir", "optional": True}],
    }
    task_id = await gw.submit(payload)
    await gw.run()
    assert await gw.resolution(task_id) == "completed/completed"
    assert (await gw.artifacts(task_id))["Nonexistent/dir"]["storageType"] == "error"


async def test_public_directory_artifact(gw: GW):
    expires = to_tc(datetime.now(UTC) + timedelta(days=1))
    payload = {
        "command": [copy_x("public/build/X.txt")],
        "maxRunTime": 30,
        "artifacts": [{"type": "directory", "path": "public", "expires": expires}],
    }
    task_id = await gw.submit(payload)
    await gw.run()
    assert await gw.resolution(task_id) == "completed/completed"
    artifacts = await gw.artifacts(task_id)
    assert set(artifacts) == {"public/build/X.txt", "public/logs/live_backing.log", "public/logs/live.log"}
    x = artifacts["public/build/X.txt"]
    assert x["contentType"] == "text/plain; charset=utf-8"
    assert x["storageType"] == "s3"
    assert parse_tc(x["expires"]) == parse_tc(expires)
    status, headers, _ = await gw.fetch(task_id, "public/build/X.txt")
    assert headers["Content-Encoding"] == "gzip"
    assert (await gw.content(task_id, "public/build/X.txt")).decode() == X_TXT


async def test_file_artifact_with_name_content_type_and_identity(gw: GW):
    payload = {
        "command": [copy_x("out/X.txt"), ["/bin/sh", "-c", "printf 'Not really a jpg\\n' > out/d.jpg"]],
        "maxRunTime": 30,
        "artifacts": [
            {
                "type": "file",
                "path": "out/X.txt",
                "name": "public/build/firefox.exe",
                "contentType": "application/octet-stream",
            },
            {"type": "file", "path": "out/d.jpg", "name": "public/d.jpg"},
            {"type": "file", "path": "out/X.txt", "name": "public/plain.txt", "contentEncoding": "identity"},
        ],
    }
    task_id = await gw.submit(payload)
    await gw.run()
    assert await gw.resolution(task_id) == "completed/completed"
    artifacts = await gw.artifacts(task_id)
    assert artifacts["public/build/firefox.exe"]["contentType"] == "application/octet-stream"
    assert artifacts["public/d.jpg"]["contentType"] == "image/jpeg"
    _, headers, body = await gw.fetch(task_id, "public/d.jpg")
    assert "Content-Encoding" not in headers or headers["Content-Encoding"] == "identity"
    assert body == b"Not really a jpg\n"
    _, headers, body = await gw.fetch(task_id, "public/plain.txt")
    assert headers.get("Content-Encoding", "identity") == "identity"
    assert body.decode() == X_TXT


async def test_conflicting_file_artifacts_are_malformed(gw: GW):
    payload = {
        "command": [copy_x("a/X.txt"), ["/bin/sh", "-c", "mkdir -p b && echo other > b/X.json"]],
        "maxRunTime": 30,
        "artifacts": [
            {"type": "file", "path": "a/X.txt", "name": "public/build/X.txt"},
            {"type": "file", "path": "b/X.json", "name": "public/build/X.txt"},
        ],
    }
    task_id = await gw.submit(payload)
    await gw.run()
    assert await gw.resolution(task_id) == "exception/malformed-payload"
    assert set(await gw.artifacts(task_id)) == {
        "public/build/X.txt",
        "public/logs/live_backing.log",
        "public/logs/live.log",
    }
    assert "There was a conflict uploading artifact public/build/X.txt" in await gw.log(task_id)


async def test_artifact_as_file_and_directory(gw: GW):
    payload = {
        "command": [copy_x("public/build/X.txt")],
        "maxRunTime": 30,
        "artifacts": [
            {"type": "file", "path": "public/build/X.txt", "name": "public/build/X.txt"},
            {"type": "directory", "path": "public/build", "name": "public/build"},
        ],
    }
    task_id = await gw.submit(payload)
    await gw.run()
    assert await gw.resolution(task_id) == "completed/completed"
    assert set(await gw.artifacts(task_id)) == {
        "public/build/X.txt",
        "public/logs/live_backing.log",
        "public/logs/live.log",
    }


async def test_default_expiry_is_task_expiry(gw: GW):
    payload = {
        "command": [copy_x("dir/X.txt")],
        "maxRunTime": 30,
        "artifacts": [
            {"type": "file", "path": "dir/X.txt"},
            {"type": "directory", "path": "dir", "name": "d"},
        ],
    }
    task_id = await gw.submit(payload)
    await gw.run()
    expires = parse_tc((await gw.status(task_id))["expires"])
    artifacts = await gw.artifacts(task_id)
    assert parse_tc(artifacts["dir/X.txt"]["expires"]) == expires
    assert parse_tc(artifacts["d/X.txt"]["expires"]) == expires


async def test_relative_path_with_dotdot_that_stays_inside(gw: GW):
    payload = {
        "command": [copy_x("inside/X.txt")],
        "maxRunTime": 30,
        "artifacts": [{"type": "file", "path": "inside/../inside/X.txt", "name": "public/x.txt"}],
    }
    task_id = await gw.submit(payload)
    await gw.run()
    assert await gw.resolution(task_id) == "completed/completed"
    assert (await gw.content(task_id, "public/x.txt")).decode() == X_TXT


async def test_paths_escaping_the_task_dir_are_refused(gw: GW):
    secret = gw.tmp / "outside-secret.txt"
    secret.write_text("the worker's secret\n")
    payload = {
        "command": [
            [
                "/bin/sh",
                "-c",
                f"ln -s {secret} link.txt && mkdir d && ln -s {secret} d/leak.txt && echo ok > d/fine.txt",
            ]
        ],
        "maxRunTime": 30,
        "artifacts": [
            {"type": "file", "path": "../outside-secret.txt", "name": "public/dotdot.txt"},
            {"type": "file", "path": "link.txt", "name": "public/link.txt"},
            {"type": "file", "path": str(secret), "name": "public/absolute.txt"},
            {"type": "directory", "path": "d", "name": "public/d"},
        ],
    }
    task_id = await gw.submit(payload)
    await gw.run()
    assert await gw.resolution(task_id) == "failed/failed"
    artifacts = await gw.artifacts(task_id)
    for name in ("public/dotdot.txt", "public/link.txt", "public/absolute.txt"):
        assert artifacts[name]["storageType"] == "error", name
        status, _, body = await gw.fetch(task_id, name)
        assert b"invalid-resource-on-worker" in body
        assert b"the worker's secret" not in body
    assert (await gw.content(task_id, "public/d/fine.txt")) == b"ok\n"
    assert artifacts["public/d/leak.txt"]["storageType"] == "error"  # a link out of the task dir


async def test_reserved_artifact_names_are_not_uploaded_from_the_task(gw: GW):
    payload = {
        "command": [
            ["/bin/sh", "-c", "mkdir -p public/logs && echo fake > public/logs/live_backing.log"],
            ["echo", "real log"],
        ],
        "maxRunTime": 30,
        "artifacts": [{"type": "file", "path": "public/logs/live_backing.log"}],
    }
    task_id = await gw.submit(payload)
    await gw.run()
    assert await gw.resolution(task_id) == "completed/completed"
    log = await gw.log(task_id)
    assert "real log" in log
    assert (
        "Not uploading artifact public/logs/live_backing.log found in task.payload.artifacts section" in log
    )


async def test_custom_backing_log_name_and_disabled_backing_log(gw: GW):
    task_id = await gw.submit(
        {"command": HELLO_GOODBYE, "maxRunTime": 30, "logs": {"backing": "public/banana_backing.log"}}
    )
    await gw.run()
    assert "goodbye world!" in (await gw.content(task_id, "public/banana_backing.log")).decode()
    task_id = await gw.submit({"command": HELLO_GOODBYE, "maxRunTime": 30, "features": {"backingLog": False}})
    await gw.run()
    assert await gw.resolution(task_id) == "completed/completed"
    assert "public/logs/live_backing.log" not in await gw.artifacts(task_id)


async def test_backing_log_uploaded_for_malformed_payload(gw: GW):
    task_id = await gw.submit({"command": [], "maxRunTime": 30})
    await gw.run()
    assert await gw.resolution(task_id) == "exception/malformed-payload"
    assert "TASK FAIL since the task payload is invalid" in await gw.log(task_id)


async def test_object_artifacts(gw: GW):
    big = 100_000
    payload = {
        "command": [["/bin/sh", "-c", f"echo small > small.txt && head -c {big} /dev/urandom > big.bin"]],
        "maxRunTime": 30,
        "artifacts": [
            {"type": "file", "path": "small.txt", "name": "public/small.txt"},
            {"type": "file", "path": "big.bin", "name": "public/big.bin"},
        ],
    }
    task_id = await gw.submit(payload)
    await gw.run(createObjectArtifacts=True)
    assert await gw.resolution(task_id) == "completed/completed"
    artifacts = await gw.artifacts(task_id)
    assert artifacts["public/small.txt"]["storageType"] == "object"
    assert artifacts["public/big.bin"]["storageType"] == "object"
    task_dir = next(gw.task_dirs())
    assert await gw.content(task_id, "public/big.bin") == (task_dir / "big.bin").read_bytes()
    assert await gw.content(task_id, "public/small.txt") == b"small\n"
