"""One claimed task run: its identity, directories, log, artifacts and the feature stack.

`TaskRun.run()` is the whole lifecycle: write the log header, start the features in order (each
gated by the worker pool's config, checked for scopes and reserved artifact names), stop them in
reverse order (always, even after a failed start), then report the resolution that the first
recorded error decides. It knows nothing about any particular feature: features read the task
and talk to each other only through the fields and methods declared here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import pwd
import traceback
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from generic_worker import __version__, metrics
from generic_worker.artifacts import Artifact, ArtifactUploader, FileArtifact
from generic_worker.engine.environment import base_environment, command_environment
from generic_worker.engine.feature import Feature, TaskFeature
from generic_worker.engine.scopes import ScopeChecker
from generic_worker.engine.status import RunState, StatusManager
from generic_worker.engine.tasklog import TaskLog
from generic_worker.errors import ExecutionErrors, TaskError
from generic_worker.multiuser.accounts import AccountError
from generic_worker.multiuser.identity import as_user
from generic_worker.multiuser.lifecycle import make_task_user, remove_task_user, unpin_task_dir
from generic_worker.payload import Engine
from generic_worker.process import TaskProcesses, TaskUser, run_capture
from generic_worker.tc import Credentials
from generic_worker.timefmt import now, parse_tc
from generic_worker.worker_log import bind_task

if TYPE_CHECKING:
    from generic_worker.d2g.task import D2GTask
    from generic_worker.engine.worker import WorkerContext

log = logging.getLogger(__name__)

T = TypeVar("T")

START_GRACE_AFTER_ABORT = 10.0
"""How long a feature's start() may go on after an abort before it is cancelled."""


