"""The built-in live log against a real tc-local (TARGET §9-§10, seed-gw.md §2.1, modern-gw.md §5.5)."""

import asyncio
import datetime
import ipaddress
import socket
import ssl
import sys
from pathlib import Path

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from yarl import URL

from generic_worker.exitcodes import ExitCode
from generic_worker.livelog import decode_stateless_dns_name
from tests.livelog.reading import assert_live_log_response, read_until

from .harness import GW, MeasuredWorker, wait_for

SCRIPT = Path(sys.executable).parent / "generic-worker"


def wait_then(go: Path, before: str, after: str) -> list[str]:
    """A command that prints `before`, waits for the file `go`, then prints `after`."""
    return ["/bin/sh", "-c", f"echo '{before}'; while [ ! -e '{go}' ]; do sleep 0.02; done; echo '{after}'"]


async def live_url(gw: GW, task_id: str, name: str = "public/logs/live.log") -> str:
    """The URL the live log reference artifact points to, once the worker has published it."""

    async def reference() -> bool:
        artifact = (await gw.artifacts(task_id)).get(name)
        return artifact is not None and artifact["storageType"] == "reference"

    await wait_for(reference)
    async with aiohttp.ClientSession() as session:
        url = gw.queue(session).buildSignedUrl("getArtifact", task_id, "0", name)
        async with session.get(url, allow_redirects=False) as response:
            assert response.status == 303
            return response.headers["Location"]


async def test_reader_joining_mid_task_gets_everything_in_order_until_the_end(gw: GW):
    go = gw.tmp / "go"
    task_id = await gw.submit({"command": [wait_then(go, "first line", "second line")], "maxRunTime": 60})
    worker = asyncio.create_task(gw.run())
    url = await live_url(gw, task_id)
    assert url.startswith("http://127.0.0.1:") and "/log/" in url
    received = bytearray()
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert_live_log_response(response)
        await read_until(response, received, b"\nfirst line\n")
        assert b"\nsecond line\n" not in received
        go.touch()
        async with asyncio.timeout(30):
            received += await response.content.read()  # to the end: the stream ends with the task
    assert await worker == ExitCode.TASKS_COMPLETE
    assert await gw.resolution(task_id) == "completed/completed"
    log = await gw.log(task_id)
    assert received.decode() == log  # every byte of the backing log, in order, then the end
    assert log.index("\nfirst line\n") < log.index("\nsecond line\n") < log.index("=== Task Finished ===")
    artifacts = await gw.artifacts(task_id)
    assert artifacts["public/logs/live.log"]["storageType"] == "link"
    assert (await gw.content(task_id, "public/logs/live.log")).decode() == log


async def test_many_readers_at_once_each_get_the_whole_log(gw: GW):
    go = gw.tmp / "go"
    script = f"seq 1 20000; while [ ! -e '{go}' ]; do sleep 0.02; done; seq 20001 40000"
    task_id = await gw.submit({"command": [["/bin/sh", "-c", script]], "maxRunTime": 60})
    worker = asyncio.create_task(gw.run())
    url = await live_url(gw, task_id)

    async def reader(session: aiohttp.ClientSession) -> bytes:
        async with session.get(url) as response:
            assert response.status == 200
            return await response.content.read()

    async with aiohttp.ClientSession() as session:
        readers = [asyncio.create_task(reader(session)) for _ in range(8)]
        await wait_for(
            lambda: b"20000\n" in (next(gw.task_dirs()) / "generic-worker/live_backing.log").read_bytes()
        )
        go.touch()
        async with asyncio.timeout(60):
            bodies = await asyncio.gather(*readers)
    assert await worker == ExitCode.TASKS_COMPLETE
    log = (await gw.log(task_id)).encode()
    assert b"\n40000\n" in log
    assert all(body == log for body in bodies)


