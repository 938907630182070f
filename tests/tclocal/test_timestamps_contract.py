"""Dates at millisecond precision, as upstream reads them (JavaScript `Date`s, Postgres columns).

An official-client user computes dates with `taskcluster.utils.stringDate(datetime)`, which
keeps microseconds (`...00.679315Z`). Upstream drops the digits past the millisecond when it
reads a date, so two dates that differ only there are the same instant; every service must
read them that way and answer them in the millisecond form.
"""

from __future__ import annotations

import datetime
from typing import Any

import slugid
import taskcluster.utils

from .conftest import Clients, claim_one, queue_id


def _micro_date(days: float) -> tuple[str, str]:
    """A date `days` from now with microseconds (stringDate), and its millisecond form.

    The sub-millisecond part is past the half, so rounding (rather than dropping) it shows.
    """
    when = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=days)
    when = when.replace(microsecond=(when.microsecond // 1000) * 1000 + 815)
    micro: str = taskcluster.utils.stringDate(when)
    return micro, micro[:23] + "Z"


async def test_artifact_may_expire_with_its_task_given_in_microseconds(
    tc: Any, clients: Clients, queue: Any, worker_type: str
) -> None:
    micro, millis = _micro_date(1)
    assert micro.endswith("815Z")
    task_id = slugid.nice()
    created = await queue.createTask(task_id, tc.make_task(workerType=worker_type, expires=micro))
    assert (await queue.task(task_id))["expires"] == millis
    assert created["status"]["expires"] == millis
    claim = await claim_one(queue, queue_id(worker_type))
    worker = clients.make("queue", claim["credentials"])
    reply = await worker.createArtifact(
        task_id,
        0,
        "public/same-expiry.txt",
        {"storageType": "error", "reason": "file-missing-on-worker", "message": "m", "expires": micro},
    )
    assert reply["storageType"] == "error"
    listed = (await queue.listArtifacts(task_id, 0))["artifacts"]
    assert [a["expires"] for a in listed] == [millis]
    await worker.reportCompleted(task_id, 0)


async def test_secret_index_and_client_dates_are_read_to_the_millisecond(
    clients: Clients, worker_type: str
) -> None:
    micro, millis = _micro_date(2)
    secrets = clients.make("secrets")
    name = f"tests/{worker_type}/dated"
    await secrets.set(name, {"secret": {"a": 1}, "expires": micro})
    try:
        assert (await secrets.get(name))["expires"] == millis
    finally:
        await secrets.remove(name)
    index = clients.make("index")
    namespace = f"tests.{worker_type}.dated"
    task_id = slugid.nice()
    inserted = await index.insertTask(namespace, {"taskId": task_id, "rank": 0, "data": {}, "expires": micro})
    try:
        assert inserted["expires"] == millis
        assert (await index.findTask(namespace))["expires"] == millis
    finally:
        await index.deleteTask(namespace)
    auth = clients.make("auth")
    client_id = f"tests/{worker_type}/dated"
    made = await auth.createClient(client_id, {"expires": micro, "description": "d", "scopes": []})
    try:
        assert made["expires"] == millis
        assert (await auth.client(client_id))["expires"] == millis
    finally:
        await auth.deleteClient(client_id)


async def test_purge_requests_since_is_read_to_the_millisecond(clients: Clients, worker_type: str) -> None:
    purge = clients.make("purge-cache")
    pool = f"tests/{worker_type}"
    await purge.purgeCache(pool, {"cacheName": "dated"})
    before = (await purge.purgeRequests(pool))["requests"][0]["before"]
    # The same millisecond with more digits: not later than the request to upstream.
    since = before[:23] + "999Z"
    requests = (await purge.purgeRequests(pool, query={"since": since}))["requests"]
    assert [r["cacheName"] for r in requests] == ["dated"]
