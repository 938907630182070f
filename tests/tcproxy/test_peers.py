"""The proxy's peer check: /proc/net/tcp parsing, and real connections from this and another uid."""

from __future__ import annotations

import ipaddress
import os
import pwd
import shutil
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from generic_worker.config import config_from_mapping
from generic_worker.process import TaskUser, run_capture
from generic_worker.tc import Credentials
from generic_worker.tcproxy import TaskclusterProxy
from generic_worker.tcproxy.peers import PeerNotFound, find_peer_uid, parse_address, parse_table, peer_uid

LINUX = pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc/net/tcp")

# Lines in the kernel's format (little-endian words), as on x86-64 and arm64.
TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 0100007F:D431 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1001        0 2 1 0 20 4 30 10 -1
   2: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0 20 4 30 10 -1
   3: 0100007F:D432 0200007F:1F90 01 00000000:00000000 00:00000000 00000000  1002        0 4 1 0 20 4 30 10 -1
   4: garbage line
"""
TCP6 = """\
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:A001 00000000000000000000000001000000:1F90 01 00000000:00000000 00:00000000 00000000  1003        0 5 1 0 20 4 30 10 -1
   1: 0000000000000000FFFF00000100007F:D433 0000000000000000FFFF00000100007F:1F90 01 00000000:00000000 00:00000000 00000000  1004        0 6 1 0 20 4 30 10 -1
"""
SYSTEM_PATH = "/usr/bin:/bin"
"""The other user cannot run this venv's python (under root's home): it runs the system one."""
LITTLE = pytest.mark.skipif(sys.byteorder != "little", reason="sample lines are little-endian")


@LITTLE
def test_addresses_decode_in_host_byte_order():
    assert parse_address("0100007F:1F90") == (ipaddress.ip_address("127.0.0.1"), 8080)
    assert parse_address("00000000000000000000000001000000:A001") == (ipaddress.ip_address("::1"), 40961)
    mapped = parse_address("0000000000000000FFFF00000100007F:D433")
    assert mapped == (ipaddress.ip_address("::ffff:127.0.0.1"), 0xD433)
    with pytest.raises(ValueError, match="not a /proc/net/tcp address"):
        parse_address("0100:0001")


@LITTLE
def test_table_entries_skip_the_header_and_malformed_lines():
    entries = list(parse_table(TCP.splitlines()))
    assert [e.uid for e in entries] == [0, 1001, 0, 1002]
    assert entries[1].local == (ipaddress.ip_address("127.0.0.1"), 0xD431)
    assert entries[1].remote == (ipaddress.ip_address("127.0.0.1"), 8080)


@LITTLE
def test_the_client_socket_is_matched_on_both_ends():
    tables = [TCP.splitlines(), TCP6.splitlines()]
    # The client's socket (local = the peer we see), never our accepted socket (uid 0).
    assert find_peer_uid(("127.0.0.1", 0xD431), ("127.0.0.1", 8080), tables) == 1001
    # Same client port towards another address is a different connection.
    with pytest.raises(PeerNotFound):
        find_peer_uid(("127.0.0.1", 0xD432), ("127.0.0.1", 8080), tables)
    assert find_peer_uid(("127.0.0.1", 0xD432), ("127.0.0.2", 8080), tables) == 1002
    assert find_peer_uid(("::1", 40961), ("::1", 8080), tables) == 1003
    # An IPv4 client of a dual-stack socket is listed in tcp6 as ::ffff:a.b.c.d.
    assert find_peer_uid(("::ffff:127.0.0.1", 0xD433), ("::ffff:127.0.0.1", 8080), tables) == 1004
    assert find_peer_uid(("127.0.0.1", 0xD433), ("127.0.0.1", 8080), tables) == 1004


def test_a_missing_proc_directory_finds_nobody(tmp_path: Path):
    with pytest.raises(PeerNotFound):
        peer_uid(("127.0.0.1", 1234), ("127.0.0.1", 8080), proc_net=tmp_path)


@LINUX
def test_a_real_connection_is_found_with_our_uid():
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        accepted, peer = server.accept()
        with client, accepted:
            assert peer_uid(accepted.getpeername(), accepted.getsockname()) == os.geteuid()
    # Once both ends are closed and gone, nothing matches any more.


# ---- the proxy over real connections ------------------------------------------------------------


@pytest.fixture
async def upstream_url() -> AsyncIterator[str]:
    """An upstream service that answers every request with 200 "signed:<Authorization present>"."""

    async def answer(request: web.Request) -> web.Response:
        return web.Response(text=f"signed:{'Authorization' in request.headers}")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


def proxy_for(root_url: str, allowed_uid: int) -> TaskclusterProxy:
    config, _ = config_from_mapping(
        {
            "rootURL": root_url,
            "accessToken": "a",
            "clientId": "c",
            "workerId": "w",
            "workerType": "t",
            "enableLiveLog": False,
        }
    )
    credentials: Credentials = {"clientId": "task-client/t", "accessToken": "secret"}
    return TaskclusterProxy(config, lambda: credentials, ["queue:get-task:*"], allowed_uid=allowed_uid)


@LINUX
async def test_the_proxy_serves_its_own_uid_and_refuses_another(upstream_url: str):
    for allowed, expected in ((os.geteuid(), 200), (os.geteuid() + 4242, 403)):
        proxy = proxy_for(upstream_url, allowed)
        await proxy.start(0)
        try:
            async with aiohttp.ClientSession() as session:
                for _ in range(2):  # keep-alive: the second request reuses the verdict
                    async with session.get(f"{proxy.url}/queue/v1/task/abc") as response:
                        body = await response.text()
                        assert response.status == expected, body
            if expected == 200:
                assert body == "signed:True"
            else:
                assert f"not uid {os.geteuid()}" in body
                assert "X-Taskcluster-Proxy-Temp-ClientId" not in response.headers
        finally:
            await proxy.close()


CLIENT = """
import sys, urllib.request, urllib.error
try:
    with urllib.request.urlopen(sys.argv[1]) as r:
        print(r.status, r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode())
"""


@LINUX
@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another user needs root")
async def test_a_process_of_another_user_gets_403_and_nothing_is_signed(upstream_url: str):
    python = shutil.which("python3", path=SYSTEM_PATH)
    if python is None:
        pytest.skip(f"no python3 on {SYSTEM_PATH} for the other user to run")
    nobody = pwd.getpwnam("nobody")
    user = TaskUser("nobody", nobody.pw_uid, nobody.pw_gid, (), Path("/"))
    env = {"PATH": SYSTEM_PATH}
    for allowed, expected in ((os.geteuid(), "403"), (nobody.pw_uid, "200 signed:True")):
        proxy = proxy_for(upstream_url, allowed)
        await proxy.start(0)
        try:
            url = f"{proxy.url}/queue/v1/task/abc"
            result = await run_capture(
                [python, "-c", CLIENT, url], env=env, cwd=Path("/"), user=user, timeout=60
            )
        finally:
            await proxy.close()
        assert result.succeeded, result.text
        assert result.text.startswith(expected), result.text
        if expected == "403":
            assert f"not uid {nobody.pw_uid}" in result.text
