"""The object, purge-cache, secrets and index services through the official aio client."""

from __future__ import annotations

import base64
import functools
import hashlib
from typing import Any

import aiohttp
import slugid
import taskcluster
from taskcluster.exceptions import TaskclusterRestFailure

from tclocal.core.timestamps import from_now

from .conftest import Clients, refused, start_run, wait_for
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
    await refused(objects.startDownload(name, {"acceptDownloadMethods": {}}), 406, "NoMatchingMethod")
    again = {"projectId": "proj", "uploadId": slugid.nice(), "expires": expires, "proposedUploadMethods": {}}
    await refused(objects.createUpload(name, again), 409, "RequestConflict")  # a finished object
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
    await refused(objects.object(f"tests/{slugid.nice()}"), 404, "ResourceNotFound")


async def test_object_scopes(tc: Deployment, clients: Clients) -> None:
    client_id = f"tests/object-uploader-{slugid.nice()}"
    mine = f"tests/{slugid.nice()}"
    token = await tc.create_client(client_id, [f"object:upload:proj:{mine}/*"])
    objects = clients.make("object", {"clientId": client_id, "accessToken": token})
    body = {
        "projectId": "proj",
        "uploadId": slugid.nice(),
        "expires": from_now(3600),
        "proposedUploadMethods": {},
    }
    assert (await objects.createUpload(f"{mine}/one", body))["uploadMethod"] == {}
    await refused(objects.createUpload(f"tests/{slugid.nice()}/one", body), 403, "InsufficientScopes")


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
    await refused(purge.purgeCache("not-a-pool", {"cacheName": "x"}), 400, "InvalidRequestArguments")
    client_id = f"tests/purge-reader-{slugid.nice()}"
    token = await tc.create_client(client_id, [f"purge-cache:purge-requests::{pool}"])
    reader = clients.make("purge-cache", {"clientId": client_id, "accessToken": token})
    assert len((await reader.purgeRequests(pool))["requests"]) == 2
    await refused(reader.purgeCache(pool, {"cacheName": "x"}), 403, "InsufficientScopes")


async def test_secrets(tc: Deployment, clients: Clients) -> None:
    secrets = clients.make("secrets")
    project = f"tests/{slugid.nice()}"
    name = f"{project}/token"
    tc.defer(lambda: tc.root_call("secrets", "remove", name))
    await secrets.set(name, {"secret": {"token": "s3cr3t"}, "expires": from_now(3600)})
    got = await secrets.get(name)
    assert got["secret"] == {"token": "s3cr3t"}
    assert name in await list_all(secrets.list, "secrets")
    client_id = f"tests/secret-reader-{slugid.nice()}"
    token = await tc.create_client(client_id, [f"secrets:get:{project}/*"])
    reader = clients.make("secrets", {"clientId": client_id, "accessToken": token})
    assert (await reader.get(name))["secret"] == {"token": "s3cr3t"}
    await refused(reader.set(name, {"secret": {}, "expires": from_now(60)}), 403, "InsufficientScopes")
    invalid = {"secret": "not an object", "expires": from_now(60)}
    body = await refused(secrets.set(name, invalid), 400, "InputValidationError")
    assert body["requestInfo"]["payload"] == {**invalid, "secret": "(OMITTED)"}  # upstream's cleanPayload
    # As upstream's middleware: scopes (when the URL alone gives them) before the body's schema.
    anonymous = clients.make("secrets", None)
    body = await refused(anonymous.set(name, invalid), 403, "InsufficientScopes")
    assert body["message"].startswith("This request requires Taskcluster credentials that satisfy")
    await secrets.remove(name)
    await refused(secrets.get(name), 404, "ResourceNotFound")
    await secrets.remove(name)  # as upstream: succeeds whether or not the secret exists
    await secrets.set(name, {"secret": {}, "expires": from_now(-60)})
    await refused(secrets.get(name), 404, "ResourceNotFound")  # expired


async def test_index_insert_find_rank_and_listings(tc: Deployment, clients: Clients) -> None:
    index = clients.make("index")
    root = f"tests.{slugid.nice().lower().replace('-', '').replace('_', '')[:8]}"
    for namespace in (f"{root}.a.latest", f"{root}.b.x.y"):
        tc.defer(functools.partial(tc.root_call, "index", "deleteTask", namespace))
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
    top = await list_all(lambda query: index.listNamespaces("", query=query), "namespaces")
    assert "tests" in [n["name"] for n in top]  # the root namespace ('{/:namespace}' is optional)
    tasks = (await index.listTasks(f"{root}.a"))["tasks"]
    assert [t["namespace"] for t in tasks] == [f"{root}.a.latest"]
    await index.deleteTask(f"{root}.a.latest")
    await refused(index.findTask(f"{root}.a.latest"), 404, "ResourceNotFound")


async def test_completed_task_is_indexed_by_its_routes(
    tc: Deployment, clients: Clients, queue: Any, worker_type: str, session: aiohttp.ClientSession
) -> None:
    namespace = f"tests.{worker_type.replace('-', '')}.latest"
    tc.defer(lambda: tc.root_call("index", "deleteTask", namespace))
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
    await refused(index.findTask(namespace), 404, "ResourceNotFound")  # not indexed before completion
    created = await run.create("public/result.txt", storageType="s3", contentType="text/plain")
    async with session.put(
        created["putUrl"], data=b"result", headers={"Content-Type": "text/plain"}
    ) as response:
        assert response.status == 200
    await run.queue.reportCompleted(task_id, 0)
    # tc-local indexes as it resolves the task; upstream's index service does so on the
    # task-completed message, a moment later.
    found: Any = await wait_for(lambda: found_or_none(index, namespace), lambda entry: entry is not None)
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
    routed = tc.make_task(workerType=worker_type, routes=["index.x.y"], priority="lowest")
    body = await refused(creator.createTask(slugid.nice(), routed), 403, "InsufficientScopes")
    assert "queue:route:index.x.y" in body["message"]


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


async def list_all(method: Any, key: str) -> list[Any]:
    """Every item of a paginated listing (a real deployment may have many)."""
    items: list[Any] = []
    query: dict[str, str] = {}
    while True:
        page = await method(query=query)
        items += page[key]
        if not page.get("continuationToken"):
            return items
        query = {"continuationToken": page["continuationToken"]}


async def found_or_none(index: Any, namespace: str) -> dict[str, Any] | None:
    """The index entry at `namespace`, or None while there is none."""
    try:
        found: dict[str, Any] = await index.findTask(namespace)
    except TaskclusterRestFailure as err:
        if err.status_code != 404:
            raise
        return None
    return found
