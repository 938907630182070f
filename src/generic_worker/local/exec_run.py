"""`generic-worker exec TASK-FILE`: run one task on this machine as a real deployment would.

An embedded tc-local starts in a temporary data directory; the worker gets a client with the
scopes a worker needs and the task is submitted with its own `scopes`; the worker claims and
runs it (exactly one task), its live log streams to stdout while it is written, its artifacts
are copied to `--artifacts`, and a summary goes to stderr. The exit code is the run's
resolution: 0 completed, 1 failed, 2 exception; 64 when the task file is unusable, 73 when the
config is invalid.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import aiohttp
import slugid
import taskcluster.aio
from taskcluster.exceptions import TaskclusterRestFailure

from generic_worker.config import Config, ConfigInvalidError, ConfigLoadError, config_from_mapping
from generic_worker.config.load import read_config_file
from generic_worker.exitcodes import ExitCode
from generic_worker.local.artifacts_copy import CopiedArtifact, copy_artifacts
from generic_worker.local.follow import RunOutcome, print_backing_log, run_outcome, stream_live_log
from generic_worker.local.platform import (
    complete_task,
    create_worker_client,
    local_defaults,
    merge_config,
    root_options,
    start_tclocal,
    worker_scopes,
    worker_settings,
)
from generic_worker.local.taskfile import TaskFileError, read_task_file
from generic_worker.multiuser.startchecks import multiuser_problems
from generic_worker.payload.model import backing_log_name, live_log_name
from generic_worker.runner import setup_logging

QUEUE = ("generic-worker-exec", "exec")
WORKER = ("local", "exec-worker")
CLIENT_ID = "generic-worker-exec/worker"

EXEC_OVERRIDES: dict[str, Any] = {
    "numberOfTasksToRun": 1,
    "capacity": 1,
    "idleTimeoutSecs": 0,
    "shutdownMachineOnIdle": False,
    "shutdownMachineOnInternalError": False,
}
"""Keys `exec` always sets: one task, and never a machine shutdown on this person's computer."""

EXIT_BY_STATE = {"completed": ExitCode.TASK_COMPLETED, "failed": ExitCode.TASK_FAILED}


@dataclass(frozen=True)
class ExecOptions:
    """The `exec` command line."""

    task_file: str
    config_file: Path | None
    artifacts: Path
    keep: bool


def cache_home() -> Path:
    """Where caches and downloads persist between runs without `--config`: ~/.cache/generic-worker."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "generic-worker"


def say(text: str) -> None:
    """A line of exec's own output (stderr, so stdout is exactly the task log)."""
    print(text, file=sys.stderr, flush=True)


def build_config(given: dict[str, Any], data: Path, tied: dict[str, Any], source: str) -> Config:
    """The worker's config: local defaults, then the config file, then what exec must set."""
    raw = merge_config(local_defaults(data, cache_home()), given, {**tied, **EXEC_OVERRIDES})
    config, warnings = config_from_mapping(raw, source)
    for warning in warnings:
        say(f"warning: {warning}")
    # The multiuser engine needs what `run` needs (root, root-only config and keys).
    problems = multiuser_problems(config, Path(source) if given else None)
    if problems:
        raise ConfigInvalidError(source, problems)
    return config


