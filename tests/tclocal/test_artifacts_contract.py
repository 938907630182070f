"""Artifacts through the official client: s3, object, reference, link and error artifacts."""

from __future__ import annotations

import gzip
import os
from typing import Any

import aiohttp
import pytest
import slugid
import taskcluster.aio
from taskcluster.aio.download import downloadArtifactToBuf
from taskcluster.aio.upload import uploadFromBuf
from taskcluster.exceptions import TaskclusterArtifactError, TaskclusterRestFailure

from tclocal.core.timestamps import from_now

from .conftest import ClaimedRun, Clients, refused, start_run
from .deployment import Deployment


@pytest.fixture
async def run(tc: Deployment, clients: Clients, queue: Any, worker_type: str) -> ClaimedRun:
    return await start_run(tc, clients, queue, worker_type)


async def put(session: aiohttp.ClientSession, url: str, body: bytes, **headers: str) -> None:
    async with session.put(url, data=body, headers=headers) as response:
        assert response.status == 200, await response.text()


async def test_s3_artifact_round_trip_keeps_headers(
    run: ClaimedRun, queue: Any, session: aiohttp.ClientSession
) -> None:
    body = gzip.compress(b"line one\nline two\n")
    created = await run.create(
        "public/logs/live_backing.log", storageType="s3", contentType="text/plain; charset=utf-8"
    )
    assert created["contentType"] == "text/plain; charset=utf-8"
    await put(
        session,
        created["putUrl"],
        body,
        **{"Content-Type": "text/plain; charset=utf-8", "Content-Encoding": "gzip"},
    )
    found = await queue.getArtifact(run.task_id, 0, "public/logs/live_backing.log")
    assert found["storageType"] == "s3"
    async with session.get(found["url"], auto_decompress=False) as response:
        assert response.status == 200
        assert response.headers["Content-Encoding"] == "gzip"
        assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert await response.read() == body
    async with session.get(found["url"]) as response:
        assert await response.read() == b"line one\nline two\n"
    content = await queue.latestArtifact(run.task_id, "public/logs/live_backing.log")
    assert content["storageType"] == "s3"
    info = await queue.artifactInfo(run.task_id, 0, "public/logs/live_backing.log")
    assert info["name"] == "public/logs/live_backing.log" and info["storageType"] == "s3"
    assert (await queue.latestArtifactInfo(run.task_id, "public/logs/live_backing.log")) == info


@pytest.mark.tclocal_only("tc-local's own blob URLs (its S3 stand-in)")
async def test_blob_urls_are_method_bound_and_signed(run: ClaimedRun, session: aiohttp.ClientSession) -> None:
    created = await run.create("public/x.bin", storageType="s3", contentType="application/octet-stream")
    url = created["putUrl"]
    async with session.get(url) as response:
        assert response.status == 403  # a PUT URL does not allow reading
    async with session.put(url.replace("signature=", "signature=0"), data=b"x") as response:
        assert response.status == 403


async def test_public_artifacts_are_anonymous_private_need_scopes(
    tc: Deployment, run: ClaimedRun, clients: Clients, session: aiohttp.ClientSession
) -> None:
    for name in ("public/a.txt", "private/b.txt"):
        created = await run.create(name, storageType="s3", contentType="text/plain")
        await put(session, created["putUrl"], name.encode(), **{"Content-Type": "text/plain"})
    anonymous = clients.make("queue", None)
    found = await anonymous.getLatestArtifact(run.task_id, "public/a.txt")
    async with session.get(found["url"]) as response:
        assert await response.read() == b"public/a.txt"
    listing = await anonymous.listLatestArtifacts(run.task_id)
    assert {a["name"] for a in listing["artifacts"]} == {"public/a.txt", "private/b.txt"}
    body = await refused(anonymous.getLatestArtifact(run.task_id, "private/b.txt"), 403, "InsufficientScopes")
    assert "queue:get-artifact:private/b.txt" in body["message"]
    client_id = f"tests/reader-{run.task_id}"
    token = await tc.create_client(client_id, ["queue:get-artifact:private/*"])
    reader = clients.make("queue", {"clientId": client_id, "accessToken": token})
    assert (await reader.getArtifact(run.task_id, 0, "private/b.txt"))["storageType"] == "s3"


