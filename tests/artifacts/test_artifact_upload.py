"""Uploading every artifact kind to a real tc-local and downloading it back through the queue."""

from __future__ import annotations

import gzip
import os
import re
from pathlib import Path

from generic_worker.artifacts import (
    ErrorArtifact,
    FileArtifact,
    LinkArtifact,
    ReferenceArtifact,
    UploadedArtifact,
)
from generic_worker.artifacts.transfer import FileSource
from generic_worker.engine.tasklog import TaskLog
from generic_worker.tc import ServiceFactory
from generic_worker.timefmt import to_tc

from .conftest import EXPIRES, ClaimedRun, UploaderFactory, fetch
from .faulty_network import FaultyProxy, is_blob_put

TS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
TEXT = b"hello artifact\n" * 2000


def file_artifact(path: Path, name: str, content_type: str, encoding: str, **kw: object) -> FileArtifact:
    return FileArtifact(name, path, EXPIRES, content_type, encoding, **kw)  # type: ignore[arg-type]


async def list_artifacts(services: ServiceFactory, run: ClaimedRun) -> dict[str, dict[str, object]]:
    listing = await services.queue().listArtifacts(run.task_id, str(run.run_id))
    return {a["name"]: a for a in listing["artifacts"]}


async def test_s3_gzip_and_identity_round_trip(
    tmp_path: Path, make_uploader: UploaderFactory, services: ServiceFactory, run: ClaimedRun, log: TaskLog
) -> None:
    (tmp_path / "a.txt").write_bytes(TEXT)
    (tmp_path / "d.jpg").write_bytes(os.urandom(50_000))
    uploader = make_uploader()
    text = file_artifact(tmp_path / "a.txt", "public/build/a.txt", "text/plain; charset=utf-8", "gzip")
    jpg = file_artifact(tmp_path / "d.jpg", "public/build/d.jpg", "image/jpeg", "identity")
    assert await uploader.upload_all([text, jpg]) == []

    got = await fetch(services.root_url, run, "public/build/a.txt")
    assert got.status == 200
    assert got.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert got.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(got.body) == TEXT
    assert len(got.body) < len(TEXT) / 10
    got = await fetch(services.root_url, run, "public/build/d.jpg")
    assert (got.status, got.headers["Content-Type"]) == (200, "image/jpeg")
    assert "Content-Encoding" not in got.headers
    assert got.body == (tmp_path / "d.jpg").read_bytes()

    listed = await list_artifacts(services, run)
    assert listed["public/build/a.txt"]["contentLength"] == len(TEXT)  # on-disk size, before gzip
    assert listed["public/build/d.jpg"]["contentLength"] == 50_000
    assert listed["public/build/a.txt"]["storageType"] == "s3"
    assert listed["public/build/a.txt"]["expires"] == to_tc(EXPIRES)
    assert sorted(uploader.uploaded, key=lambda u: u.name) == [
        UploadedArtifact("public/build/a.txt", "s3", tmp_path / "a.txt", "gzip", "text/plain; charset=utf-8"),
        UploadedArtifact("public/build/d.jpg", "s3", tmp_path / "d.jpg", "identity", "image/jpeg"),
    ]
    lines = log.path.read_text().splitlines()
    pattern = (
        rf"\[taskcluster {TS}\] Uploading artifact public/build/a\.txt from file {re.escape(str(tmp_path))}/a\.txt "
        rf'with content encoding "gzip", mime type "text/plain; charset=utf-8" and expiry {re.escape(to_tc(EXPIRES))}'
    )
    assert any(re.fullmatch(pattern, line) for line in lines), lines


async def test_empty_file_and_names_needing_escapes(
    tmp_path: Path, make_uploader: UploaderFactory, services: ServiceFactory, run: ClaimedRun
) -> None:
    """Quirk 18: names are percent-encoded as the official client does; `/` stays a separator."""
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "x.txt").write_bytes(b"x")
    uploader = make_uploader()
    odd = "public/dir with space/a+b%c ?~.txt"
    artifacts = [
        file_artifact(tmp_path / "empty", "public/empty", "application/octet-stream", "gzip"),
        file_artifact(tmp_path / "x.txt", odd, "text/plain", "identity"),
    ]
    assert await uploader.upload_all(artifacts) == []
    got = await fetch(services.root_url, run, "public/empty")
    assert gzip.decompress(got.body) == b""
    listed = await list_artifacts(services, run)
    assert odd in listed
    assert listed["public/empty"]["contentLength"] == 0


