"""How upload failures map to task resolutions: conflicts, 4xx on resolved runs, 5xx storms, cuts."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from generic_worker.artifacts import ArtifactUploader, FileArtifact, ReferenceArtifact
from generic_worker.engine.tasklog import TaskLog
from generic_worker.tc import ServiceFactory
from tclocal.testing import RunningTCLocal

from .conftest import EXPIRES, ClaimedRun, UploaderFactory, factory_for, fetch
from .faulty_network import FaultyProxy, is_blob_put, is_create_artifact

BODY = os.urandom(3 * 1024 * 1024)


def body_file(tmp_path: Path, name: str = "body.bin") -> Path:
    path = tmp_path / name
    path.write_bytes(BODY)
    return path


def artifact(
    path: Path, name: str = "public/body.bin", content_type: str = "application/octet-stream"
) -> FileArtifact:
    return FileArtifact(name, path, EXPIRES, content_type, "identity")


async def test_conflict_is_malformed_payload_with_the_seed_text(
    tmp_path: Path, make_uploader: UploaderFactory, services: ServiceFactory, run: ClaimedRun
) -> None:
    uploader = make_uploader()
    path = body_file(tmp_path)
    assert await uploader.upload(artifact(path)) is None
    assert await uploader.upload(artifact(path)) is None  # identical again: harmless
    error = await uploader.upload(artifact(path, content_type="text/plain"))
    assert error is not None
    assert error.resolution == "exception/malformed-payload"
    lines = error.message.split("\n")
    assert lines[0] == (
        "There was a conflict uploading artifact public/body.bin - this suggests artifact public/body.bin was "
        "already uploaded to this task with different content earlier on in this task."
    )
    assert (
        lines[1]
        == f"Check the artifacts section of the task payload at {services.root_url}/tasks/{run.task_id}"
    )
    assert "already exists" in lines[2]


async def test_4xx_on_a_cancelled_task_is_dropped_quietly(
    tmp_path: Path,
    make_uploader: UploaderFactory,
    services: ServiceFactory,
    run: ClaimedRun,
    tclocal: RunningTCLocal,
    log: TaskLog,
) -> None:
    token = tclocal.create_client(f"no-scopes-{run.task_id}", [])
    run.overrides.append({"clientId": f"no-scopes-{run.task_id}", "accessToken": token})  # every call: 403
    await services.queue().cancelTask(run.task_id)
    result = await make_uploader().upload(artifact(body_file(tmp_path)))
    assert result is None
    assert "is already resolved (exception/canceled)" in log.path.read_text()


async def test_4xx_on_a_running_task_is_an_internal_error(
    tmp_path: Path, make_uploader: UploaderFactory, run: ClaimedRun, tclocal: RunningTCLocal
) -> None:
    token = tclocal.create_client(f"no-scopes-{run.task_id}", [])
    run.overrides.append({"clientId": f"no-scopes-{run.task_id}", "accessToken": token})
    result = await make_uploader().upload(artifact(body_file(tmp_path)))
    assert result is not None
    assert result.resolution == "exception/internal-error"
    assert result.message.startswith(
        "WORKER EXCEPTION due to response code 403 from Queue when uploading artifact public/body.bin with "
        'createArtifact payload {"storageType":"s3"'
    )


async def test_conflict_on_a_resolved_run_is_dropped_quietly(
    tmp_path: Path, make_uploader: UploaderFactory, services: ServiceFactory, run: ClaimedRun, log: TaskLog
) -> None:
    await services.queue(run.credentials).reportCompleted(run.task_id, str(run.run_id))
    assert await make_uploader().upload(artifact(body_file(tmp_path))) is None
    assert "is already resolved (completed/completed)" in log.path.read_text()


async def test_5xx_storm_on_create_artifact_is_retried(
    tmp_path: Path,
    make_uploader: UploaderFactory,
    proxied: ServiceFactory,
    proxy: FaultyProxy,
    run: ClaimedRun,
) -> None:
    proxy.add(is_create_artifact, "status:503", times=3)
    assert await make_uploader(services=proxied).upload(artifact(body_file(tmp_path))) is None
    assert proxy.seen.count("POST", "/artifacts/") == 4
    got = await fetch(proxied.root_url, run, "public/body.bin")
    assert got.body == BODY


async def test_5xx_forever_is_resource_unavailable(
    make_uploader: UploaderFactory, proxied: ServiceFactory, proxy: FaultyProxy
) -> None:
    proxy.add(is_create_artifact, "status:500")
    reference = ReferenceArtifact("public/ref", "https://example.com/", EXPIRES, "text/html")
    error = await make_uploader(services=proxied, max_retries=2).upload(reference)
    assert error is not None
    assert error.resolution == "exception/resource-unavailable"
    assert error.message == (
        "TASK EXCEPTION due to response code 500 from Queue when uploading artifact public/ref with createArtifact "
        'payload {"storageType":"reference","url":"https://example.com/","contentType":"text/html",'
        f'"expires":"{EXPIRES.isoformat(timespec="milliseconds").replace("+00:00", "Z")}"}}'
    )
    assert proxy.seen.count("POST", "/artifacts/") == 3


async def test_put_failures_are_retried_with_a_fresh_url(
    tmp_path: Path,
    make_uploader: UploaderFactory,
    proxied: ServiceFactory,
    proxy: FaultyProxy,
    run: ClaimedRun,
) -> None:
    proxy.add(is_blob_put, "status:500", times=1)
    proxy.add(is_blob_put, "status:400", times=1)  # S3's spurious 400 (bug 1394557)
    proxy.add(is_blob_put, "cut:1048576", times=1)  # connection lost after 1 MiB of the body
    proxy.add(is_blob_put, "status:403", times=1)  # what an expired presigned URL answers
    assert await make_uploader(services=proxied, max_retries=4).upload(artifact(body_file(tmp_path))) is None
    assert proxy.seen.count("PUT", "/blobs/") == 5
    assert proxy.seen.count("POST", "/artifacts/") == 5  # createArtifact again before each retry
    got = await fetch(proxied.root_url, run, "public/body.bin")
    assert got.body == BODY


async def test_put_failing_for_good_is_resource_unavailable(
    tmp_path: Path, make_uploader: UploaderFactory, proxied: ServiceFactory, proxy: FaultyProxy
) -> None:
    proxy.add(is_blob_put, "cut:1000")
    error = await make_uploader(services=proxied, max_retries=2).upload(artifact(body_file(tmp_path)))
    assert error is not None
    assert error.resolution == "exception/resource-unavailable"
    assert error.message.startswith(
        "TASK EXCEPTION due to a failed upload of artifact public/body.bin: network error"
    )
    assert "signature" not in error.message  # presigned URLs are never shown whole
    assert proxy.seen.count("PUT", "/blobs/") == 3


async def test_object_put_cut_is_retried_and_hashes_match(
    tmp_path: Path,
    make_uploader: UploaderFactory,
    proxied: ServiceFactory,
    proxy: FaultyProxy,
    run: ClaimedRun,
) -> None:
    proxy.add(is_blob_put, "cut:2000000", times=1)
    uploader = make_uploader(services=proxied, use_object_storage=True)
    assert await uploader.upload(artifact(body_file(tmp_path))) is None
    assert proxy.seen.count("PUT", "/blobs/") == 2
    got = await fetch(proxied.root_url, run, "public/body.bin")
    assert got.body == BODY


async def test_object_service_5xx_forever_is_resource_unavailable(
    tmp_path: Path, make_uploader: UploaderFactory, proxied: ServiceFactory, proxy: FaultyProxy
) -> None:
    proxy.add(lambda method, path: "/api/object/v1/" in path, "status:502")
    error = await make_uploader(services=proxied, use_object_storage=True, max_retries=1).upload(
        artifact(body_file(tmp_path))
    )
    assert error is not None
    assert error.resolution == "exception/resource-unavailable"
    assert "response code 502 from Object service" in error.message


async def test_network_error_is_an_error_never_a_success(
    tmp_path: Path, tclocal: RunningTCLocal, run: ClaimedRun, log: TaskLog
) -> None:
    """Seed quirk 6 fixed: a queue that cannot be reached is resource-unavailable."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    services = factory_for(f"http://127.0.0.1:{closed_port}", tclocal)
    try:
        uploader = ArtifactUploader(
            services=services,
            task_id=run.task_id,
            run_id=run.run_id,
            credentials=run.current_credentials,
            log=log,
            use_object_storage=False,
            max_retries=1,
        )
        error = await uploader.upload(artifact(body_file(tmp_path)))
    finally:
        await services.close()
    assert error is not None
    assert error.resolution == "exception/resource-unavailable"
    assert error.message.startswith(
        "TASK EXCEPTION due to a network error calling createArtifact of Queue when uploading artifact public/body.bin"
    )
    assert uploader.uploaded == []