class TaskRun:
    """Everything about one claimed run that features may read or use."""

    def __init__(
        self, ctx: WorkerContext, claim: dict[str, Any], task_dir: Path, features: Sequence[Feature]
    ):
        self.ctx = ctx
        self.config = ctx.config
        self.services = ctx.services
        self.claim = claim
        self.definition: dict[str, Any] = claim["task"]
        self.task_id: str = claim["status"]["taskId"]
        self.run_id: int = int(claim["runId"])
        raw = self.definition.get("payload")
        self.raw_payload: Any = raw
        self.payload: dict[str, Any] = raw if isinstance(raw, dict) else {}
        self.task_dir = task_dir
        self.gw_dir = task_dir / "generic-worker"
        self.engine = Engine.MULTIUSER if ctx.config.multiuser else Engine.INSECURE
        self.errors = ExecutionErrors()
        self.extra_env: dict[str, str] = {}
        self.claimed_at: datetime = now()
        self.last_exit_code: int | None = None
        self.reserved: dict[str, str] = {}
        self._features = features
        self._abort_event = asyncio.Event()
        self._errors_logged = False
        self.status = StatusManager(
            ctx.services,
            claim,
            poll_interval=ctx.config.task_status_poll_interval_secs,
            on_lost=self._claim_lost,
        )
        self.processes = TaskProcesses(("TASK_ID", self.task_id), _LogSink(self))
        # Raises OSError when the disk has no room even for the log: the worker's to handle.
        # In the insecure engine commands write the log file themselves (no pipe, no pump: the
        # task runs as the worker's user and could rewrite that file anyway); in the multiuser
        # engine their output goes through a pipe, so the task cannot touch its log.
        self.log = TaskLog(
            self.gw_dir / "live_backing.log",
            on_truncated=self._log_truncated,
            direct=self.engine is Engine.INSECURE,
        )
        self.artifacts = ArtifactUploader(
            services=self.services,
            task_id=self.task_id,
            run_id=self.run_id,
            credentials=lambda: self.credentials,
            log=self.log,
            use_object_storage=self.config.create_object_artifacts,
            # Gzip copies go to the task's own disk, which requiredDiskSpaceMegabytes guards,
            # not to the system's temporary directory (often a small tmpfs).
            temp_dir=self.gw_dir,
        )
        self.artifacts.open_as_task_user = self.as_task_user
        self.log_artifact: FileArtifact | None = None
        """The artifact the backing log is uploaded as; set by the backing-log feature."""
        self.user: TaskUser | None = None
        """Multiuser engine: the task's own OS user (made before the features start)."""
        self.run_as_current_user = False
        """Multiuser engine: commands run as the worker's user (`features.runTaskAsCurrentUser`)."""
        self.d2g: D2GTask | None = None
        """A docker-worker payload's translation (set by payload validation; docs/d2g.md)."""
        self._checker: ScopeChecker | None = None

    # ---- identity and derived values -------------------------------------------------------
    @property
    def scopes(self) -> list[str]:
        """The task's scopes."""
        return list(self.definition.get("scopes") or [])

    @property
    def expires(self) -> datetime:
        """When the task expires (default artifact expiry)."""
        return parse_tc(self.definition["expires"])

    @property
    def deadline(self) -> datetime:
        """The task's deadline."""
        return parse_tc(self.definition["deadline"])

    @property
    def credentials(self) -> Credentials:
        """The current temporary task credentials (replaced on every reclaim)."""
        return self.status.credentials

    @property
    def command_user(self) -> TaskUser | None:
        """Who the commands (and file work on the task's behalf) run as; None: the worker's user."""
        return None if self.run_as_current_user else self.user

    async def as_task_user(self, fn: Callable[..., T], *args: object) -> T:
        """Run blocking file work `fn(*args)` in a thread with the rights of `command_user`.

        The kernel then checks every path, symlink and permission as it would for the task's
        own commands; with no task user (insecure engine, or running as the current user) it
        is a plain `asyncio.to_thread`.
        """
        return await as_user(self.command_user, fn, *args)

    def queue(self) -> Any:
        """A queue client with the current task credentials."""
        return self.status.queue()

    def environment(self) -> dict[str, str]:
        """The environment commands run with: base, payload.env, then the forced variables."""
        forced = {
            "TASK_ID": self.task_id,
            "RUN_ID": str(self.run_id),
            "TASK_WORKDIR": str(self.task_dir),
            "TASK_GROUP_ID": str(self.definition.get("taskGroupId", "")),
        }
        if self.config.root_url:
            forced["TASKCLUSTER_ROOT_URL"] = self.config.root_url.rstrip("/")
        if self.config.worker_location:
            forced["TASKCLUSTER_WORKER_LOCATION"] = self.config.worker_location
        if self.config.instance_type:
            forced["TASKCLUSTER_INSTANCE_TYPE"] = self.config.instance_type
        forced.update(self.extra_env)
        payload_env = self.payload.get("env") or {}
        user = self.command_user
        if user is not None:
            base = base_environment(os.environ, multiuser=True, user=user.name, home=str(user.home))
        else:
            name, home = _current_user()
            base = base_environment(os.environ, multiuser=self.config.multiuser, user=name, home=home)
        return command_environment(base, payload_env, forced)

    # ---- aborting ----------------------------------------------------------------------------
    @property
    def aborted(self) -> bool:
        """True once the task is being aborted (max run time, cancellation, shutdown...)."""
        return self._abort_event.is_set()

    def abort(self, error: TaskError | None) -> None:
        """Abort the run: record `error` (unless an earlier error already decides) and kill commands."""
        if self._abort_event.is_set():
            return
        self.errors.add(error)
        self._abort_event.set()
        if error is not None:
            self.log.error("Aborting task...")
        asyncio.get_running_loop().create_task(self.processes.abort(), name=f"abort {self.task_id}")

    def _log_truncated(self, message: str) -> None:
        """The log hit a full disk: the run fails (the task filled the disk), the task runs on."""
        log.warning("task %s: %s", self.task_id, message)
        self.errors.add(TaskError.failure(message))

    def _claim_lost(self, reason: str) -> None:
        self.log.error(f"Aborting task: the queue resolved this run elsewhere ({reason})")
        self.abort(None)

    # ---- artifacts ----------------------------------------------------------------------------
    def reserved_by(self, name: str) -> str | None:
        """The feature that reserved artifact `name`, if any."""
        return self.reserved.get(name)

    async def publish(self, artifact: Artifact) -> TaskError | None:
        """Upload one artifact; the caller decides what an error means for the task."""
        error = await self.artifacts.upload(artifact)
        self._log_upload(artifact, error)
        return error

    async def publish_all(self, artifacts: Sequence[Artifact]) -> list[TaskError]:
        """Upload several artifacts in parallel (bounded); errors in input order."""
        errors = await self.artifacts.upload_all(artifacts)
        uploaded = {a.name for a in self.artifacts.uploaded}
        for artifact in artifacts:
            state = "uploaded" if artifact.name in uploaded else "not uploaded"
            log.info(
                "task %s: artifact %s %s (%s)", self.task_id, artifact.name, state, type(artifact).__name__
            )
        return errors

    def _log_upload(self, artifact: Artifact, error: TaskError | None) -> None:
        kind = type(artifact).__name__
        if error is None:
            log.info("task %s: artifact %s uploaded (%s)", self.task_id, artifact.name, kind)
        else:
            why = error.message.split("\n", 1)[0]
            log.warning(
                "task %s: artifact %s (%s): %s: %s", self.task_id, artifact.name, kind, error.resolution, why
            )

    # ---- the lifecycle -----------------------------------------------------------------------
    async def run(self) -> None:
        """Run the task to its resolution. Never raises for task-level problems."""
        bind_task(self.task_id, self.run_id)  # worker log lines from here on name this run
        self._write_header()
        self.status.start()
        try:
            if self.config.multiuser:
                await self._make_user()
            await self._run_features()
        finally:
            # Ordering: every process of the task dies before the resolution is reported, and
            # the task user goes only after the features' stops (uploads read as that user).
            await self.processes.kill_all()
            if self.user is not None:
                for problem in await remove_task_user(self.user):
                    log.warning("task %s: %s", self.task_id, problem)
            if self.config.multiuser:
                await unpin_task_dir(self.task_dir)
            self.log_errors()
            self.log.close()
            await self.status.stop_background()
        await self._resolve()
        metrics.task_resolved(self.resolution, (now() - self.claimed_at).total_seconds())

    @property
    def resolution(self) -> str:
        """How the run ended as the queue shows it (`state/reason`), once it has."""
        if self.status.state is RunState.LOST:
            return self.status.lost_reason or "unknown"
        first = self.errors.first
        return "completed/completed" if first is None else first.resolution

    async def _make_user(self) -> None:
        """Multiuser: create the task user (and run `runAfterUserCreation` as it) before any feature.

        On failure the run is aborted as internal-error: only the backing log starts, so the log
        still reaches the queue.
        """
        try:
            self.user = await make_task_user(self.task_dir)
        except (AccountError, OSError) as e:
            self.abort(TaskError.internal_error(f"could not create the task user: {e}"))
            return
        log.info("task %s: running as new OS user %s (uid %d)", self.task_id, self.user.name, self.user.uid)
        script = self.config.run_after_user_creation
        if not script:
            return
        result = await run_capture(
            [script], env=self.environment(), cwd=self.task_dir, user=self.user, timeout=600
        )
        outcome = result.describe()
        log.info("runAfterUserCreation (%s) as %s: %s\n%s", script, self.user.name, outcome, result.text)
        if not result.succeeded:
            self.abort(TaskError.internal_error(f"runAfterUserCreation {script} failed: {outcome}"))

    def check_features_against(self, scopes: Sequence[str]) -> None:
        """Check the scopes of features not yet started against `scopes` instead of the task's.

        d2g: a docker-worker task's features need the native scopes its scopes translate to.
        """
        self._checker = ScopeChecker(scopes, self._expand_scopes)

    async def expand_scopes(self, scopes: list[str]) -> list[str]:
        """Expand `assume:` scopes through the auth service (errors are the client's)."""
        return await self._expand_scopes(scopes)

    async def _run_features(self) -> None:
        self._checker = ScopeChecker(self.scopes, self._expand_scopes)
        async with AsyncExitStack() as stack:
            for feature in self._features:
                error = await self._start_feature(feature, self._checker, stack)
                if error is not None:
                    self.errors.add(error)
                    break
                # Checked after (not before) each start: the first feature (the backing log)
                # always starts, so even a task aborted before it began gets its log uploaded.
                if self.aborted:
                    break

    async def _start_feature(
        self, feature: Feature, checker: ScopeChecker, stack: AsyncExitStack
    ) -> TaskError | None:
        if not feature.is_requested(self):
            return None
        if not feature.is_enabled(self):
            return TaskError.malformed_payload(
                f'this task is attempting to use feature "{feature.name}", but it\'s not enabled on this '
                f"worker pool ({self.config.task_queue_id})"
            )
        try:
            task_feature = feature.new_task_feature(self)
        except TaskError as e:
            return e
        # The payload validator may have replaced the checker (d2g) since this run began.
        checker = self._checker or checker
        error = await checker.check(feature.name, task_feature.required_scopes())
        if error is None:
            error = self._reserve(feature.name, task_feature.reserved_artifacts())
        if error is not None:
            return error
        # Ordering: stop is registered before start is awaited, so it runs after a failed start.
        stack.push_async_callback(self._stop_isolated, feature.name, task_feature)
        log.info("task %s: starting feature %s", self.task_id, feature.name)
        return await self._start_isolated(feature.name, task_feature)

    async def _start_isolated(self, name: str, task_feature: TaskFeature) -> TaskError | None:
        start = asyncio.create_task(task_feature.start(), name=f"start {name} {self.task_id}")
        aborted = asyncio.create_task(self._abort_event.wait())
        try:
            await asyncio.wait({start, aborted}, return_when=asyncio.FIRST_COMPLETED)
            if not start.done():
                # Aborted mid-start (e.g. a long download): give it a moment, then cancel it.
                await asyncio.wait({start}, timeout=START_GRACE_AFTER_ABORT)
                start.cancel()
            await start
        except asyncio.CancelledError:
            if not start.cancelled():
                raise
            return None
        except TaskError as e:
            return e
        except Exception as e:  # noqa: BLE001 - a crashing feature becomes internal-error for this task only
            return self._internal_error(f"feature {name} failed to start", e)
        finally:
            aborted.cancel()
        return None

    async def _stop_isolated(self, name: str, task_feature: TaskFeature) -> None:
        try:
            await task_feature.stop(self.errors)
        except TaskError as e:
            self.errors.add(e)
        except Exception as e:  # noqa: BLE001 - one failing stop must not skip the others
            self.errors.add(self._internal_error(f"feature {name} failed to stop", e))

    def _internal_error(self, what: str, e: BaseException) -> TaskError:
        log.error("task %s: %s\n%s", self.task_id, what, "".join(traceback.format_exception(e)))
        return TaskError.internal_error(f"{what}: {type(e).__name__}: {e}")

    def _reserve(self, feature: str, names: Sequence[str]) -> TaskError | None:
        for name in names:
            owner = self.reserved.get(name)
            if owner is not None:
                return TaskError.malformed_payload(
                    f'Feature "{feature}" wishes to publish artifact {name} but feature {owner} '
                    "has already reserved this artifact name"
                )
            self.reserved[name] = feature
        return None

    async def _expand_scopes(self, scopes: list[str]) -> list[str]:
        result = await self.services.client("auth").expandScopes({"scopes": scopes})
        return list(result["scopes"])

    def log_errors(self) -> None:
        """Write the recorded errors as `[taskcluster:error]` lines (once; the backing log calls it first)."""
        if self._errors_logged or not self.errors:
            return
        self._errors_logged = True
        self.log.error("\n".join(error.message for error in self.errors))

    async def _resolve(self) -> None:
        if self.status.state is RunState.LOST:
            log.info(
                "task %s run %s: not reporting, already %s",
                self.task_id,
                self.run_id,
                self.status.lost_reason,
            )
            return
        first = self.errors.first
        if first is None:
            log.info("task %s run %s resolved as completed/completed", self.task_id, self.run_id)
        else:
            why = first.message.split("\n", 1)[0]
            log.info("task %s run %s resolved as %s: %s", self.task_id, self.run_id, first.resolution, why)
        await self.status.report(first)

    async def resolve_after_crash(self, error: BaseException) -> None:
        """After an engine bug: log it, upload the backing log if possible, report internal-error."""
        self._internal_error("task run crashed", error)
        crash = TaskError.internal_error(f"worker crashed: {type(error).__name__}: {error}")
        if not self.log.closed:
            self.log.error(crash.message)
            self.log.close()
        if self.log_artifact is not None and self.log_artifact.name not in {
            a.name for a in self.artifacts.uploaded
        }:
            await self.publish(dataclasses.replace(self.log_artifact, trailer=self.log.tail))
        if self.status.state in (RunState.CLAIMED, RunState.RECLAIMED):
            await self.status.report(crash)
        metrics.task_resolved(crash.resolution, (now() - self.claimed_at).total_seconds())

    def _write_header(self) -> None:
        metadata = dict(self.config.worker_type_metadata)
        metadata["generic-worker"] = {
            "engine": self.engine.value,
            "implementation": "python",
            "version": __version__,
        }
        text = json.dumps(metadata, indent=2, sort_keys=True)
        self.log.info(f"Worker Type ({self.config.worker_type}) settings:")
        self.log.info("\n".join("  " + line for line in text.splitlines()))
        self.log.info(f"Task ID: {self.task_id}")
        self.log.info("=== Task Starting ===")


