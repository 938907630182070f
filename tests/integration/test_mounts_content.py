"""Mount content against tc-local and a loopback HTTP server (seed-gw.md §4.3-4.4; modern-gw.md §5.6).

Every archive and compression format, sha256 checks with the seed's exact lines, the download
cache across tasks, URL retries, indexed and object-storage artifacts, inline content, and the
payload and path problems a mount can have.
"""

from __future__ import annotations

import re

import pytest

from generic_worker.mounts.compression import ARCHIVE_FORMATS, COMPRESSIONS

from ..mounts.archives import Entry, archive, compress
from ..mounts.content import content_server, payload, publish_task, sha256
from .harness import GW

FILES = [Entry("top.txt", data=b"top\n"), Entry("sub/dir/deep.txt", data=b"deep\n", mode=0o755)]


def mounts_lines(log: str) -> list[str]:
    """The `[mounts]` lines of a log, without the `[taskcluster ...] ` prefixes."""
    return [re.sub(r"^\[taskcluster[^\]]*\] ", "", line) for line in log.splitlines() if "[mounts]" in line]


async def test_every_archive_format_from_a_dependency(gw: GW):
    artifacts = {f"public/a.{fmt}": archive(FILES, fmt) for fmt in ARCHIVE_FORMATS}
    dep = await publish_task(gw.tc, artifacts)
    mounts = [
        {"directory": f"x/{fmt}", "content": {"taskId": dep, "artifact": f"public/a.{fmt}"}, "format": fmt}
        for fmt in ARCHIVE_FORMATS
    ]
    checks = " && ".join(
        f'test "$(cat x/{fmt}/top.txt x/{fmt}/sub/dir/deep.txt)" = "$(printf \'top\\ndeep\')" '
        f"&& test -x x/{fmt}/sub/dir/deep.txt"
        for fmt in ARCHIVE_FORMATS
    )
    task_id = await gw.submit(payload(mounts, checks), dependencies=[dep])
    await gw.run()
    log = await gw.log(task_id)
    assert await gw.resolution(task_id) == "completed/completed", log
    for fmt in ARCHIVE_FORMATS:
        assert f"[mounts] Extracting {fmt} file " in log


async def test_every_file_compression_format(gw: GW):
    text = b"testing file mounts with compression!\n" * 100
    artifacts = {f"public/f.{fmt}": compress(text, fmt) for fmt in COMPRESSIONS}
    dep = await publish_task(gw.tc, artifacts)
    mounts = [
        {"file": f"out.{fmt}", "content": {"taskId": dep, "artifact": f"public/f.{fmt}"}, "format": fmt}
        for fmt in COMPRESSIONS
    ]
    check = " && ".join(f"cmp out.{fmt} out.gz" for fmt in COMPRESSIONS) + " && head -1 out.zst"
    task_id = await gw.submit(payload(mounts, check), dependencies=[dep])
    await gw.run()
    log = await gw.log(task_id)
    assert await gw.resolution(task_id) == "completed/completed", log
    assert "testing file mounts with compression!" in log
    assert f"[mounts] Decompressing br file {gw.tmp / 'downloads'}/" in log


@pytest.mark.parametrize(
    ("mount", "message"),
    [
        ({"directory": "d", "format": "7z"}, "archive format '7z' is not supported by this worker"),
        ({"directory": "d", "format": "rar"}, "archive format 'rar' is not supported by this worker"),
        ({"file": "f", "format": "lz"}, "file format 'lz' is not supported by this worker"),
    ],
)
async def test_unsupported_formats_fail_clearly(gw: GW, mount: dict[str, str], message: str):
    task_id = await gw.submit(payload([{**mount, "content": {"raw": "x"}}]))
    await gw.run()
    assert await gw.resolution(task_id) == "failed/failed"
    assert f"[taskcluster:error] [mounts] {message}" in await gw.log(task_id)


async def test_artifact_of_a_task_outside_the_dependencies_is_malformed(gw: GW):
    dep = await publish_task(gw.tc, {"public/f.txt": b"x"})
    task_id = await gw.submit(
        payload([{"file": "f", "content": {"taskId": dep, "artifact": "public/f.txt"}}])
    )
    await gw.run()
    assert await gw.resolution(task_id) == "exception/malformed-payload"
    assert (
        f"[mounts] task.dependencies needs to include {dep} since one or more of its artifacts are mounted"
        in await gw.log(task_id)
    )


