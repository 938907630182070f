"""Chain of trust (`features.chainOfTrust`; worker switch `enableChainOfTrust`).

Signing needs a key the task cannot read, so chain of trust works only in the multiuser engine.
The insecure engine runs tasks as the worker's own user and always refuses, with the seed's
message (TARGET §5).

Multiuser engine:
- at worker start the configured keys are loaded (`ed25519SigningKeyLocation`, and/or the seed's
  OpenPGP `signingKeyLocation`); a key that cannot be loaded stops the worker (73);
- start: the feature proves the task user cannot read the private keys by running `/bin/cat
  <key>` as that user (upstream's check). If it can (e.g. `runTaskAsCurrentUser`), the task is
  malformed-payload with upstream's message. From then on every uploaded file is hashed;
- stop (after the payload artifacts were uploaded: this feature comes before them in the list):
  the backing log so far is copied to `public/logs/certified.log` and uploaded; then the
  certificate lists the sha256 of every file artifact uploaded so far (payload artifacts and
  certified.log), merged over the task's `chain-of-trust-additional-data.json` (read as the task
  user; a d2g task's `imageHash`/`imageArtifactHash` are the worker's, never that file's), and is
  published as `public/chain-of-trust.json` + `.sig` (ed25519) and/or
  `public/chainOfTrust.json.asc` (OpenPGP clear-signed), as the configured keys allow.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from generic_worker.artifacts import FileArtifact
from generic_worker.cot import (
    RunIdentity,
    SigningKeyError,
    SigningKeys,
    build_certificate,
    environment_of,
    key_files,
    load_signing_keys,
    render,
    with_additional_data,
)
from generic_worker.cot.files import TaskFileError, WorkerDir, read_bounded, sha256_of
from generic_worker.engine.feature import FeatureBase, FeatureInitError, TaskFeature, TaskFeatureBase
from generic_worker.engine.taskrun import TaskRun
from generic_worker.errors import ExecutionErrors, TaskError
from generic_worker.exitcodes import ExitCode
from generic_worker.payload import Engine
from generic_worker.process import run_capture

if TYPE_CHECKING:
    from generic_worker.engine.worker import WorkerContext

log = logging.getLogger(__name__)

KEY_READABLE = (
    "Was expecting attempt to read private chain of trust key as task user to fail - however, it did not!"
)
"""The seed's message (insecure engine)."""

KEY_READABLE_UPSTREAM = (
    "was expecting attempt to read private chain of trust key as task user to fail - however, it did not"
)
"""Today's upstream message (multiuser engine: the key check found the key readable)."""

CERTIFIED_LOG = "public/logs/certified.log"
CERTIFICATE = "public/chain-of-trust.json"
SIGNATURE = "public/chain-of-trust.json.sig"
OPENPGP_CERTIFICATE = "public/chainOfTrust.json.asc"
ADDITIONAL_DATA = "chain-of-trust-additional-data.json"
ADDITIONAL_DATA_LIMIT = 1 << 20
TEXT = "text/plain; charset=utf-8"
KEY_CHECK_TIMEOUT = 60.0


class ChainOfTrustFeature(FeatureBase):
    """Chain-of-trust certificates for the task's artifacts."""

    name = "Chain of Trust"

    def __init__(self) -> None:
        self.keys: SigningKeys | None = None

    async def initialise(self, worker: WorkerContext) -> None:
        """Multiuser engine with chain of trust enabled: load the signing keys once (73 if unusable)."""
        config = worker.config
        if not (config.multiuser and config.enable_chain_of_trust):
            return
        try:
            self.keys = await asyncio.to_thread(load_signing_keys, config)
        except SigningKeyError as e:
            raise FeatureInitError(str(e), ExitCode.INVALID_CONFIG) from e

    def is_enabled(self, task: TaskRun) -> bool:
        """`enableChainOfTrust`."""
        return task.config.enable_chain_of_trust

    def is_requested(self, task: TaskRun) -> bool:
        """`features.chainOfTrust`."""
        return bool(task.payload.get("features", {}).get("chainOfTrust"))

    def new_task_feature(self, task: TaskRun) -> TaskFeature:
        """The per-task part."""
        return _ChainOfTrust(task, self.keys)


