"""The built-in Taskcluster proxy against a real tc-local (TARGET §10, modern-gw.md §5.8, §6.2)."""

import asyncio
import json
import socket
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from generic_worker.exitcodes import ExitCode
from tclocal.core.timestamps import from_now
from tclocal.testing import running_tclocal

from .harness import GW

CLIENT = r"""
import json, os, sys, urllib.error, urllib.request

PROXY = os.environ["TASKCLUSTER_PROXY_URL"]

class NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None

def call(method, url, data=None, follow=False):
    opener = urllib.request.build_opener() if follow else urllib.request.build_opener(NoRedirects)
    request = urllib.request.Request(url if "://" in url else PROXY + url, data=data, method=method)
    try:
        with opener.open(request) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()

def report(**results):
    print("RESULTS " + json.dumps(results, sort_keys=True), flush=True)
"""


def python(script: str) -> list[str]:
    return [sys.executable, "-c", CLIENT + script]


def results(log: str) -> dict[str, Any]:
    line = next(line for line in log.splitlines() if line.startswith("RESULTS "))
    found: dict[str, Any] = json.loads(line.removeprefix("RESULTS "))
    return found


OWN_TASK = r"""
open("proxy-url.txt", "w").write(PROXY)
task_id = os.environ["TASK_ID"]
forms = {}
for prefix in ("/api/queue/v1/task/", "/queue/v1/task/"):
    status, headers, body = call("GET", prefix + task_id)
    forms[prefix] = [status, json.loads(body)["metadata"]["name"], headers.get("X-Taskcluster-Proxy-Temp-ClientId", "")]
status, _, body = call("GET", "/api/secrets/v1/secret/project/not-mine")
secret = [status, json.loads(body).get("code")]
credentials = call("PUT", "/credentials", b'{"clientId": "x", "accessToken": "y"}')[0]
report(forms=forms, secret=secret, credentials=credentials)
"""


async def test_a_task_reads_its_own_definition_through_the_proxy(gw: GW):
    task_id = await gw.submit(
        {"command": [python(OWN_TASK)], "maxRunTime": 60, "features": {"taskclusterProxy": True}},
        metadata={
            "name": "proxy reader",
            "description": "d",
            "owner": "o@example.com",
            "source": "https://x/",
        },
    )
    assert await gw.run() == ExitCode.TASKS_COMPLETE
    assert await gw.resolution(task_id) == "completed/completed"
    found = results(await gw.log(task_id))
    client_id = f"task-client/{task_id}/0/on/test-worker-group/test-worker-id"
    assert found["forms"] == {
        "/api/queue/v1/task/": [200, "proxy reader", client_id],
        "/queue/v1/task/": [200, "proxy reader", client_id],
    }
    assert found["secret"] == [403, "InsufficientScopes"]  # outside the task's scopes: tc-local says no
    assert found["credentials"] == 403  # tasks cannot replace the proxy's credentials
    proxy_url = (next(gw.task_dirs()) / "proxy-url.txt").read_text()
    assert proxy_url.startswith("http://127.0.0.1:")
    with pytest.raises(aiohttp.ClientConnectorError):  # the proxy went with the task
        async with aiohttp.ClientSession() as session, session.get(proxy_url + "/api/queue/v1/ping"):
            pass


ARTIFACTS = r"""
dep = sys.argv[1]
public = f"/api/queue/v1/task/{dep}/artifacts/public%2Fx.txt"
status, headers, _ = call("GET", public)
redirect = [status, bool(headers.get("Location"))]
private = f"{os.environ['TASKCLUSTER_ROOT_URL']}/api/queue/v1/task/{dep}/artifacts/private%2Fy.txt"
status, headers, body = call("POST", "/bewit", private.encode())
signed = headers.get("Location", "")
content = call("GET", signed, follow=True)
data = content[2]
if content[1].get("Content-Encoding") == "gzip":
    import gzip
    data = gzip.decompress(data)
unsigned = call("GET", private)[0]
report(redirect=redirect, bewit=[status, signed.startswith(private + "?bewit="), content[0], data.decode()], unsigned=unsigned)
"""