async def test_error_artifact_is_424(run: ClaimedRun, queue: Any) -> None:
    await run.create(
        "public/missing.txt", storageType="error", reason="file-missing-on-worker", message="no such file"
    )
    with pytest.raises(TaskclusterRestFailure) as err:
        await queue.getArtifact(run.task_id, 0, "public/missing.txt")
    assert err.value.status_code == 424
    assert err.value.body == {"reason": "file-missing-on-worker", "message": "no such file"}
    content = await queue.artifact(run.task_id, 0, "public/missing.txt")
    assert content == {"storageType": "error", "reason": "file-missing-on-worker", "message": "no such file"}
    with pytest.raises(TaskclusterArtifactError):
        await downloadArtifactToBuf(taskId=run.task_id, name="public/missing.txt", queueService=queue)


async def test_reference_replaced_by_link(
    run: ClaimedRun, queue: Any, session: aiohttp.ClientSession
) -> None:
    await run.create(
        "public/logs/live.log",
        storageType="reference",
        url="http://localhost:1/live",
        contentType="text/plain",
    )
    found = await queue.getArtifact(run.task_id, 0, "public/logs/live.log")
    assert found == {"storageType": "reference", "url": "http://localhost:1/live"}
    await run.create(
        "public/logs/live.log",
        storageType="reference",
        url="http://localhost:2/live",
        contentType="text/plain",
    )
    backing = await run.create("public/logs/backing.log", storageType="s3", contentType="text/plain")
    await put(session, backing["putUrl"], b"log", **{"Content-Type": "text/plain"})
    await run.create(
        "public/logs/live.log",
        storageType="link",
        artifact="public/logs/backing.log",
        contentType="text/plain",
    )
    found = await queue.getLatestArtifact(run.task_id, "public/logs/live.log")
    async with session.get(found["url"]) as response:
        assert await response.read() == b"log"
    assert (await queue.artifact(run.task_id, 0, "public/logs/live.log"))["storageType"] == "s3"
    await refused(  # a link cannot go back to a reference
        run.create(
            "public/logs/live.log", storageType="reference", url="http://x/", contentType="text/plain"
        ),
        409,
        "RequestConflict",
    )


async def test_link_cycles_are_refused(run: ClaimedRun, queue: Any) -> None:
    await run.create("public/l1", storageType="link", artifact="public/l2")
    await run.create("public/l2", storageType="link", artifact="public/l1")
    await refused(queue.getArtifact(run.task_id, 0, "public/l1"), 400, "InputError")


async def test_recreate_rules(run: ClaimedRun) -> None:
    first = await run.create("public/r.txt", storageType="s3", contentType="text/plain")
    second = await run.create("public/r.txt", storageType="s3", contentType="text/plain")
    assert first["storageType"] == second["storageType"] == "s3"
    conflicting: list[dict[str, Any]] = [
        {"storageType": "s3", "contentType": "text/html"},
        {"storageType": "error", "reason": "file-missing-on-worker", "message": "m"},
        {"storageType": "s3", "contentType": "text/plain", "expires": from_now(3600)},  # shortened
    ]
    for request in conflicting:
        await refused(run.create("public/r.txt", **request), 409, "RequestConflict")


