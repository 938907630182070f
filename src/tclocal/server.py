"""TCLocalServer: tc-local assembled and served in-process (async start/stop).

The data directory holds `state.sqlite` (WAL), `blobs/`, and `secrets.json` (mode 0600: the
root access token, the queue's issuing token and the signing secrets, generated on first
start). A root access token given explicitly is used as is and never written down.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web
from aiohttp.log import access_logger

from tclocal.auth.store import AuthStore, Client, generate_secret, new_access_token, static_client
from tclocal.context import QUEUE_CLIENT_ID, Context, Settings
from tclocal.core.blobs import BlobStore
from tclocal.core.db import Database
from tclocal.core.endpoints import Service
from tclocal.core.hawk import Authenticator
from tclocal.http_app import build_app, build_services
from tclocal.queue.reaper import Reaper
from tclocal.web import WebView

ROOT_CLIENT_ID = "static/taskcluster/root"


@dataclass
class ServerConfig:
    """Where and how to run tc-local."""

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8080
    root_access_token: str | None = None
    clients_file: Path | None = None
    settings: Settings = field(default_factory=Settings)
    access_log: bool = False


def load_secrets(data_dir: Path) -> dict[str, str]:
    """Read (or create, mode 0600) the data directory's generated secrets."""
    path = data_dir / "secrets.json"
    if path.exists():
        stored: dict[str, str] = json.loads(path.read_text())
    else:
        stored = {}
    wanted = {
        "rootAccessToken": new_access_token,
        "queueAccessToken": new_access_token,
        "blobSecret": generate_secret,
        "websocktunnelSecret": generate_secret,
    }
    missing = {k: make() for k, make in wanted.items() if k not in stored}
    if missing:
        stored.update(missing)
        data_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(stored, handle, indent=2)
        os.replace(tmp, path)
    return stored


def write_server_info(data_dir: Path, root_url: str) -> None:
    """Record where `serve` listens, so client commands find it from the data directory."""
    (data_dir / "server.json").write_text(json.dumps({"rootUrl": root_url}) + "\n")


def read_client_options(data_dir: Path) -> dict[str, Any] | None:
    """Client options (root credentials) for the tc-local serving from `data_dir`, if any."""
    try:
        root_url = json.loads((data_dir / "server.json").read_text())["rootUrl"]
        token = json.loads((data_dir / "secrets.json").read_text())["rootAccessToken"]
    except (OSError, ValueError, KeyError):
        return None
    return {"rootUrl": root_url, "credentials": {"clientId": ROOT_CLIENT_ID, "accessToken": token}}


def load_clients_file(path: Path) -> list[Client]:
    """Static clients from a YAML/JSON list of `{clientId, accessToken, scopes, description}`."""
    entries: Any = yaml.safe_load(path.read_text())
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a list of clients")
    clients = []
    for entry in entries:
        if not isinstance(entry, dict) or not {"clientId", "accessToken"} <= entry.keys():
            raise ValueError(f"{path}: each client needs clientId and accessToken")
        scopes = entry.get("scopes", [])
        if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
            raise ValueError(f"{path}: scopes of {entry['clientId']} must be a list of strings")
        clients.append(
            static_client(
                str(entry["clientId"]), str(entry["accessToken"]), scopes, str(entry.get("description", ""))
            )
        )
    return clients


class TCLocalServer:
    """A running tc-local: database, services, reaper and HTTP listener."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.root_url = ""
        self.root_client_id = ROOT_CLIENT_ID
        self.root_access_token = ""
        self._runner: web.AppRunner | None = None
        self._db: Database | None = None
        self._reaper: Reaper | None = None
        self.ctx: Context | None = None
        self.services: dict[str, Service] = {}
        self._view: WebView | None = None

    async def start(self) -> None:
        """Open the state, start the reaper and listen; `root_url` is set when this returns."""
        cfg = self.config
        data_dir = cfg.data_dir
        secrets = await asyncio.to_thread(load_secrets, data_dir)
        self.root_access_token = cfg.root_access_token or secrets["rootAccessToken"]
        statics = [
            static_client(ROOT_CLIENT_ID, self.root_access_token, ["*"], "tc-local root client"),
            static_client(QUEUE_CLIENT_ID, secrets["queueAccessToken"], ["*"], "issues task credentials"),
        ]
        if cfg.clients_file is not None:
            statics += await asyncio.to_thread(load_clients_file, cfg.clients_file)
        self._db = Database(data_dir / "state.sqlite")
        await self._db.open()
        auth = AuthStore(self._db, statics, cfg.settings.last_used_delay)
        await auth.load()
        blobs = BlobStore(data_dir / "blobs", secrets["blobSecret"])
        authenticator = Authenticator(auth.lookup, auth.expand, cfg.settings.hawk_skew)
        ctx = Context(cfg.settings, self._db, auth, authenticator, blobs, secrets["queueAccessToken"])
        self.ctx = ctx
        self._reaper = Reaper(ctx)
        ctx.poke_reaper = self._reaper.poke
        self.services = build_services(ctx, secrets["websocktunnelSecret"])
        self._view = WebView(ctx)
        app = build_app(self.services, blobs, self._view)
        # handler_cancellation: a claimWork long-poll whose worker went away stops waiting.
        # auto_decompress off: a blob PUT with Content-Encoding: gzip is stored as sent, like S3.
        self._runner = web.AppRunner(
            app,
            handler_cancellation=True,
            auto_decompress=False,
            shutdown_timeout=5.0,
            access_log=access_logger if cfg.access_log else None,
        )
        await self._runner.setup()
        family = socket.AF_INET6 if ":" in cfg.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((cfg.host, cfg.port))
        sock.setblocking(False)
        site = web.SockSite(self._runner, sock)
        await site.start()
        port = sock.getsockname()[1]
        host = f"[{cfg.host}]" if family == socket.AF_INET6 else cfg.host
        self.root_url = ctx.root_url = blobs.base_url = f"http://{host}:{port}"
        self._reaper.start()

    async def stop(self) -> None:
        """Stop listening, stop the reaper, close the database (in that order).

        Waiting claimWork long-polls are answered (empty) first, so stopping does not wait
        for them to time out.
        """
        if self.ctx is not None:
            self.ctx.notifier.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._view is not None:
            await self._view.close()
            self._view = None
        if self._reaper is not None:
            await self._reaper.stop()
            self._reaper = None
        if self._db is not None:
            await self._db.close()
            self._db = None