async def test_reference_replaced_by_link(
    tmp_path: Path, make_uploader: UploaderFactory, services: ServiceFactory, run: ClaimedRun, log: TaskLog
) -> None:
    """The live-log flow: a reference while running, then a link to the backing log."""
    (tmp_path / "backing.log").write_bytes(TEXT)
    uploader = make_uploader()
    live = ReferenceArtifact(
        "public/logs/live.log", "http://127.0.0.1:1/log/abc", EXPIRES, "text/plain; charset=utf-8"
    )
    assert await uploader.upload(live) is None
    got = await fetch(services.root_url, run, "public/logs/live.log", follow=False)
    assert (got.status, got.redirect) == (303, "http://127.0.0.1:1/log/abc")

    backing = file_artifact(
        tmp_path / "backing.log", "public/logs/live_backing.log", "text/plain; charset=utf-8", "gzip"
    )
    assert await uploader.upload(backing) is None
    link = LinkArtifact(
        "public/logs/live.log", "public/logs/live_backing.log", EXPIRES, "text/plain; charset=utf-8"
    )
    assert await uploader.upload(link) is None
    got = await fetch(services.root_url, run, "public/logs/live.log")
    assert gzip.decompress(got.body) == TEXT
    assert [(u.name, u.storage_type) for u in uploader.uploaded] == [
        ("public/logs/live.log", "reference"),
        ("public/logs/live_backing.log", "s3"),
        ("public/logs/live.log", "link"),
    ]
    text = log.path.read_text()
    assert re.search(
        rf"\[taskcluster {TS}\] Uploading redirect artifact public/logs/live\.log to URL http://127\.0\.0\.1:1/log/abc "
        rf'with mime type "text/plain; charset=utf-8" and expiry {TS}\n',
        text,
    )
    assert re.search(
        rf"\[taskcluster {TS}\] Uploading link artifact public/logs/live\.log to artifact "
        rf"public/logs/live_backing\.log with expiry {TS}\n",
        text,
    )


async def test_object_artifacts_inline_and_put_url(
    tmp_path: Path,
    make_uploader: UploaderFactory,
    proxied: ServiceFactory,
    proxy: FaultyProxy,
    run: ClaimedRun,
) -> None:
    small = b"s" * 8191  # the largest size proposed inline
    large = os.urandom(3 * 1024 * 1024 + 17)
    (tmp_path / "small.txt").write_bytes(small)
    (tmp_path / "large.bin").write_bytes(large)
    uploader = make_uploader(services=proxied, use_object_storage=True)
    # gzip is asked for, but object artifacts are stored as they are (upstream).
    small_art = file_artifact(tmp_path / "small.txt", "public/small.txt", "text/plain; charset=utf-8", "gzip")
    assert await uploader.upload(small_art) is None
    assert proxy.seen.count("PUT", "/blobs/") == 0  # went inline
    large_art = file_artifact(
        tmp_path / "large.bin", "public/large.bin", "application/octet-stream", "identity"
    )
    assert await uploader.upload(large_art) is None
    assert sum(1 for m, p in proxy.seen.requests if is_blob_put(m, p)) == 1
    assert proxy.seen.count("PUT", "/api/queue/v1/task/") == 2  # finishArtifact, once each

    for name, content, content_type in (
        ("public/small.txt", small, "text/plain; charset=utf-8"),
        ("public/large.bin", large, "application/octet-stream"),
    ):
        got = await fetch(proxied.root_url, run, name)
        assert (got.status, got.headers["Content-Type"], got.body == content) == (200, content_type, True)
        assert "Content-Encoding" not in got.headers
    listed = await list_artifacts(proxied, run)
    assert listed["public/large.bin"]["storageType"] == "object"
    assert listed["public/large.bin"]["contentLength"] == len(large)
    assert [u.content_encoding for u in uploader.uploaded] == ["identity", "identity"]
    assert run.credential_calls >= 4  # asked afresh for createArtifact and finishArtifact, each time


async def test_error_artifact_fails_the_task(
    make_uploader: UploaderFactory, services: ServiceFactory, run: ClaimedRun, log: TaskLog
) -> None:
    message = "Could not read file '/task/Nonexistent/art i fact.txt'"
    error = ErrorArtifact(
        "public/missing.txt", "Nonexistent/art i fact.txt", message, "file-missing-on-worker", EXPIRES
    )
    result = await make_uploader().upload(error)
    assert result is not None
    assert result.resolution == "failed/failed"
    assert result.message == f"file-missing-on-worker: {message}"
    got = await fetch(services.root_url, run, "public/missing.txt", follow=False)
    assert got.status == 424
    assert b"file-missing-on-worker" in got.body
    lines = log.path.read_text().splitlines()
    assert lines == [
        f"[taskcluster:error] Uploading error artifact public/missing.txt from file Nonexistent/art i fact.txt "
        f'with message "{message}", reason "file-missing-on-worker" and expiry {to_tc(EXPIRES)}',
        f"[taskcluster:error] TASK FAILURE during artifact upload: file-missing-on-worker: {message}",
    ]