async def test_sha256_mismatch_fails_twice_with_the_seed_lines(gw: GW):
    data = archive(FILES, "zip")
    dep = await publish_task(gw.tc, {"public/a.zip": data})
    wrong = "9" * 64
    mounts = [
        {
            "directory": ".",
            "content": {"taskId": dep, "artifact": "public/a.zip", "sha256": wrong},
            "format": "zip",
        }
    ]
    for _ in range(2):
        task_id = await gw.submit(payload(mounts), dependencies=[dep])
        await gw.run()
        assert await gw.resolution(task_id) == "failed/failed"
        log = await gw.log(task_id)
        lines = mounts_lines(log)
        (file,) = {m for line in lines for m in re.findall(r"to (\S+/downloads/\S+)$", line)}
        source = f"task {dep} artifact public/a.zip"
        key = f"artifact:{dep}:public/a.zip"
        assert lines == [
            f"[mounts] Downloading {source} to {file}",
            f"[mounts] Downloaded {len(data)} bytes with SHA256 {sha256(data)} from {source} to {file}",
            f"[mounts] Removing cache {key} from cache table",
            f"[mounts] Deleting cache {key} file(s) at {file}",
            f"[mounts] Download {file} of {source} has SHA256 {sha256(data)} but task "
            f"definition explicitly requires {wrong}; not retrying download as there were no connection "
            "failures and HTTP response status code was 200",
        ]
        assert f"[taskcluster:error] [mounts] Download {file} of {source}" in log
    assert list((gw.tmp / "downloads").iterdir()) == []


async def test_valid_sha256_downloads_once(gw: GW):
    data = archive(FILES, "tar.gz")
    dep = await publish_task(gw.tc, {"public/a.tar.gz": data}, gzip_encoded=True)
    mounts = [
        {
            "directory": "d",
            "content": {"taskId": dep, "artifact": "public/a.tar.gz", "sha256": sha256(data)},
            "format": "tar.gz",
        }
    ]
    logs = []
    for _ in range(2):
        task_id = await gw.submit(payload(mounts, "cat d/top.txt"), dependencies=[dep])
        await gw.run()
        assert await gw.resolution(task_id) == "completed/completed"
        logs.append(await gw.log(task_id))
    assert f"matches required SHA256 {sha256(data)}" in logs[0]
    assert "Downloading" not in logs[1]
    assert f"[mounts] Found existing download for artifact:{dep}:public/a.tar.gz (" in logs[1]


async def test_url_content_is_fetched_once_and_retried_after_5xx(gw: GW):
    async with content_server() as server:
        url = server.add("data.bin", b"url content\n")
        server.fail_first["data.bin"] = 2
        mounts = [{"file": "a.txt", "content": {"url": url, "sha256": sha256(b"url content\n")}}]
        first = await gw.submit(payload(mounts, "cat a.txt"))
        second = await gw.submit(payload([{"file": "b.txt", "content": {"url": url}}], "cat b.txt"))
        await gw.run(numberOfTasksToRun=2)
        assert server.hits["data.bin"] == 3  # two failures, one success, then the cache
    assert await gw.resolution(first) == "completed/completed"
    assert await gw.resolution(second) == "completed/completed"
    log = await gw.log(first)
    assert log.count(f"[mounts] Download of url {url} failed on this attempt: HTTP 500") == 2
    assert "No SHA256 specified in task mounts for urlcontent:" + url in await gw.log(second)


async def test_indexed_artifacts_follow_the_index(gw: GW):
    namespace = f"project.mounts.{gw.worker_type}"
    old = await publish_task(gw.tc, {"public/i.txt": b"old\n"}, index=namespace, rank=1)
    mounts = [{"file": "i.txt", "content": {"namespace": namespace, "artifact": "public/i.txt"}}]
    first = await gw.submit(payload(mounts, "cat i.txt"))
    await gw.run()
    again = await gw.submit(payload(mounts, "cat i.txt"))
    await gw.run()
    new = await publish_task(gw.tc, {"public/i.txt": b"new\n"}, index=namespace, rank=2)
    third = await gw.submit(payload(mounts, "cat i.txt"))
    await gw.run()
    logs = [await gw.log(t) for t in (first, again, third)]
    assert f"[mounts] Index namespace {namespace} resolves to task {old}" in logs[0]
    assert "old\n" in logs[0] and "Downloading" in logs[0]
    assert (
        "Downloading" not in logs[1] and f"No SHA256 specified in task mounts for artifact:{old}:" in logs[1]
    )
    assert f"resolves to task {new}" in logs[2] and "new\n" in logs[2] and "Downloading" in logs[2]