async def test_create_artifact_errors(run: ClaimedRun, queue: Any, clients: Clients) -> None:
    await refused(run.create("public/bad", storageType="s3"), 400, "InputValidationError")  # no contentType
    late = "2999-01-01T00:00:00.000Z"
    body = await refused(
        run.create("public/bad", storageType="s3", contentType="x/y", expires=late), 400, "InputError"
    )
    assert "after the task expiration" in body["message"]
    await refused(run.create("public/bad", storageType="bogus"), 400, "InputValidationError")
    past = from_now(-3600)
    await refused(
        run.create("public/bad", storageType="s3", contentType="x/y", expires=past), 400, "InputError"
    )
    unknown = {"storageType": "s3", "contentType": "a/b", "expires": run.expires}
    await refused(queue.createArtifact(slugid.nice(), 0, "public/x", unknown), 400, "InputError")
    await refused(queue.createArtifact(run.task_id, 1, "public/x", unknown), 400, "InputError")
    await run.queue.reportCompleted(run.task_id, 0)
    await refused(
        run.create("public/late", storageType="s3", contentType="text/plain"), 409, "RequestConflict"
    )
    await refused(queue.getArtifact(run.task_id, 0, "public/never-created"), 404, "ResourceNotFound")
    await refused(queue.listArtifacts(run.task_id, 3), 404, "ResourceNotFound")
    await refused(queue.listLatestArtifacts(slugid.nice()), 404, "ResourceNotFound")


async def test_names_with_slashes_spaces_and_percent(
    run: ClaimedRun, queue: Any, session: aiohttp.ClientSession
) -> None:
    name = "public/dir with space/odd%2Fname#1.txt"
    created = await run.create(name, storageType="s3", contentType="text/plain")
    await put(session, created["putUrl"], b"odd", **{"Content-Type": "text/plain"})
    listing = await queue.listArtifacts(run.task_id, 0)
    assert [a["name"] for a in listing["artifacts"]] == [name]
    buffer, content_type = await downloadArtifactToBuf(taskId=run.task_id, name=name, queueService=queue)
    assert bytes(buffer) == b"odd" and content_type == "text/plain"


@pytest.mark.parametrize("size", [100, 100_000])
async def test_object_artifact_upload_finish_and_download(
    tc: Deployment, run: ClaimedRun, queue: Any, session: aiohttp.ClientSession, size: int
) -> None:
    data = os.urandom(size)
    name = f"public/object-{size}.bin"
    created = await run.create(name, storageType="object", contentType="application/octet-stream")
    assert created["name"] == f"t/{run.task_id}/0/{name}"
    retried = await run.create(name, storageType="object", contentType="application/octet-stream")
    assert retried["uploadId"] == created["uploadId"]
    not_uploaded = run.queue.finishArtifact(run.task_id, 0, name, {"uploadId": created["uploadId"]})
    await refused(not_uploaded, 400, "InputError")
    await refused(
        run.queue.finishArtifact(run.task_id, 0, name, {"uploadId": slugid.nice()}), 400, "InputError"
    )
    object_service = taskcluster.aio.Object({"rootUrl": tc.root_url, "credentials": created["credentials"]})
    await uploadFromBuf(
        projectId=created["projectId"],
        name=created["name"],
        contentType="application/octet-stream",
        contentLength=len(data),
        expires=run.expires,
        data=data,
        uploadId=created["uploadId"],
        objectService=object_service,
    )
    await refused(queue.artifactInfo(run.task_id, 0, name), 404, "ResourceNotFound")  # only once finished
    await run.queue.finishArtifact(run.task_id, 0, name, {"uploadId": created["uploadId"]})
    await run.queue.finishArtifact(run.task_id, 0, name, {"uploadId": created["uploadId"]})  # idempotent
    buffer, _ = await downloadArtifactToBuf(taskId=run.task_id, name=name, queueService=queue)
    assert bytes(buffer) == data
    finished = run.create(name, storageType="object", contentType="application/octet-stream")
    await refused(finished, 409, "RequestConflict")  # finished: no second upload
    found = await queue.getArtifact(run.task_id, 0, name)
    async with session.get(found["url"]) as response:
        assert await response.read() == data