async def test_redirects_come_back_unfollowed_and_bewits_sign_urls(gw: GW):
    producer = await gw.submit(
        {
            "command": [["/bin/sh", "-c", "echo public > x.txt; echo private > y.txt"]],
            "maxRunTime": 30,
            "artifacts": [
                {"type": "file", "path": "x.txt", "name": "public/x.txt"},
                {"type": "file", "path": "y.txt", "name": "private/y.txt"},
            ],
        }
    )
    assert await gw.run() == ExitCode.TASKS_COMPLETE
    consumer = await gw.submit(
        {
            "command": [python(ARTIFACTS) + [producer]],
            "maxRunTime": 60,
            "features": {"taskclusterProxy": True},
        },
        scopes=["queue:get-artifact:private/y.txt"],
    )
    assert await gw.run() == ExitCode.TASKS_COMPLETE
    assert await gw.resolution(consumer) == "completed/completed"
    found = results(await gw.log(consumer))
    assert found["redirect"] == [303, True]  # getArtifact's redirect passed back, not followed
    assert found["bewit"] == [303, True, 200, "private\n"]  # the signed URL works without the proxy
    assert found["unsigned"] == 403  # ...and is what made the difference


RECLAIMED = r"""
import time
time.sleep(float(sys.argv[1]))  # the claim (and its credentials) expire every 2 s meanwhile
status, _, body = call("GET", "/api/secrets/v1/secret/project/gw-proxy-test")
report(status=status, secret=json.loads(body).get("secret"))
"""


async def test_credentials_keep_working_across_reclaims(tmp_path: Path):
    with running_tclocal(tmp_path / "tc", claim_timeout=2, claim_work_wait=1.0, reaper_interval=0.2) as tc:
        gw = GW(tc, tmp_path)
        async with aiohttp.ClientSession() as session:
            import taskcluster.aio

            secrets = taskcluster.aio.Secrets(tc.options(), session=session)
            await secrets.set("project/gw-proxy-test", {"secret": {"v": 42}, "expires": from_now(3600)})
        task_id = await gw.submit(
            {
                "command": [python(RECLAIMED) + ["5"]],
                "maxRunTime": 60,
                "features": {"taskclusterProxy": True},
            },
            scopes=["secrets:get:project/gw-proxy-test"],
        )
        assert await gw.run() == ExitCode.TASKS_COMPLETE
        assert await gw.resolution(task_id) == "completed/completed"
        log = await gw.log(task_id)
        assert results(log) == {"status": 200, "secret": {"v": 42}}
        client_id = f"task-client/{task_id}/0/on/test-worker-group/test-worker-id"
        assert f"[taskcluster-proxy] Successfully refreshed taskcluster-proxy credentials: {client_id}" in log


async def test_disabled_proxy_is_malformed_payload(gw: GW):
    task_id = await gw.submit(
        {"command": [["true"]], "maxRunTime": 30, "features": {"taskclusterProxy": True}}
    )
    assert await gw.run(enableTaskclusterProxy=False) == ExitCode.TASKS_COMPLETE
    assert await gw.resolution(task_id) == "exception/malformed-payload"
    assert (
        f'this task is attempting to use feature "Taskcluster Proxy", but it\'s not enabled on this worker pool '
        f"(test-provisioner/{gw.worker_type})" in await gw.log(task_id)
    )


async def test_no_proxy_and_no_variable_unless_asked_for(gw: GW):
    task_id = await gw.submit(
        {"command": [["/bin/sh", "-c", 'echo "proxy=[$TASKCLUSTER_PROXY_URL]"']], "maxRunTime": 30}
    )
    assert await gw.run() == ExitCode.TASKS_COMPLETE
    assert "proxy=[]" in await gw.log(task_id)


async def test_concurrent_tasks_get_their_own_proxies_on_consecutive_ports(gw: GW):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free now; the worker binds it (and the next) once this closes
    marks = gw.tmp / "marks"
    marks.mkdir()
    script = (
        f'touch {marks}/$TASK_ID; while [ "$(ls {marks} | wc -l)" -lt 2 ]; do sleep 0.02; done; '
        'echo "proxy=$TASKCLUSTER_PROXY_URL"'
    )
    payload = {
        "command": [["/bin/sh", "-c", script]],
        "maxRunTime": 60,
        "features": {"taskclusterProxy": True},
    }
    first, second = await gw.submit(payload), await gw.submit(payload)
    code = await asyncio.wait_for(gw.run(capacity=2, numberOfTasksToRun=2, taskclusterProxyPort=port), 60)
    assert code == ExitCode.TASKS_COMPLETE
    urls = set()
    for task_id in (first, second):
        assert await gw.resolution(task_id) == "completed/completed"
        urls.add(next(line for line in (await gw.log(task_id)).splitlines() if line.startswith("proxy=")))
    assert urls == {f"proxy=http://127.0.0.1:{port}", f"proxy=http://127.0.0.1:{port + 1}"}