def exec_target(options: ExecOptions) -> ExitCode:
    """Run the `exec` target to its exit code."""
    setup_logging(logging.WARNING)
    try:
        name, task = read_task_file(options.task_file)
    except TaskFileError as e:
        say(f"error: {e}")
        return ExitCode.CANT_LOAD_CONFIG
    given: dict[str, Any] = {}
    source = "<exec defaults>"
    if options.config_file is not None:
        source = str(options.config_file)
        try:
            given = read_config_file(options.config_file)
        except ConfigLoadError as e:
            say(f"error: {e}")
            return ExitCode.CANT_LOAD_CONFIG
    data = Path(tempfile.mkdtemp(prefix="generic-worker-exec-"))
    placeholder = worker_settings("http://127.0.0.1", CLIENT_ID, "placeholder", QUEUE, WORKER)
    try:
        preview = build_config(given, data, placeholder, source)  # every problem, before anything starts
    except ConfigInvalidError as e:
        say(f"error: {e}")
        shutil.rmtree(data, ignore_errors=True)
        return ExitCode.INVALID_CONFIG
    try:
        # Cache state files sit beside the caches folder, so the next `exec` finds them.
        state_dir = Path(os.path.abspath(preview.caches_dir)).parent
        return asyncio.run(_exec(options, name, task, (given, source), data, state_dir))
    except KeyboardInterrupt:  # Ctrl-C before the worker was listening for it
        say("interrupted before the task started")
        return ExitCode.TASK_EXCEPTION
    finally:
        if options.keep:
            say(f"kept {data}: `tc-local serve --data-dir {data / 'tc-local'}` serves this task again")
        else:
            shutil.rmtree(data, ignore_errors=True)


async def _exec(
    options: ExecOptions,
    name: str,
    task: dict[str, Any],
    config_file: tuple[dict[str, Any], str],
    data: Path,
    state_dir: Path,
) -> ExitCode:
    from generic_worker.engine.worker import Worker  # noqa: PLC0415 - keeps `--help` fast
    from generic_worker.features import build_features  # noqa: PLC0415

    server = await start_tclocal(data / "tc-local")
    try:
        async with aiohttp.ClientSession() as session:
            opts = root_options(server)
            token = await create_worker_client(session, opts, CLIENT_ID, worker_scopes(*QUEUE, *WORKER))
            tied = worker_settings(server.root_url, CLIENT_ID, token, QUEUE, WORKER)
            config = build_config(config_file[0], data, tied, config_file[1])
            queue = taskcluster.aio.Queue(opts, session=session)
            task_id = slugid.nice()
            definition = complete_task(task, name, QUEUE, "generic-worker-exec")
            try:
                await queue.createTask(task_id, definition)
            except TaskclusterRestFailure as e:
                say(f"error: the queue refused the task: {e}")
                return ExitCode.CANT_LOAD_CONFIG
            say(f"running task {task_id} ({name}); while it runs: {server.root_url}/tasks/{task_id}")
            worker = Worker(config, build_features(config), state_dir=state_dir, sigint_aborts=True)
            running = asyncio.create_task(worker.run())
            out: BinaryIO = sys.stdout.buffer
            payload = definition["payload"]
            streamed = await stream_live_log(
                queue, session, task_id, live_log_name(payload), out, running.done
            )
            code = await running
            outcome = await run_outcome(queue, task_id)
            if outcome is None:
                say(f"error: the worker stopped (exit {int(code)}, {code.name}) before the task resolved")
                return ExitCode.TASK_EXCEPTION
            if not streamed:
                await print_backing_log(queue, session, task_id, backing_log_name(payload), out)
            copied = await copy_artifacts(queue, session, task_id, 0, options.artifacts)
            summarise(task_id, outcome, copied, options.artifacts)
            return EXIT_BY_STATE.get(outcome.state, ExitCode.TASK_EXCEPTION)
    finally:
        await server.stop()


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB"):
        value /= 1024
        if value < 1024:
            return f"{value:.1f} {unit}"
    return f"{value / 1024:.1f} GiB"


def summarise(task_id: str, outcome: RunOutcome, copied: list[CopiedArtifact], folder: Path) -> None:
    """Print the resolution, the duration and each artifact with its size."""
    took = f" in {outcome.seconds:.1f}s" if outcome.seconds is not None else ""
    say("")
    say(f"task {task_id}: {outcome.state} ({outcome.reason}){took}")
    if copied:
        say(f"artifacts (in {folder}):")
    width = max((len(c.name) for c in copied), default=0)
    for item in copied:
        say(f"  {item.name:<{width}}  {item.problem or _size(item.size)}")
