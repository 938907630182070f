"""Fakes of the outside systems `--configure-for-aws` talks to: the EC2 metadata service and the
legacy aws-provisioner, on loopback (we cannot run either), plus a recording shutdown command.
"""

from __future__ import annotations

import base64
import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

INSTANCE_ID = "i-0123456789abcdef0"
REGION = "us-west-2"
TOKEN = "s3cur1ty-t0ken"


def recording_shutdown(tmp: Path) -> tuple[Path, Path]:
    """`shutdown` must never run in a test: a stand-in records its arguments."""
    record = tmp / "shutdown-called.txt"
    script = tmp / "fake-shutdown"
    script.write_text(f'#!/bin/sh\necho "$@" >> {record}\n')
    script.chmod(0o755)
    return script, record


def zip_of(files: dict[str, bytes]) -> str:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return base64.b64encode(buffer.getvalue()).decode()


@dataclass
class FakeEC2:
    """One loopback server: metadata under `/latest/`, the provisioner under `/provisioner/v1/`."""

    worker_type: str
    credentials: dict[str, str]
    gw_config: dict[str, Any] = field(default_factory=dict)
    files: list[dict[str, Any]] = field(default_factory=list)
    deployment_id: str = "deployment-1"
    spot_status: int = 404
    worker_type_status: int = 200
    secret_taken: bool = False
    calls: list[str] = field(default_factory=list)
    worker_type_auth: list[str] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None

    @property
    def provisioner_url(self) -> str:
        return f"{self.url}/provisioner/v1"

    def metadata(self) -> dict[str, str]:
        return {
            "ami-id": "ami-12345",
            "instance-id": INSTANCE_ID,
            "instance-type": "c5.xlarge",
            "public-ipv4": "127.0.0.1",
            "placement/availability-zone": f"{REGION}b",
            "public-hostname": "ec2-127-0-0-1.example.com",
            "local-ipv4": "10.0.0.7",
        }

    async def start(self) -> FakeEC2:
        app = web.Application()
        app.router.add_get("/latest/user-data", self._user_data)
        app.router.add_get("/latest/meta-data/{path:.*}", self._meta_data)
        app.router.add_get("/provisioner/v1/secret/{token}", self._get_secret)
        app.router.add_delete("/provisioner/v1/secret/{token}", self._delete_secret)
        app.router.add_get("/provisioner/v1/worker-type/{wt}", self._worker_type)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _user_data(self, request: web.Request) -> web.Response:
        self.calls.append("GET user-data")
        data = {
            "provisionerId": "test-provisioner",
            "workerType": self.worker_type,
            "region": REGION,
            "provisionerBaseUrl": self.provisioner_url,
            "securityToken": TOKEN,
            "capacity": 1,
        }
        return web.json_response(data)

    async def _meta_data(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        self.calls.append(f"GET meta-data/{path}")
        if path == "spot/termination-time":
            if self.spot_status == 200:
                return web.Response(text="2026-12-06T05:00:00Z")
            return web.Response(status=self.spot_status)
        value = self.metadata().get(path)
        return web.Response(text=value) if value is not None else web.Response(status=404)

    async def _get_secret(self, request: web.Request) -> web.Response:
        self.calls.append(f"GET secret/{request.match_info['token']}")
        if self.secret_taken or request.match_info["token"] != TOKEN:
            return web.json_response({"code": "ResourceNotFound", "message": "no such secret"}, status=404)
        secret = {
            "credentials": self.credentials,
            "data": {"generic-worker": {"config": self.gw_config}, "files": self.files},
            "scopes": [],
        }
        return web.json_response(secret)

    async def _delete_secret(self, request: web.Request) -> web.Response:
        self.calls.append(f"DELETE secret/{request.match_info['token']}")
        self.secret_taken = True
        return web.json_response({})

    async def _worker_type(self, request: web.Request) -> web.Response:
        self.calls.append(f"GET worker-type/{request.match_info['wt']}")
        self.worker_type_auth.append(request.headers.get("Authorization", ""))
        if self.worker_type_status != 200:
            return web.json_response({"message": "broken"}, status=self.worker_type_status)
        body = {"secrets": {"generic-worker": {"config": {"deploymentId": self.deployment_id}}}}
        return web.Response(text=json.dumps(body), content_type="application/json")