async def test_wrong_and_finished_tokens_get_401_that_tells_nothing(gw: GW):
    go_a, go_b = gw.tmp / "go-a", gw.tmp / "go-b"
    task_a = await gw.submit({"command": [wait_then(go_a, "a", "a done")], "maxRunTime": 60})
    worker = asyncio.create_task(gw.run(numberOfTasksToRun=2))
    url_a = await live_url(gw, task_a)
    task_b = await gw.submit({"command": [wait_then(go_b, "b", "b done")], "maxRunTime": 60})
    go_a.touch()
    url_b = await live_url(gw, task_b)  # task A has finished: B runs on the same server
    assert await gw.resolution(task_a) == "completed/completed"
    token_b = url_b.rsplit("/", 1)[1]
    wrong = url_b.replace(token_b, "x" + token_b[1:])
    async with aiohttp.ClientSession() as session:
        for url in (url_a, wrong):
            async with session.get(url) as response:
                assert response.status == 401
                assert await response.text() == "Access denied"
                assert response.headers["Access-Control-Allow-Origin"] == "*"
        async with session.get(url_b) as response:
            assert response.status == 200
    go_b.touch()
    assert await worker == ExitCode.TASKS_COMPLETE
    assert url_a.rsplit("/", 1)[1] != token_b  # a new token per task
    assert url_a.rsplit("/", 1)[0] == url_b.rsplit("/", 1)[0]  # one server for the worker


async def test_a_stalled_reader_neither_blocks_the_task_nor_grows_worker_memory(gw: GW):
    go = gw.tmp / "go"
    mib = 256
    script = f"echo ready; while [ ! -e '{go}' ]; do sleep 0.02; done; head -c {mib << 20} /dev/zero; echo; echo done"
    task_id = await gw.submit({"command": [["/bin/sh", "-c", script]], "maxRunTime": 300})
    config = gw.write_config(gw.tmp / "gw.json", cleanUpTaskDirs=True)
    worker = await MeasuredWorker.start(config, gw.tmp)
    waiter = asyncio.create_task(worker.wait(240))
    try:
        url = URL(await live_url(gw, task_id))
        stalled = socket.create_connection((url.host, url.port))
        stalled.sendall(f"GET {url.raw_path} HTTP/1.1\r\nHost: {url.host}\r\n\r\n".encode())
        assert stalled.recv(12) == b"HTTP/1.1 200"  # connected; from now on it reads nothing
        go.touch()
        code = await waiter
    finally:
        if not waiter.done():
            worker.proc.kill()
    assert code == ExitCode.TASKS_COMPLETE
    assert await gw.resolution(task_id) == "completed/completed"
    assert worker.peak_mib < 100, f"worker peak RSS {worker.peak_mib:.0f} MiB with a stalled live log reader"
    assert (await gw.artifacts(task_id))["public/logs/live_backing.log"]["contentLength"] > mib << 20
    stalled.close()


