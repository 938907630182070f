"""What every service shares: settings, the database, auth, blobs, and the wake-up channels."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from tclocal.auth.store import AuthStore
from tclocal.core import certificates
from tclocal.core.blobs import BlobStore
from tclocal.core.db import Database
from tclocal.core.hawk import Authenticator
from tclocal.core.timestamps import now

QUEUE_CLIENT_ID = "static/taskcluster/queue"


@dataclass(frozen=True)
class Settings:
    """Behaviour knobs; the defaults are upstream's, tests shorten the time-based ones."""

    claim_timeout: float = 1200.0
    claim_work_wait: float = 20.0
    reaper_interval: float = 5.0
    artifact_grace_after_exception: float = 25 * 60.0
    hawk_skew: float = 900.0  # upstream's timestampSkewSec: 15 minutes
    blob_url_lifetime: float = 45 * 60.0
    expiry_interval: float = 3600.0
    last_used_delay: float = 6 * 3600.0
    """How stale a client's `lastDateUsed` may be before a use records it (upstream's maxLastUsedDelay)."""
    sentry_dsn: str = ""
    """The DSN `sentryDSN` hands out for every project (upstream: keys it makes in a Sentry
    organisation); empty answers 404, as upstream's auth without a Sentry configuration."""


class WorkNotifier:
    """Wakes claimWork long-polls waiting on a task queue as soon as work is committed there."""

    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}
        self.closing = False

    def register(self, queue: str) -> asyncio.Future[None]:
        """A future that completes at the next `notify` for `queue` (register before checking)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(queue, set()).add(future)
        return future

    def unregister(self, queue: str, future: asyncio.Future[None]) -> None:
        """Forget a waiter (after it woke or gave up)."""
        waiters = self._waiters.get(queue)
        if waiters is not None:
            waiters.discard(future)
            if not waiters:
                del self._waiters[queue]

    def waiting(self, queue: str) -> int:
        """How many claimWork calls are waiting on `queue` right now (for tests and metrics)."""
        return len(self._waiters.get(queue, ()))

    def close(self) -> None:
        """Shutting down: wake every waiter now; long-polls return at once from here on."""
        self.closing = True
        self.notify(list(self._waiters))

    def notify(self, queues: Iterable[str]) -> None:
        """Wake every waiter of each queue."""
        for queue in queues:
            for future in self._waiters.pop(queue, set()):
                if not future.done():
                    future.set_result(None)


@dataclass
class Context:
    """The shared parts of a running tc-local."""

    settings: Settings
    db: Database
    auth: AuthStore
    authenticator: Authenticator
    blobs: BlobStore
    queue_access_token: str
    root_url: str = ""
    notifier: WorkNotifier = field(default_factory=WorkNotifier)
    poke_reaper: Callable[[float], None] = lambda due: None

    def temporary_credentials(self, client_id: str, scopes: list[str], expires: float) -> dict[str, str]:
        """Named temporary credentials issued by the queue's own client, valid until `expires`."""
        return certificates.issue(
            issuer_id=QUEUE_CLIENT_ID,
            issuer_token=self.queue_access_token,
            client_id=client_id,
            scopes=scopes,
            start_ms=int(now() * 1000),
            expiry_ms=int(expires * 1000),
        )
