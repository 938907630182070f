"""The worker-runner protocol (`run --with-worker-runner`): `~{json}` lines on stdin and stdout.

worker-runner starts the worker with pipes, sends `welcome` with its capabilities, and the worker
answers `hello` with its own; a capability is usable when both sides listed it. The runner may
then send `graceful-termination` (`finish-tasks`: let running tasks finish, or abort them as
`worker-shutdown`) and `new-credentials`; the worker may send `log` (its log lines, once agreed),
`error-report` (on a crash) and `shutdown` (ask the runner to remove the worker instead of
shutting the machine down itself). Lines that are not `~{...}` are ignored, as the runner does.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

CAPABILITIES = ("error-report", "graceful-termination", "log", "new-credentials", "shutdown")
"""What this worker supports, sorted as upstream sends them."""

Handler = Callable[[dict[str, Any]], None]


def encode(message: dict[str, Any]) -> bytes:
    """One protocol line: `~` + compact JSON + newline."""
    return b"~" + json.dumps(message, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> dict[str, Any] | None:
    """The message on a line, or None when the line is not a protocol message."""
    text = line.strip()
    if not text.startswith(b"~"):
        return None
    try:
        message = json.loads(text[1:])
    except ValueError:
        return None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        return None
    return message


class RunnerLink:
    """The worker's side of the protocol over two file descriptors (stdin/stdout by default)."""

    def __init__(self, read_fd: int = 0, write_fd: int = 1) -> None:
        self._read_fd = read_fd
        self._write_fd = write_fd
        self._handlers: dict[str, Handler] = {}
        self._remote: set[str] = set()
        self._reader: asyncio.Task[None] | None = None
        self.welcomed = asyncio.Event()

    def on(self, message_type: str, handler: Handler) -> None:
        """Call `handler(message)` for each incoming message of `message_type`."""
        self._handlers[message_type] = handler

    def capable(self, capability: str) -> bool:
        """True when both sides listed `capability`."""
        return capability in self._remote and capability in CAPABILITIES

    async def start(self) -> None:
        """Start reading messages in the background."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader),
            os.fdopen(self._read_fd, "rb", buffering=0, closefd=False),
        )
        self._transport = transport
        self._reader = asyncio.create_task(self._read(reader), name="worker-runner protocol")

    async def close(self) -> None:
        """Stop reading."""
        if self._reader is not None:
            self._reader.cancel()
            try:
                await self._reader
            except asyncio.CancelledError:
                pass
            self._transport.close()

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while line := await reader.readline():
            message = decode(line)
            if message is None:
                continue
            if message["type"] == "welcome":
                self._remote = {c for c in message.get("capabilities", []) if isinstance(c, str)}
                self.send({"type": "hello", "capabilities": list(CAPABILITIES)})
                self.welcomed.set()
                continue
            handler = self._handlers.get(message["type"])
            if handler is None:
                log.debug("worker-runner message %s ignored", message["type"])
                continue
            handler(message)

    def send(self, message: dict[str, Any]) -> None:
        """Write one message (a short blocking write to the runner's pipe)."""
        data = encode(message)
        while data:
            written = os.write(self._write_fd, data)
            data = data[written:]

    def send_log(self, line: str) -> bool:
        """Send a log line if the runner takes them; False means log it yourself."""
        if not self.capable("log"):
            return False
        self.send({"type": "log", "body": {"textPayload": line}})
        return True

    def report_error(self, description: str, extra: dict[str, str]) -> None:
        """Send an `error-report` (for worker-manager) if the runner takes them."""
        if self.capable("error-report"):
            self.send(
                {
                    "type": "error-report",
                    "kind": "worker-error",
                    "title": "generic-worker error",
                    "description": description,
                    "extra": extra,
                }
            )

    def request_shutdown(self) -> bool:
        """Ask the runner to shut the worker down; False if it cannot (run the shutdown command)."""
        if not self.capable("shutdown"):
            return False
        self.send({"type": "shutdown"})
        return True


class RunnerLogHandler(logging.Handler):
    """Sends the worker's log lines through the protocol once `log` is agreed, else to `fallback`."""

    def __init__(self, link: RunnerLink, fallback: logging.Handler) -> None:
        super().__init__()
        self._link = link
        self._fallback = fallback

    def emit(self, record: logging.LogRecord) -> None:
        """Emit one record through the runner, or the fallback handler."""
        try:
            if self._link.send_log(self.format(record)):
                return
        except OSError:
            pass  # the runner went away: keep logging locally
        self._fallback.handle(record)