async def test_object_artifacts_raw_and_base64(gw: GW):
    dep = await publish_task(gw.tc, {"public/o.txt": b"object data\n"}, storage="object")
    mounts = [
        {
            "file": "o.txt",
            "content": {"taskId": dep, "artifact": "public/o.txt", "sha256": sha256(b"object data\n")},
        },
        {"file": "r.txt", "content": {"raw": "raw data\n"}},
        {"file": "b.txt", "content": {"base64": "YmFzZTY0IGRhdGEK"}},
        {"file": "z.txt", "content": {"base64": "eJwrzs9NVUhJLEnkAgAU+gN5"}, "format": "zz"},
    ]
    task_id = await gw.submit(payload(mounts, "cat o.txt r.txt b.txt z.txt"), dependencies=[dep])
    await gw.run()
    log = await gw.log(task_id)
    assert await gw.resolution(task_id) == "completed/completed", log
    assert "object data\nraw data\nbase64 data\nsome data\n" in log


async def test_missing_artifact_fails(gw: GW):
    dep = await publish_task(gw.tc, {"public/there.txt": b"x"})
    name = "SampleArtifacts/_/non-existent-artifact.txt"
    mounts = [{"directory": "d", "content": {"taskId": dep, "artifact": name}, "format": "zip"}]
    task_id = await gw.submit(payload(mounts), dependencies=[dep])
    await gw.run()
    assert await gw.resolution(task_id) == "failed/failed"
    assert f"[mounts] Could not fetch from task {dep} artifact {name} into file" in await gw.log(task_id)


@pytest.mark.parametrize(
    ("mounts", "message"),
    [
        (
            [{"file": ".", "content": {"raw": "x"}}],
            "cannot mount file at path {task_dir} since it already exists as a directory",
        ),
        (
            [{"file": "../escape.txt", "content": {"raw": "x"}}],
            "cannot mount at path '../escape.txt': it is outside the task directory",
        ),
        (
            [{"file": "/etc/gw-escape", "content": {"raw": "x"}}],
            "cannot mount at path '/etc/gw-escape': it is outside the task directory",
        ),
        ([{"directory": "d", "content": {"raw": "not a zip"}, "format": "zip"}], "cannot unarchive"),
        (
            [
                {"file": "same", "content": {"raw": "x"}},
                {"directory": "same", "content": {"raw": "x"}, "format": "zip"},
            ],
            "cannot create directory {task_dir}/same",
        ),
    ],
    ids=["file-at-cwd", "dotdot", "absolute-outside", "corrupt-zip", "file-then-dir"],
)
async def test_bad_mounts_fail_the_task(gw: GW, mounts: list[dict[str, object]], message: str):
    task_id = await gw.submit(payload(mounts))
    await gw.run()
    assert await gw.resolution(task_id) == "failed/failed"
    task_dir = next(gw.task_dirs())
    assert "[taskcluster:error] [mounts] " + message.format(task_dir=task_dir) in await gw.log(task_id)
    assert not (gw.tmp / "tasks" / "escape.txt").exists()


async def test_a_task_changing_its_file_mount_does_not_change_the_cache(gw: GW):
    async with content_server() as server:
        url = server.add("f.txt", b"original\n")
        mounts = [{"file": "f.txt", "content": {"url": url}}]
        changer = await gw.submit(payload(mounts, "echo changed > f.txt; cat f.txt"))
        reader = await gw.submit(payload(mounts, "cat f.txt"))
        await gw.run(numberOfTasksToRun=2)
    assert "changed\n" in await gw.log(changer)
    assert "original\n" in await gw.log(reader)


async def test_a_damaged_download_is_detected_and_fetched_again(gw: GW):
    async with content_server() as server:
        url = server.add("f.txt", b"original\n")
        mounts = [{"file": "f.txt", "content": {"url": url}}]
        await gw.submit(payload(mounts, "cat f.txt"))
        await gw.run()
        (cached,) = (gw.tmp / "downloads").iterdir()
        cached.write_bytes(b"ORIGINAL\n")  # same size: only the hash tells
        task_id = await gw.submit(payload(mounts, "cat f.txt"))
        await gw.run()
        assert server.hits["f.txt"] == 2
    log = await gw.log(task_id)
    damaged = sha256(b"ORIGINAL\n")
    assert f"[mounts] Cached download {cached} of urlcontent:{url} has SHA256 {damaged}" in log
    assert "original\n" in log