async def test_optional_error_artifact_only_warns(
    make_uploader: UploaderFactory, services: ServiceFactory, run: ClaimedRun, log: TaskLog
) -> None:
    long_message = "m" * 5000
    error = ErrorArtifact("public/opt", "opt", long_message, "file-missing-on-worker", EXPIRES, optional=True)
    uploader = make_uploader()
    assert await uploader.upload(error) is None
    assert [(u.name, u.storage_type) for u in uploader.uploaded] == [("public/opt", "error")]
    text = log.path.read_text()
    assert "[taskcluster:error]" not in text
    assert "[taskcluster:warn " in text
    got = await fetch(services.root_url, run, "public/opt", follow=False)
    assert got.status == 424
    assert b"m" * 4096 in got.body and b"m" * 4097 not in got.body  # truncated to the queue's limit


async def test_vanished_file_is_a_failure_and_optional_only_warns(
    tmp_path: Path, make_uploader: UploaderFactory, log: TaskLog
) -> None:
    uploader = make_uploader()
    gone = file_artifact(tmp_path / "gone.txt", "public/gone.txt", "text/plain", "gzip")
    result = await uploader.upload(gone)
    assert result is not None
    assert result.resolution == "failed/failed"
    assert result.message.startswith(
        "file-not-readable-on-worker: artifact public/gone.txt: Could not read file"
    )
    optional = file_artifact(tmp_path / "gone.txt", "public/gone2.txt", "text/plain", "gzip", optional=True)
    assert await uploader.upload(optional) is None
    assert "Not failing the task for optional artifact public/gone2.txt" in log.path.read_text()
    assert uploader.uploaded == []


async def test_upload_all_is_bounded_and_keeps_input_order(
    tmp_path: Path, make_uploader: UploaderFactory, proxied: ServiceFactory, proxy: FaultyProxy
) -> None:
    proxy.add(is_blob_put, "delay:0.2")
    artifacts: list[FileArtifact | ErrorArtifact] = []
    for i in range(6):
        (tmp_path / f"f{i}").write_bytes(b"%d" % i)
        artifacts.append(file_artifact(tmp_path / f"f{i}", f"public/f{i}", "text/plain", "identity"))
    artifacts.insert(1, ErrorArtifact("public/e1", "e1", "first", "file-missing-on-worker", EXPIRES))
    artifacts.append(ErrorArtifact("public/e2", "e2", "second", "invalid-resource-on-worker", EXPIRES))
    errors = await make_uploader(services=proxied, concurrency=2).upload_all(artifacts)
    assert [e.message for e in errors] == [
        "file-missing-on-worker: first",
        "invalid-resource-on-worker: second",
    ]
    assert proxy.seen.max_in_flight["blob-put"] == 2


async def test_a_precompressed_copy_is_uploaded_as_it_is_and_serves_retries(
    tmp_path: Path,
    make_uploader: UploaderFactory,
    proxied: ServiceFactory,
    proxy: FaultyProxy,
    run: ClaimedRun,
) -> None:
    # The backing log's way: the gzip copy already exists; the uploader must not compress again,
    # and a retried PUT sends the same copy.
    (tmp_path / "log.txt").write_bytes(TEXT)
    ready = gzip.compress(TEXT, mtime=0)
    (tmp_path / "ready.gz").write_bytes(ready)
    calls = []

    async def precompressed() -> FileSource | None:
        calls.append(1)
        return await FileSource.open(tmp_path / "ready.gz")

    proxy.add(is_blob_put, "status:500", times=1)
    artifact = file_artifact(
        tmp_path / "log.txt", "public/logs/x.log", "text/plain", "gzip", precompressed=precompressed
    )
    assert await make_uploader(services=proxied).upload(artifact) is None
    assert proxy.seen.count("PUT", "/blobs/") == 2
    assert calls == [1]
    got = await fetch(proxied.root_url, run, "public/logs/x.log")
    assert got.body == ready  # exactly the given copy (stdlib gzip, not ISA-L's)


async def test_without_a_precompressed_copy_the_uploader_compresses(
    tmp_path: Path, make_uploader: UploaderFactory, services: ServiceFactory, run: ClaimedRun
) -> None:
    (tmp_path / "log.txt").write_bytes(TEXT)

    async def nothing() -> FileSource | None:
        return None

    artifact = file_artifact(
        tmp_path / "log.txt", "public/logs/y.log", "text/plain", "gzip", precompressed=nothing
    )
    assert await make_uploader().upload(artifact) is None
    got = await fetch(services.root_url, run, "public/logs/y.log")
    assert got.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(got.body) == TEXT