class _ChainOfTrust(TaskFeatureBase):
    def __init__(self, task: TaskRun, keys: SigningKeys | None) -> None:
        self.task = task
        self.keys = keys
        self.checked = False

    def reserved_artifacts(self) -> tuple[str, ...]:
        if self.task.engine is Engine.INSECURE:
            return (OPENPGP_CERTIFICATE, CERTIFICATE, SIGNATURE, CERTIFIED_LOG)
        names = [CERTIFIED_LOG]
        configured = {file.config_key for file in key_files(self.task.config)}
        if "ed25519SigningKeyLocation" in configured:
            names += [CERTIFICATE, SIGNATURE]
        if "signingKeyLocation" in configured:
            names.append(OPENPGP_CERTIFICATE)
        return tuple(names)

    async def start(self) -> None:
        if self.task.engine is Engine.INSECURE:
            raise TaskError.malformed_payload(
                KEY_READABLE
                + "\nThe insecure engine runs tasks as the worker's own user, so a task could read "
                "the signing key: chain of trust needs the multiuser engine (runTasksAsCurrentUser: false)."
            )
        if self.keys is None:  # pragma: no cover - initialise loads them whenever this can run
            raise TaskError.internal_error("chain of trust: the signing keys were not loaded")
        for file in self.keys.files:
            await self._ensure_unreadable(file.path)
        self.checked = True
        # Ordering: before the payload artifacts upload, so each upload records its sha256.
        self.task.artifacts.hash_files = True

    async def _ensure_unreadable(self, key: Path) -> None:
        """Upstream's check: `cat` the key as the task user; it must fail."""
        task = self.task
        result = await run_capture(
            ["/bin/cat", str(key)],
            env=task.environment(),
            cwd=task.task_dir,
            user=task.command_user,
            timeout=KEY_CHECK_TIMEOUT,
        )
        # The output (the key itself, if it was readable) is never logged.
        if result.result.start_error is not None or result.timed_out:
            raise TaskError.internal_error(
                f"chain of trust: could not check that the task user cannot read the signing key "
                f"{key}: {result.describe()}"
            )
        if result.succeeded:
            log.error("task %s: the task user can read signing key %s", task.task_id, key)
            raise TaskError.malformed_payload(KEY_READABLE_UPSTREAM)

    async def stop(self, errors: ExecutionErrors) -> None:
        if not self.checked or self.keys is None:
            return
        try:
            await self._publish(errors)
        except TaskError as e:
            errors.add(e)

    async def _publish(self, errors: ExecutionErrors) -> None:
        assert self.keys is not None
        task = self.task
        log_name, size = task.log.path.name, task.log.size
        certified = await self._in_worker_dir(lambda d: d.copy_new(log_name, "certified.log", size))
        errors.add(await task.publish(FileArtifact(CERTIFIED_LOG, certified, task.expires, TEXT, "gzip")))
        document = await self._certificate()
        if self.keys.ed25519 is not None:
            await self._publish_ed25519(document, errors)
        if self.keys.openpgp is not None:
            await self._publish_openpgp(document, errors)

    async def _in_worker_dir(self, action: Callable[[WorkerDir], Path]) -> Path:
        """Run a file action in the task's `generic-worker` directory, checked to be the worker's."""

        def run() -> Path:
            with WorkerDir(self.task.gw_dir) as directory:
                return action(directory)

        try:
            return await asyncio.to_thread(run)
        except TaskFileError as e:
            raise TaskError.failure(f"chain of trust: {e}; no certificate was published") from e

    async def _certificate(self) -> bytes:
        task = self.task
        run = RunIdentity(task.task_id, task.run_id, task.config.worker_group, task.config.worker_id)
        hashes = await self._hashes()
        # d2g's imageHash/imageArtifactHash are the worker's own facts: part of what the worker
        # writes, so the task's additional data (which it can rewrite) can never change them.
        d2g = task.d2g.chain_of_trust_environment() if task.d2g is not None else None
        environment = environment_of(task.config, d2g)
        # task.definition is the claim's, so a d2g task's certificate carries its original
        # docker-worker payload and scopes (d2g replaces only task.payload), as upstream.
        certificate = build_certificate(run, task.definition, hashes, environment)
        additional = await self._additional_data()
        if additional is None:
            return render(certificate)
        # As upstream: the merged document is written with sorted keys.
        return render(with_additional_data(certificate, additional), sort_keys=True)

    async def _hashes(self) -> dict[str, str]:
        """sha256 of every file artifact uploaded so far (recorded by the uploader as it read them)."""
        hashes: dict[str, str] = {}
        for uploaded in list(self.task.artifacts.uploaded):
            if uploaded.storage_type not in ("s3", "object") or uploaded.path is None:
                continue
            digest = uploaded.sha256
            if digest is None:  # uploaded before this feature started: read it as the task user
                try:
                    digest = await self.task.as_task_user(sha256_of, uploaded.path)
                except (OSError, TaskFileError) as e:
                    raise TaskError.internal_error(
                        f"chain of trust: cannot hash artifact {uploaded.name} ({uploaded.path}): {e}"
                    ) from e
            hashes[uploaded.name] = digest
        return hashes

    async def _additional_data(self) -> dict[str, Any] | None:
        """The task's `chain-of-trust-additional-data.json` (read as the task user), if it wrote one."""
        path = self.task.task_dir / ADDITIONAL_DATA
        try:
            data = await self.task.as_task_user(read_bounded, path, ADDITIONAL_DATA_LIMIT)
            if data is None:
                return None
            value = json.loads(data)
        except (TaskFileError, ValueError) as e:
            raise TaskError.failure(f"chain of trust: {ADDITIONAL_DATA} {e}") from e
        if not isinstance(value, dict):
            raise TaskError.failure(f"chain of trust: {ADDITIONAL_DATA} must hold a JSON object")
        return value

    async def _publish_ed25519(self, document: bytes, errors: ExecutionErrors) -> None:
        assert self.keys is not None
        task = self.task
        unsigned = await self._in_worker_dir(lambda d: d.write_new("chain-of-trust.json", document))
        errors.add(await task.publish(FileArtifact(CERTIFICATE, unsigned, task.expires, TEXT, "gzip")))
        signature = self.keys.sign_ed25519(document)
        signed = await self._in_worker_dir(lambda d: d.write_new("chain-of-trust.json.sig", signature))
        binary = "application/octet-stream"
        errors.add(await task.publish(FileArtifact(SIGNATURE, signed, task.expires, binary, "gzip")))

    async def _publish_openpgp(self, document: bytes, errors: ExecutionErrors) -> None:
        """The seed's format: the JSON and a newline, clear-signed, then one more newline."""
        assert self.keys is not None
        task = self.task
        text = await asyncio.to_thread(self.keys.clearsign, document.decode("utf-8") + "\n")
        data = (text + "\n").encode("utf-8")
        path = await self._in_worker_dir(lambda d: d.write_new("chainOfTrust.json.asc", data))
        errors.add(await task.publish(FileArtifact(OPENPGP_CERTIFICATE, path, task.expires, TEXT, "gzip")))
