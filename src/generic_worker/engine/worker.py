"""The worker: claims tasks from `<provisionerId>/<workerType>`, runs them, and decides when to exit.

Exit conditions (README's table): `numberOfTasksToRun` reached (0), idle for `idleTimeoutSecs`
(68), SIGINT (finish running tasks, then 71), SIGTERM (abort running tasks as
`exception/worker-shutdown` with their logs uploaded, then 72), and any crash (running tasks
resolved `exception/internal-error`, then 69). There is no fixed pause between claims: claimWork
long-polls, and the next claim is issued as soon as there is a free slot.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from generic_worker import metrics
from generic_worker.config import Config
from generic_worker.crash_report import report_crash
from generic_worker.engine.feature import Feature, FeatureInitError, WorkerExit
from generic_worker.engine.shutdown import run_machine_command
from generic_worker.engine.taskdirs import new_task_dir, old_task_dirs, probe_task_dir, remove_task_dirs
from generic_worker.engine.taskrun import TaskRun
from generic_worker.engine.unstartable import resolve_unstartable
from generic_worker.errors import ExceptionReason, TaskError
from generic_worker.exitcodes import ExitCode
from generic_worker.multiuser.accounts import AccountError, delete_user, leftover_users, user_exists
from generic_worker.multiuser.idmap import unbind_all_under
from generic_worker.multiuser.lifecycle import remove_owned_temp_files
from generic_worker.multiuser.startchecks import multiuser_problems
from generic_worker.process import enable_subreaper, kill_leftovers, reap_orphans
from generic_worker.tc import TC_ERRORS, Credentials, ServiceFactory
from generic_worker.tc.failures import describe
from generic_worker.workerproto import RunnerLink

log = logging.getLogger(__name__)

CLAIM_BLOCKED_RETRY = 10.0
"""Seconds to wait before asking again when a feature said not to claim (e.g. disk full)."""

MAX_CLAIM = 32
"""claimWork never asks for more tasks than this in one call (the queue's limit)."""


@dataclass
class WorkerContext:
    """What features get at initialisation: the config, the client layer and the state directory."""

    config: Config
    services: ServiceFactory
    state_dir: Path


class WorkerCrash(Exception):
    """An unexpected error escaped a task run; the worker stops with exit 69."""


class Worker:
    """Owns the config, the Taskcluster clients, the features and the running tasks."""

    def __init__(
        self,
        config: Config,
        features: Sequence[Feature],
        *,
        state_dir: Path | None = None,
        claim_retry_delay: float = CLAIM_BLOCKED_RETRY,
        runner: RunnerLink | None = None,
        sigint_aborts: bool = False,
    ) -> None:
        self.config = config
        self.features = list(features)
        self.services = ServiceFactory(config)
        self.context = WorkerContext(config, self.services, (state_dir or Path.cwd()).resolve())
        self.running: dict[asyncio.Task[None], TaskRun] = {}
        self.tasks_started = 0
        self.tasks_resolved = 0
        self._interrupt = asyncio.Event()  # SIGINT: finish tasks, then exit 71
        self._terminate = asyncio.Event()  # SIGTERM: abort tasks, then exit 72
        self._crash: BaseException | None = None
        self._exit_requested: ExitCode | None = None
        self._claim_retry_delay = claim_retry_delay
        self.runner = runner
        self._finish_then_shutdown = False  # worker-runner graceful-termination with finish-tasks
        self._task_done = asyncio.Event()
        # `generic-worker exec`: Ctrl-C means "stop this task now", as SIGTERM does.
        self._on_sigint = self.request_termination if sigint_aborts else self.request_interrupt
        self._task_dir_problem: str | None = None  # set while task directories cannot be set up

    @property
    def tasks_dir(self) -> Path:
        """Where task directories are made."""
        return Path(self.config.tasks_dir).resolve()

    def request_interrupt(self) -> None:
        """SIGINT: stop claiming, let running tasks finish, exit 71."""
        log.info("SIGINT received: finishing running tasks, then exiting")
        self._interrupt.set()

    def request_termination(self) -> None:
        """SIGTERM: abort running tasks as worker-shutdown, upload their logs, exit 72."""
        if self._terminate.is_set():
            return
        log.info("SIGTERM received: aborting running tasks (worker-shutdown), then exiting")
        self._terminate.set()
        for task in self.running.values():
            task.abort(TaskError.worker_shutdown("Worker is shutting down: task aborted"))

    async def run(self) -> ExitCode:
        """Run until an exit condition; return the exit code (after any shutdown command)."""
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, self._on_sigint)
        loop.add_signal_handler(signal.SIGTERM, self.request_termination)
        if self.runner is not None:
            self._listen_to_runner(self.runner)
            await self.runner.start()
        try:
            code = await self._run()
        finally:
            if self.runner is not None:
                await self.runner.close()
            loop.remove_signal_handler(signal.SIGINT)
            loop.remove_signal_handler(signal.SIGTERM)
            await self._close()
        await self._after_exit(code)
        return code

    def _listen_to_runner(self, runner: RunnerLink) -> None:
        def graceful(message: dict[str, Any]) -> None:
            if message.get("finish-tasks"):
                log.info("worker-runner: graceful termination, finishing running tasks")
                self._finish_then_shutdown = True
                self._interrupt.set()
            else:
                log.info("worker-runner: graceful termination without finishing tasks")
                self.request_termination()

        def new_credentials(message: dict[str, Any]) -> None:
            credentials: Credentials = {
                "clientId": message["client-id"],
                "accessToken": message["access-token"],
            }
            if message.get("certificate"):
                credentials["certificate"] = message["certificate"]
            self.services.worker_credentials = credentials
            log.info("worker-runner: new worker credentials for %s", message["client-id"])

        runner.on("graceful-termination", graceful)
        runner.on("new-credentials", new_credentials)

    async def _worker_manager_says_terminate(self) -> bool | None:
        """Under worker-runner, ask worker-manager whether this worker should stop (exit 70).

        None when there is no answer (not under worker-runner, or the call failed).
        """
        if self.runner is None:
            return None
        c = self.config
        try:
            answer = await self.services.client("worker-manager", max_retries=2).shouldWorkerTerminate(
                c.task_queue_id, c.worker_group, c.worker_id
            )
        except TC_ERRORS as e:
            log.debug("shouldWorkerTerminate failed: %s", describe(e))
            return None
        if answer.get("terminate"):
            log.info("worker-manager says terminate: %s", answer.get("reason", ""))
            return True
        return False

    async def _run(self) -> ExitCode:
        if enable_subreaper():
            log.debug("worker is a child subreaper: escaped task processes re-parent to it")
        refused = multiuser_problems(self.config, None)
        if refused:
            for problem in refused:
                log.error("%s", problem)
            return ExitCode.INVALID_CONFIG
        try:
            await self._clean_leftovers()
            await self._remove_old_task_dirs()
            for feature in self.features:
                log.info("Initialising task feature %s...", feature.name)
                try:
                    await feature.initialise(self.context)
                except FeatureInitError as e:
                    log.error("feature %s could not initialise: %s", feature.name, e)
                    return ExitCode(e.exit_code)
            log.info("All features initialised.")
            return await self._loop()
        except Exception as e:  # noqa: BLE001 - the crash boundary: resolve tasks, exit 69
            trace = "".join(traceback.format_exception(e))
            log.error("worker crashed:\n%s", trace)
            if self.runner is not None:
                extra = {"workerGroup": self.config.worker_group, "workerId": self.config.worker_id}
                self.runner.report_error(trace, extra)
            await self._crash_running_tasks(e)
            # After the runs are resolved, before any machine shutdown (in `_after_exit`).
            await report_crash(self.services, self.config, e)
            return ExitCode.INTERNAL_ERROR

    async def _loop(self) -> ExitCode:
        idle = _IdleClock(self.config.idle_timeout_secs)
        while True:
            code = await self._exit_code_if_done()
            if code is not None:
                return code
            want = self._free_slots()
            if want <= 0:
                await self._wait_for_change()
                if not self.running:
                    idle.reset()
                continue
            if not await self._ready_to_claim():
                if self._exit_requested is None:  # a WorkerExit goes straight to the exit check
                    await self._wait_for_change(max_wait=self._claim_retry_delay)
                continue
            claims = await self._claim(min(want, MAX_CLAIM))
            for claim in claims:
                await self._start_task(claim)
            if claims or self.running:
                idle.reset()
            elif idle.expired():
                if await self._worker_manager_says_terminate() is not False:
                    return ExitCode.IDLE_TIMEOUT
                log.info("Idle timeout reached, but worker-manager wants this worker kept: idling on")
                idle.reset()

    async def _ready_to_claim(self) -> bool:
        ready = True
        for feature in self.features:
            try:
                ready = await feature.before_claim() and ready
            except WorkerExit as e:
                log.error("%s: stopping the worker: %s", feature.name, e)
                self._exit_requested = ExitCode(e.exit_code)
                return False
        return ready and await self._task_dirs_usable()

    async def _task_dirs_usable(self) -> bool:
        """After a task directory could not be set up: claim again only once one can be."""
        if self._task_dir_problem is None:
            return True
        problem = await asyncio.to_thread(
            probe_task_dir, self.tasks_dir, self.config.required_disk_space_megabytes
        )
        if problem is not None:
            log.warning("not claiming: %s (a task directory could not be set up earlier)", problem)
            return False
        log.info("task directories can be set up again in %s: claiming", self.tasks_dir)
        self._task_dir_problem = None
        return True

    async def _exit_code_if_done(self) -> ExitCode | None:
        if self._crash is not None:
            raise WorkerCrash("a task run crashed") from self._crash
        if self._exit_requested is not None:
            await self._wait_all()
            return self._exit_requested
        if self._terminate.is_set() or self._interrupt.is_set():
            await self._wait_all()
            shutdown = self._terminate.is_set() or self._finish_then_shutdown
            return ExitCode.WORKER_SHUTDOWN if shutdown else ExitCode.WORKER_STOPPED
        if await self._worker_manager_says_terminate():
            await self._wait_all()
            return ExitCode.NONCURRENT_DEPLOYMENT_ID
        limit = self.config.number_of_tasks_to_run
        if limit and self.tasks_resolved >= limit:
            log.info("Completed all task(s) (number of tasks to run = %d)", limit)
            return ExitCode.TASKS_COMPLETE
        return None

    def _free_slots(self) -> int:
        want = self.config.capacity - len(self.running)
        limit = self.config.number_of_tasks_to_run
        if limit:
            want = min(want, limit - self.tasks_started)
        return want

    async def _claim(self, count: int) -> list[dict[str, Any]]:
        request = {
            "tasks": count,
            "workerGroup": self.config.worker_group,
            "workerId": self.config.worker_id,
        }
        queue = self.services.queue(max_retries=5)
        claim = asyncio.create_task(queue.claimWork(self.config.task_queue_id, request))
        stop = asyncio.create_task(self._any_stop())
        try:
            await asyncio.wait({claim, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if not claim.done():
            # Shutting down: abandon the long poll. A task claimed in this very instant is
            # retried by the queue when its claim expires.
            claim.cancel()
            return []
        try:
            response = claim.result()
        except TC_ERRORS as e:
            log.warning("Could not claim work. %s", describe(e))
            metrics.CLAIM_ERRORS.inc()
            await self._pause_after_claim_error()
            return []
        tasks: list[dict[str, Any]] = response.get("tasks", [])
        metrics.TASKS_CLAIMED.inc(len(tasks))
        for t in tasks:
            log.info("Claimed task %s run %s", t["status"]["taskId"], t["runId"])
        return tasks

    async def _pause_after_claim_error(self) -> None:
        stop = asyncio.create_task(self._any_stop())
        await asyncio.wait({stop}, timeout=5.0)
        stop.cancel()

    async def _any_stop(self) -> None:
        waits = [asyncio.create_task(e.wait()) for e in (self._interrupt, self._terminate)]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    async def _start_task(self, claim: dict[str, Any]) -> None:
        task_dir: Path | None = None
        try:
            task_dir = new_task_dir(self.tasks_dir, name_taken=user_exists if self.config.multiuser else None)
            task = TaskRun(self.context, claim, task_dir, self.features)
        except OSError as e:
            await self._unstartable(claim, task_dir, e)
            return
        self.tasks_started += 1
        runner = asyncio.create_task(self._run_task(task), name=f"task {task.task_id}/{task.run_id}")
        self.running[runner] = task
        if self._terminate.is_set():
            task.abort(TaskError.worker_shutdown("Worker is shutting down: task aborted"))

    async def _unstartable(self, claim: dict[str, Any], task_dir: Path | None, error: OSError) -> None:
        """A claimed run without a usable task directory: internal-error, and no claims for now."""
        self.tasks_started += 1
        self._task_dir_problem = str(error)
        if task_dir is not None:
            await asyncio.to_thread(remove_task_dirs, [task_dir])
        message = (
            f"WORKER EXCEPTION: could not set up a task directory in {self.tasks_dir}: {error}; "
            f"this worker claims no more tasks until requiredDiskSpaceMegabytes "
            f"({self.config.required_disk_space_megabytes} MiB) is free there and a task directory "
            "can be created"
        )
        try:
            await resolve_unstartable(self.services, claim, message)
        finally:
            self.tasks_resolved += 1
            log.info("Resolved %d tasks in total so far.", self.tasks_resolved)

    async def _run_task(self, task: TaskRun) -> None:
        try:
            await task.run()
        except Exception as e:  # noqa: BLE001 - an engine bug: this task is internal-error, worker exits 69
            self._crash = e
            await task.resolve_after_crash(e)
        finally:
            # The seed's rule: a run aborted as worker-shutdown (e.g. a spot termination)
            # stops the worker with 72 once the other runs are done.
            first = task.errors.first
            shutdown = first is not None and first.reason == ExceptionReason.WORKER_SHUTDOWN
            if shutdown and self._exit_requested is None:
                self._exit_requested = ExitCode.WORKER_SHUTDOWN
            self.tasks_resolved += 1
            current = asyncio.current_task()
            if current is not None:
                self.running.pop(current, None)
            log.info("Resolved %d tasks in total so far.", self.tasks_resolved)
            # Orphans that exited on their own were adopted by the worker (a subreaper):
            # reap them so no zombies pile up between tasks.
            reap_orphans()
            if self.config.clean_up_task_dirs:
                problems = await asyncio.to_thread(remove_task_dirs, [task.task_dir])
                for p in problems:
                    log.warning("%s", p)
            self._task_done.set()

    async def _wait_for_change(self, max_wait: float | None = None) -> None:
        done = asyncio.create_task(self._task_done.wait())
        stop = asyncio.create_task(self._any_stop())
        await asyncio.wait({done, stop}, timeout=max_wait, return_when=asyncio.FIRST_COMPLETED)
        done.cancel()
        stop.cancel()
        self._task_done.clear()

    async def _wait_all(self) -> None:
        while self.running:
            await asyncio.wait(set(self.running), return_when=asyncio.ALL_COMPLETED)

    async def _crash_running_tasks(self, error: BaseException) -> None:
        for task in self.running.values():
            task.abort(TaskError.internal_error(f"worker crashed: {type(error).__name__}: {error}"))
        await self._wait_all()

    async def _clean_leftovers(self) -> None:
        """Kill what earlier runs of this worker left running, and delete their task users.

        After a crash (or SIGKILL) nothing else would: the queue retries the task elsewhere,
        but its processes would run on. Logged, so the operator sees what was cleaned.
        """
        if os.geteuid() == 0:
            # Caches a crashed worker had bind-mounted into task directories (multiuser).
            for point in await asyncio.to_thread(unbind_all_under, self.tasks_dir):
                log.warning("unmounted %s, left mounted by an earlier run", point)
        users = leftover_users(self.tasks_dir) if os.geteuid() == 0 else []
        killed = await kill_leftovers(str(self.tasks_dir), {u.pw_uid for u in users})
        for k in killed:
            log.warning(
                "killed process %d (uid %d) left by an earlier run: %s: %s", k.pid, k.uid, k.why, k.cmdline
            )
        for user in users:
            try:
                await delete_user(user.pw_name)
            except AccountError as e:
                log.warning("could not delete leftover task user %s: %s", user.pw_name, e)
                continue
            problems = await asyncio.to_thread(remove_owned_temp_files, user.pw_uid)
            for p in problems:
                log.warning("%s", p)
            log.warning("deleted task user %s (uid %d) left by an earlier run", user.pw_name, user.pw_uid)

    async def _remove_old_task_dirs(self) -> None:
        if not self.config.clean_up_task_dirs:
            return
        keep = [t.task_dir for t in self.running.values()]
        old = old_task_dirs(self.tasks_dir, keep)
        problems = await asyncio.to_thread(remove_task_dirs, old)
        for p in problems:
            log.warning("%s", p)
        if old and not self.running:
            log.info("removed %d task directories left by an earlier run", len(old) - len(problems))

    async def _close(self) -> None:
        for feature in self.features:
            try:
                await feature.close()
            except Exception as e:  # noqa: BLE001 - closing is best effort at exit
                log.warning("feature %s did not close cleanly: %s", feature.name, e)
        try:
            await self.services.close()
        except TC_ERRORS as e:
            log.debug("closing HTTP session: %s", e)

    async def _after_exit(self, code: ExitCode) -> None:
        if code is ExitCode.IDLE_TIMEOUT and self.config.shutdown_machine_on_idle:
            await self._shut_down("generic-worker idle timeout")
        elif code is ExitCode.INTERNAL_ERROR and self.config.shutdown_machine_on_internal_error:
            await self._shut_down("generic-worker internal error")
        elif code is ExitCode.NONCURRENT_DEPLOYMENT_ID:
            await self._shut_down("generic-worker was told to terminate")

    async def _shut_down(self, cause: str) -> None:
        """Ask worker-runner to remove the worker when it can, else run `shutdownCommand`."""
        if self.runner is not None and self.runner.request_shutdown():
            log.info("asked worker-runner to shut down (%s)", cause)
            return
        await run_machine_command(self.config.shutdown_command, cause)


class _IdleClock:
    """Tracks how long the worker has had nothing to do; logs at most once a minute."""

    def __init__(self, timeout: int) -> None:
        self.timeout = timeout
        self.since = time.monotonic()
        self.last_log = self.since

    def reset(self) -> None:
        self.since = time.monotonic()

    def expired(self) -> bool:
        idle = time.monotonic() - self.since
        if self.timeout and idle >= self.timeout:
            log.info("Worker idle for idleTimeoutSecs seconds (%.1fs)", idle)
            return True
        if time.monotonic() - self.last_log >= 60:
            self.last_log = time.monotonic()
            extra = f" (will exit if no task claimed in {self.timeout - idle:.0f}s)" if self.timeout else ""
            log.info("No task claimed. Idle for %.0fs%s.", idle, extra)
        return False
