"""The object, purge-cache, secrets and index services through the official aio client."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import aiohttp
import pytest
import slugid
import taskcluster
from taskcluster.exceptions import TaskclusterRestFailure

from tclocal.core.timestamps import from_now

from .conftest import Clients, start_run
from .deployment import Deployment


async def test_object_service_data_inline_and_put_url(
    clients: Clients, session: aiohttp.ClientSession
) -> None:
    objects = clients.make("object")
    name, upload_id, expires = f"tests/{slugid.nice()}", slugid.nice(), from_now(3600)
    data = b"inline object"
    created = await objects.createUpload(
        name,
        {
            "projectId": "proj",
            "uploadId": upload_id,
            "expires": expires,
            "proposedUploadMethods": {
                "dataInline": {"contentType": "text/plain", "objectData": base64.b64encode(data).decode()},
                "putUrl": {"contentType": "text/plain", "contentLength": len(data)},
            },
        },
    )
    assert created["uploadMethod"] == {"dataInline": True}
    hashes = {"sha256": hashlib.sha256(data).hexdigest()}
    await objects.finishUpload(name, {"projectId": "proj", "uploadId": upload_id, "hashes": hashes})
    meta = await objects.object(name)
    assert meta["projectId"] == "proj" and meta["hashes"] == hashes
    download = await objects.startDownload(name, {"acceptDownloadMethods": {"getUrl": True}})
    assert download["method"] == "getUrl" and download["hashes"] == hashes
    async with session.get(download["url"]) as response:
        assert await response.read() == data
    simple = await objects.startDownload(name, {"acceptDownloadMethods": {"simple": True}})
    assert simple["method"] == "simple"
    with pytest.raises(TaskclusterRestFailure) as err:
        await objects.startDownload(name, {"acceptDownloadMethods": {}})
    assert err.value.status_code == 406
    with pytest.raises(TaskclusterRestFailure) as err:  # another upload of a finished object
        await objects.createUpload(
            name,
            {"projectId": "proj", "uploadId": slugid.nice(), "expires": expires, "proposedUploadMethods": {}},
        )
    assert err.value.status_code == 409
    other = f"tests/{slugid.nice()}"
    put = await objects.createUpload(
        other,
        {
            "projectId": "proj",
            "uploadId": upload_id,
            "expires": expires,
            "proposedUploadMethods": {"putUrl": {"contentType": "application/x-thing", "contentLength": 3}},
        },
    )
    method = put["uploadMethod"]["putUrl"]
    async with session.put(method["url"], data=b"abc", headers=method["headers"]) as response:
        assert response.status == 200
    await objects.finishUpload(other, {"projectId": "proj", "uploadId": upload_id})
    with pytest.raises(TaskclusterRestFailure) as err:
        await objects.object(f"tests/{slugid.nice()}")
    assert err.value.status_code == 404


async def test_object_scopes(tc: Deployment, clients: Clients) -> None:
    client_id = "tests/object-uploader"
    token = await tc.create_client(client_id, ["object:upload:proj:mine/*"])
    objects = clients.make("object", {"clientId": client_id, "accessToken": token})
    body = {
        "projectId": "proj",
        "uploadId": slugid.nice(),
        "expires": from_now(3600),
        "proposedUploadMethods": {},
    }
    assert (await objects.createUpload("mine/one", body))["uploadMethod"] == {}
    with pytest.raises(TaskclusterRestFailure) as err:
        await objects.createUpload("theirs/one", body)
    assert err.value.status_code == 403


async def test_purge_cache(tc: Deployment, clients: Clients) -> None:
    purge = clients.make("purge-cache")
    pool = f"tc-local/{slugid.nice().lower().replace('_', '-')[:10]}"
    before = from_now(-1)
    await purge.purgeCache(pool, {"cacheName": "cargo"})
    await purge.purgeCache(pool, {"cacheName": "npm"})
    requests = (await purge.purgeRequests(pool, query={"since": before}))["requests"]
    assert sorted(r["cacheName"] for r in requests) == ["cargo", "npm"]
    assert (await purge.purgeRequests(pool, query={"since": from_now(60)}))["requests"] == []
    everything = await purge.allPurgeRequests()
    assert {"cargo", "npm"} <= {r["cacheName"] for r in everything["requests"]}
    with pytest.raises(TaskclusterRestFailure) as err:
        await purge.purgeCache("not-a-pool", {"cacheName": "x"})
    assert err.value.status_code == 400
    client_id = "tests/purge-reader"
    token = await tc.create_client(client_id, [f"purge-cache:purge-requests::{pool}"])
    reader = clients.make("purge-cache", {"clientId": client_id, "accessToken": token})
    assert len((await reader.purgeRequests(pool))["requests"]) == 2
    with pytest.raises(TaskclusterRestFailure) as err:
        await reader.purgeCache(pool, {"cacheName": "x"})
    assert err.value.status_code == 403


async def test_secrets(tc: Deployment, clients: Clients) -> None:
    secrets = clients.make("secrets")
    name = f"project/{slugid.nice()}"
    await secrets.set(name, {"secret": {"token": "s3cr3t"}, "expires": from_now(3600)})
    got = await secrets.get(name)
    assert got["secret"] == {"token": "s3cr3t"}
    assert name in (await secrets.list())["secrets"]
    client_id = "tests/secret-reader"
    token = await tc.create_client(client_id, ["secrets:get:project/*"])
    reader = clients.make("secrets", {"clientId": client_id, "accessToken": token})
    assert (await reader.get(name))["secret"] == {"token": "s3cr3t"}
    with pytest.raises(TaskclusterRestFailure) as err:
        await reader.set(name, {"secret": {}, "expires": from_now(60)})
    assert err.value.status_code == 403
    with pytest.raises(TaskclusterRestFailure) as err:
        await secrets.set(name, {"secret": "not an object", "expires": from_now(60)})
    assert err.value.status_code == 400
    await secrets.remove(name)
    with pytest.raises(TaskclusterRestFailure) as err:
        await secrets.get(name)
    assert err.value.status_code == 404
    await secrets.set(name, {"secret": {}, "expires": from_now(-60)})
    with pytest.raises(TaskclusterRestFailure) as err:
        await secrets.get(name)
    assert err.value.status_code == 404


async def test_index_insert_find_rank_and_listings(clients: Clients) -> None:
    index = clients.make("index")
    root = f"tests{slugid.nice().lower().replace('-', '').replace('_', '')[:8]}"
    first, second = slugid.nice(), slugid.nice()
    entry = {"taskId": first, "rank": 5, "data": {"k": 1}, "expires": from_now(3600)}
    await index.insertTask(f"{root}.a.latest", entry)
    assert (await index.findTask(f"{root}.a.latest"))["taskId"] == first
    kept = await index.insertTask(f"{root}.a.latest", {**entry, "taskId": second, "rank": 1})
    assert kept["taskId"] == first  # a lower rank does not replace
    await index.insertTask(f"{root}.a.latest", {**entry, "taskId": second, "rank": 5})
    assert (await index.findTask(f"{root}.a.latest"))["taskId"] == second
    await index.insertTask(f"{root}.b.x.y", {**entry, "taskId": first})
    namespaces = (await index.listNamespaces(root))["namespaces"]
    assert [n["name"] for n in namespaces] == ["a", "b"]
    tasks = (await index.listTasks(f"{root}.a"))["tasks"]
    assert [t["namespace"] for t in tasks] == [f"{root}.a.latest"]
    await index.deleteTask(f"{root}.a.latest")
    with pytest.raises(TaskclusterRestFailure) as err:
        await index.findTask(f"{root}.a.latest")
    assert err.value.status_code == 404


async def test_completed_task_is_indexed_by_its_routes(
    tc: Deployment, clients: Clients, queue: Any, worker_type: str, session: aiohttp.ClientSession
) -> None:
    namespace = f"project.{worker_type.replace('-', '')}.latest"
    run = await start_run(
        tc,
        clients,
        queue,
        worker_type,
        routes=[f"index.{namespace}", "other.route"],
        extra={"index": {"rank": 7, "data": {"rev": "abc"}}},
    )
    task_id = run.task_id
    index = clients.make("index")
    with pytest.raises(TaskclusterRestFailure):
        await index.findTask(namespace)  # not indexed before completion
    created = await run.create("public/result.txt", storageType="s3", contentType="text/plain")
    async with session.put(
        created["putUrl"], data=b"result", headers={"Content-Type": "text/plain"}
    ) as response:
        assert response.status == 200
    await run.queue.reportCompleted(task_id, 0)
    found = await index.findTask(namespace)
    assert (found["taskId"], found["rank"], found["data"]) == (task_id, 7, {"rev": "abc"})
    sync_index = taskcluster.Index(tc.options())
    url = sync_index.buildUrl("findArtifactFromTask", namespace, "public/result.txt")
    async with session.get(url) as response:  # 303 to the queue, then 303 to the blob
        assert await response.read() == b"result"


async def test_route_scopes_are_required(tc: Deployment, clients: Clients, worker_type: str) -> None:
    client_id = f"tests/router-{worker_type}"
    scopes = [
        f"queue:create-task:lowest:tc-local/{worker_type}",
        "queue:scheduler-id:tc-local-tests",
        "queue:create-task:project:none",
    ]
    creator = clients.make(
        "queue", {"clientId": client_id, "accessToken": await tc.create_client(client_id, scopes)}
    )
    with pytest.raises(TaskclusterRestFailure) as err:
        await creator.createTask(
            slugid.nice(), tc.make_task(workerType=worker_type, routes=["index.x.y"], priority="lowest")
        )
    assert err.value.status_code == 403
    assert "queue:route:index.x.y" in err.value.body["message"]


async def test_object_download_redirects_to_the_content(
    clients: Clients, session: aiohttp.ClientSession
) -> None:
    objects = clients.make("object")
    name, upload_id = f"tests/{slugid.nice()}", slugid.nice()
    inline = {"contentType": "text/plain", "objectData": base64.b64encode(b"via download").decode()}
    body = {
        "projectId": "proj",
        "uploadId": upload_id,
        "expires": from_now(3600),
        "proposedUploadMethods": {"dataInline": inline},
    }
    await objects.createUpload(name, body)
    await objects.finishUpload(name, {"projectId": "proj", "uploadId": upload_id})
    redirect = await objects.download(name)
    async with session.get(redirect["url"]) as response:
        assert response.headers["Content-Type"] == "text/plain"
        assert await response.read() == b"via download"
