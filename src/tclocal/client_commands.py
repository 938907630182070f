"""tc-local's client commands (submit, status, artifacts, fetch, log), via the official client."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any, BinaryIO

import aiohttp
import slugid
import taskcluster
import taskcluster.aio
import yaml

from tclocal.core.timestamps import from_now
from tclocal.exitcodes import ExitCode
from tclocal.server import read_client_options

LOG_NAMES = ("public/logs/live_backing.log", "public/logs/live.log")


class CommandError(Exception):
    """A client command failed; the message is for the user."""

    def __init__(self, message: str, code: ExitCode) -> None:
        super().__init__(message)
        self.code = code


def client_options(data_dir: Path) -> dict[str, Any]:
    """TASKCLUSTER_* from the environment, else the local tc-local's root credentials."""
    if os.environ.get("TASKCLUSTER_ROOT_URL"):
        return dict(taskcluster.optionsFromEnvironment())
    options = read_client_options(data_dir)
    if options is None:
        raise CommandError(
            f"no TASKCLUSTER_ROOT_URL and no running tc-local found in {data_dir}", ExitCode.ERROR
        )
    return options


def prepare_task(text: str, args: argparse.Namespace, root_url: str) -> dict[str, Any]:
    """Fill what a hand-written task usually leaves out: times, queue, metadata."""
    task = yaml.safe_load(text)
    if not isinstance(task, dict):
        raise CommandError("the task file must hold a mapping (a task definition)", ExitCode.ERROR)
    if "taskQueueId" not in task:
        task.setdefault("provisionerId", args.provisioner_id)
        task.setdefault("workerType", args.worker_type)
    task.setdefault("created", from_now(0))
    task.setdefault("deadline", from_now(3600))
    task.setdefault("expires", from_now(14 * 24 * 3600))
    task.setdefault("payload", {})
    metadata = task.setdefault("metadata", {})
    metadata.setdefault("name", args.file.name)
    metadata.setdefault("description", f"submitted with tc-local from {args.file}")
    metadata.setdefault("owner", "tc-local@localhost")
    metadata.setdefault("source", f"{root_url}/")
    for key in ("created", "deadline", "expires"):  # YAML may have parsed them as datetimes
        if not isinstance(task[key], str):
            task[key] = task[key].isoformat()
    return task


async def _submit(queue: Any, args: argparse.Namespace, options: dict[str, Any]) -> None:
    text = await asyncio.to_thread(args.file.read_text)
    task = prepare_task(text, args, options["rootUrl"])
    task_id = args.task_id or slugid.nice()
    result = await queue.createTask(task_id, task)
    print(task_id)
    print(f"state: {result['status']['state']}", file=sys.stderr)


def _describe(status: dict[str, Any]) -> str:
    lines = [f"task {status['taskId']}: {status['state']} ({status['taskQueueId']})"]
    for run in status["runs"]:
        where = f" on {run['workerGroup']}/{run['workerId']}" if "workerGroup" in run else ""
        resolution = f" ({run['reasonResolved']})" if "reasonResolved" in run else ""
        lines.append(f"  run {run['runId']}: {run['state']}{resolution}{where}")
    return "\n".join(lines)


async def _status(queue: Any, args: argparse.Namespace) -> None:
    status = (await queue.status(args.task_id))["status"]
    print(json.dumps(status, indent=2) if args.json else _describe(status))


async def _artifacts(queue: Any, args: argparse.Namespace) -> None:
    if args.run is None:
        listing = await queue.listLatestArtifacts(args.task_id)
    else:
        listing = await queue.listArtifacts(args.task_id, args.run)
    for artifact in listing["artifacts"]:
        print(f"{artifact['name']}\t{artifact['storageType']}\t{artifact['contentType']}")


async def _stream(session: aiohttp.ClientSession, url: str, output: Path | None) -> None:
    async with session.get(url) as response:
        if response.status != 200:
            raise CommandError(f"GET {url}: HTTP {response.status}", ExitCode.API_ERROR)
        sink: BinaryIO = (
            await asyncio.to_thread(open, output, "wb") if output else sys.stdout.buffer  # noqa: ASYNC230
        )
        try:
            async for chunk in response.content.iter_chunked(1 << 16):
                await asyncio.to_thread(sink.write, chunk)
        finally:
            await asyncio.to_thread(sink.close if output else sink.flush)


async def _fetch(queue: Any, session: aiohttp.ClientSession, args: argparse.Namespace) -> None:
    names = [args.name] if args.command == "fetch" else list(LOG_NAMES)
    for name in names:
        try:
            if args.run is None:
                found = await queue.getLatestArtifact(args.task_id, name)
            else:
                found = await queue.getArtifact(args.task_id, args.run, name)
        except taskcluster.exceptions.TaskclusterRestFailure as err:
            if err.status_code == 404 and name != names[-1]:
                continue
            raise
        await _stream(session, found["url"], args.output)
        return


async def run(args: argparse.Namespace, data_dir: Path) -> ExitCode:
    """Run one client command; errors become a message on stderr and an exit code."""
    try:
        options = client_options(data_dir)
        async with aiohttp.ClientSession() as session:
            queue = taskcluster.aio.Queue(options, session=session)
            if args.command == "submit":
                await _submit(queue, args, options)
            elif args.command == "status":
                await _status(queue, args)
            elif args.command == "artifacts":
                await _artifacts(queue, args)
            else:
                await _fetch(queue, session, args)
    except CommandError as err:
        print(f"tc-local: {err}", file=sys.stderr)
        return err.code
    except (taskcluster.exceptions.TaskclusterConnectionError, aiohttp.ClientError) as err:
        print(f"tc-local: cannot reach the service: {err}", file=sys.stderr)
        return ExitCode.UNREACHABLE
    except taskcluster.exceptions.TaskclusterFailure as err:
        print(f"tc-local: {str(err).split(chr(10) + chr(10) + '---')[0]}", file=sys.stderr)
        return ExitCode.API_ERROR
    except (OSError, yaml.YAMLError) as err:
        print(f"tc-local: {err}", file=sys.stderr)
        return ExitCode.ERROR
    return ExitCode.OK