def self_signed(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "livelog.crt", tmp / "livelog.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


async def test_https_with_a_certificate(gw: GW):
    cert, key = self_signed(gw.tmp)
    go = gw.tmp / "go"
    task_id = await gw.submit({"command": [wait_then(go, "over tls", "bye")], "maxRunTime": 60})
    worker = asyncio.create_task(gw.run(livelogCertificate=str(cert), livelogKey=str(key)))
    url = await live_url(gw, task_id)
    assert url.startswith("https://127.0.0.1:")
    context = ssl.create_default_context(cafile=str(cert))
    received = bytearray()
    async with aiohttp.ClientSession() as session:
        async with session.get(url, ssl=context) as response:
            assert response.status == 200
            await read_until(response, received, b"over tls\n")
        go.touch()
    assert await worker == ExitCode.TASKS_COMPLETE
    assert await gw.resolution(task_id) == "completed/completed"


async def test_stateless_dns_host_name_when_subdomain_is_set(gw: GW):
    go = gw.tmp / "go"
    task_id = await gw.submit({"command": [wait_then(go, "named", "bye")], "maxRunTime": 600})
    before = datetime.datetime.now(datetime.UTC)
    worker = asyncio.create_task(gw.run(subdomain="livelog.example.com", livelogSecret="turnip4tea"))
    url = URL(await live_url(gw, task_id))
    assert url.host is not None and url.host.endswith(".livelog.example.com")
    decoded = decode_stateless_dns_name(url.host, "livelog.example.com", "turnip4tea")
    assert decoded.ip == "127.0.0.1"
    slack = datetime.timedelta(seconds=600 + 900)  # maxRunTime + 15 minutes, as upstream
    assert before + slack <= decoded.expires <= datetime.datetime.now(datetime.UTC) + slack
    async with aiohttp.ClientSession() as session:  # the name resolves to 127.0.0.1: ask it there
        async with session.get(url.with_host("127.0.0.1")) as response:
            assert response.status == 200
    go.touch()
    assert await worker == ExitCode.TASKS_COMPLETE


async def test_renamed_logs(gw: GW):
    logs = {"live": "public/banana.log", "backing": "public/banana_backing.log"}
    task_id = await gw.submit({"command": [["echo", "hello world!"]], "maxRunTime": 30, "logs": logs})
    assert await gw.run() == ExitCode.TASKS_COMPLETE
    assert await gw.resolution(task_id) == "completed/completed"
    artifacts = await gw.artifacts(task_id)
    assert set(artifacts) == {"public/banana.log", "public/banana_backing.log"}
    assert artifacts["public/banana.log"]["storageType"] == "link"
    live = (await gw.content(task_id, "public/banana.log")).decode()
    assert "hello world!" in live
    assert live == (await gw.content(task_id, "public/banana_backing.log")).decode()


async def test_live_log_switched_off_by_the_payload(gw: GW):
    task_id = await gw.submit({"command": [["echo", "hi"]], "maxRunTime": 30, "features": {"liveLog": False}})
    assert await gw.run() == ExitCode.TASKS_COMPLETE
    assert await gw.resolution(task_id) == "completed/completed"
    assert set(await gw.artifacts(task_id)) == {"public/logs/live_backing.log"}


async def test_without_the_backing_log_the_reference_is_not_linked(gw: GW):
    task_id = await gw.submit(
        {"command": [["echo", "hi"]], "maxRunTime": 30, "features": {"backingLog": False}}
    )
    assert await gw.run() == ExitCode.TASKS_COMPLETE
    assert await gw.resolution(task_id) == "completed/completed"
    artifacts = await gw.artifacts(task_id)
    assert set(artifacts) == {"public/logs/live.log"}
    assert artifacts["public/logs/live.log"]["storageType"] == "reference"  # as upstream: nothing to link to


async def test_enable_live_log_false_refuses_tasks_that_ask_for_it(gw: GW):
    asking = await gw.submit({"command": [["echo", "hi"]], "maxRunTime": 30})
    assert await gw.run(enableLiveLog=False) == ExitCode.TASKS_COMPLETE
    assert await gw.resolution(asking) == "exception/malformed-payload"
    assert (
        f'this task is attempting to use feature "Live Log", but it\'s not enabled on this worker pool '
        f"(test-provisioner/{gw.worker_type})" in await gw.log(asking)
    )
    not_asking = await gw.submit(
        {"command": [["echo", "hi"]], "maxRunTime": 30, "features": {"liveLog": False}}
    )
    assert await gw.run(enableLiveLog=False) == ExitCode.TASKS_COMPLETE
    assert await gw.resolution(not_asking) == "completed/completed"
    assert set(await gw.artifacts(not_asking)) == {"public/logs/live_backing.log"}


async def test_a_live_log_that_cannot_start_is_only_a_warning(gw: GW):
    with socket.socket() as busy:
        busy.bind(("", 0))
        busy.listen()
        port = busy.getsockname()[1]
        task_id = await gw.submit({"command": [["echo", "still runs"]], "maxRunTime": 30})
        assert await gw.run(livelogGETPort=port) == ExitCode.TASKS_COMPLETE
    assert await gw.resolution(task_id) == "completed/completed"
    assert set(await gw.artifacts(task_id)) == {"public/logs/live_backing.log"}
    log = await gw.log(task_id)
    assert "still runs" in log
    assert f"No live log for this task: could not serve the live log on port {port}" in log