def _current_user() -> tuple[str, str]:
    """The worker's own user name and home (for HOME/USER/LOGNAME when running as it)."""
    try:
        entry = pwd.getpwuid(os.getuid())
    except KeyError:
        return str(os.getuid()), os.environ.get("HOME", "/")
    return entry.pw_name, entry.pw_dir


class _LogSink:
    """Feeds command output into the task log (the process pumps call it from their threads).

    A `SplicingSink`: the pumps move output from the pipe into the log with `splice(2)`, inside
    the kernel, and fall back to `write` where that is not possible. And a `DirectSink`: where
    the log agrees, commands write it themselves and there is no pipe at all.
    """

    def __init__(self, task: TaskRun) -> None:
        self._task = task

    def write(self, data: bytes) -> None:
        """Append output the pump read itself."""
        self._task.log.write(data)

    def splice_from(self, pipe_fd: int, limit: int) -> int | None:
        """Move output from the pipe into the log without copying it through Python."""
        return self._task.log.splice_from(pipe_fd, limit)

    def open_direct(self) -> int | None:
        """An appending descriptor of the log for a command to write itself (insecure engine)."""
        return self._task.log.open_direct()

    def refresh(self) -> bool:
        """Take in what commands wrote into the log themselves."""
        return self._task.log.refresh()

    def direct_done(self) -> None:
        """A command that wrote into the log itself is over."""
        self._task.log.direct_done()
