"""Crash reports: a worker crash (69) reaches a local Sentry endpoint through the DSN auth hands out."""

import gzip
import json
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import brotli
import pytest
from aiohttp import web

from generic_worker.engine.feature import FeatureBase
from generic_worker.engine.worker import Worker
from generic_worker.exitcodes import ExitCode
from generic_worker.features import build_features
from tclocal.testing import RunningTCLocal, running_tclocal

from .harness import GW

PROJECT = "gw-crashes"


class SentryRecorder:
    """What a Sentry server receives: envelopes POSTed to /api/<project id>/envelope/."""

    def __init__(self) -> None:
        self.envelopes: list[list[dict[str, Any]]] = []
        self.auth: list[str] = []
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/api/{project}/envelope/", self._envelope)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    async def _envelope(self, request: web.Request) -> web.Response:
        body = await request.read()  # aiohttp may already have decoded Content-Encoding
        encoding = request.headers.get("Content-Encoding", "")
        if not body.lstrip().startswith(b"{"):
            body = gzip.decompress(body) if encoding == "gzip" else brotli.decompress(body)
        self.envelopes.append([json.loads(line) for line in body.splitlines() if line.strip()])
        self.auth.append(request.headers.get("X-Sentry-Auth", ""))
        return web.json_response({})


class _CrashOnInit(FeatureBase):
    name = "Crash On Init"

    async def initialise(self, worker: object) -> None:
        raise RuntimeError("disk on fire")


@pytest.fixture
async def sentry() -> AsyncIterator[SentryRecorder]:
    recorder = SentryRecorder()
    await recorder.start()
    yield recorder
    await recorder.stop()


@pytest.fixture
def tc_with_sentry(sentry: SentryRecorder, tmp_path: Path) -> Iterator[RunningTCLocal]:
    dsn = f"http://publickey:s3cretkey@127.0.0.1:{sentry.port}/42"
    with running_tclocal(tmp_path / "tc", claim_work_wait=1.0, sentry_dsn=dsn) as tc:
        yield tc


def crashing_worker(gw: GW, **overrides: Any) -> Worker:
    config = gw.config(**overrides)
    return Worker(config, [*build_features(config), _CrashOnInit()], state_dir=gw.tmp)


async def test_a_crash_is_reported_to_sentry_with_the_seeds_tags(tc_with_sentry, sentry, tmp_path, caplog):
    gw = GW(tc_with_sentry, tmp_path)
    token = tc_with_sentry.create_client(gw.raw_config["clientId"], [f"auth:sentry:{PROJECT}"])
    worker = crashing_worker(gw, sentryProject=PROJECT, accessToken=token, deploymentId="d-7")
    with caplog.at_level(logging.INFO):
        assert await worker.run() == ExitCode.INTERNAL_ERROR
    assert len(sentry.envelopes) == 1
    event = next(item for item in sentry.envelopes[0] if "exception" in item)
    exception = event["exception"]["values"][-1]
    assert (exception["type"], exception["value"]) == ("RuntimeError", "disk on fire")
    tags = event["tags"]
    assert tags["workerType"] == gw.worker_type and tags["deploymentId"] == "d-7"
    assert tags["runTasksAsCurrentUser"] == "true" and tags["GOOS"] == "linux"
    assert {"cleanUpTaskDirs", "instanceType", "workerGroup", "workerId", "gwVersion", "GOARCH"} <= set(tags)
    assert "sentry_key=publickey" in sentry.auth[0]
    assert f"Crash reported to Sentry project {PROJECT}" in caplog.text
    assert "s3cretkey" not in caplog.text


async def test_no_sentry_endpoint_is_one_warning_not_a_second_crash(gw: GW, caplog):
    # The shared tc-local has no Sentry configuration: its auth answers 404, like upstream's.
    gw.tc.create_client(gw.raw_config["clientId"], [f"auth:sentry:{PROJECT}"])
    worker = crashing_worker(gw, sentryProject=PROJECT, accessToken=gw.raw_config["accessToken"])
    with caplog.at_level(logging.INFO):
        assert await worker.run() == ExitCode.INTERNAL_ERROR
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "Sentry" in r.getMessage()]
    assert len(warnings) == 1 and "crash not reported" in warnings[0].getMessage()


async def test_without_a_project_nothing_is_reported(gw: GW, caplog):
    with caplog.at_level(logging.INFO):
        assert await crashing_worker(gw).run() == ExitCode.INTERNAL_ERROR
    assert "No sentry project defined, not reporting to sentry" in caplog.text
