"""The `tc-local` command line: `serve`, and small client commands for newcomers.

    tc-local serve [--host 127.0.0.1] [--port 8080] [--data-dir DIR] [--root-access-token T]
                   [--clients FILE] [--claim-timeout SECONDS] [--access-log] [--sentry-dsn DSN]
    tc-local submit FILE [--task-id ID] [--provisioner-id P] [--worker-type W]
    tc-local status TASK_ID [--json]
    tc-local artifacts TASK_ID [--run N]
    tc-local fetch TASK_ID NAME [--run N] [--output FILE]
    tc-local log TASK_ID [--run N] [--output FILE]

Client commands find the service from TASKCLUSTER_ROOT_URL / TASKCLUSTER_CLIENT_ID /
TASKCLUSTER_ACCESS_TOKEN, or else from the data directory a local `serve` writes to.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import NoReturn

from tclocal.context import Settings
from tclocal.exitcodes import ExitCode
from tclocal.server import ServerConfig, TCLocalServer, write_server_info


class UsageError(Exception):
    """The command line did not parse (argparse's own exit is turned into this)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.format_usage()}{self.prog}: error: {message}")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            sys.stderr.write(message)
        raise _Done(status)


class _Done(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def default_data_dir() -> Path:
    """`$TCLOCAL_DATA_DIR`, else `$XDG_DATA_HOME/tc-local`, else `~/.local/share/tc-local`."""
    if os.environ.get("TCLOCAL_DATA_DIR"):
        return Path(os.environ["TCLOCAL_DATA_DIR"])
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "tc-local"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every sub-command."""
    parser = _Parser(prog="tc-local", description="A local Taskcluster-compatible platform.")
    common = _Parser(add_help=False)
    common.add_argument("--data-dir", type=Path, default=None, dest="sub_data_dir")
    parser.add_argument("--data-dir", type=Path, default=None, help="state directory")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=text, parents=[common])

    serve = command("serve", "run the services until SIGINT/SIGTERM")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback)")
    serve.add_argument("--port", type=int, default=8080, help="port (0 picks a free one)")
    serve.add_argument(
        "--root-access-token",
        default=os.environ.get("TCLOCAL_ROOT_ACCESS_TOKEN"),
        help="root client's access token (default: $TCLOCAL_ROOT_ACCESS_TOKEN or generated)",
    )
    serve.add_argument("--clients", type=Path, help="YAML/JSON list of static clients")
    serve.add_argument("--claim-timeout", type=float, default=1200.0, help="seconds per claim")
    serve.add_argument("--access-log", action="store_true", help="log every request")
    serve.add_argument(
        "--sentry-dsn", default="", help="DSN that auth's sentryDSN hands out (default: none, 404)"
    )
    submit = command("submit", "create a task from a YAML or JSON file")
    submit.add_argument("file", type=Path)
    submit.add_argument("--task-id")
    submit.add_argument("--provisioner-id", default="tc-local")
    submit.add_argument("--worker-type", default="worker")
    status = command("status", "show a task's status")
    status.add_argument("task_id")
    status.add_argument("--json", action="store_true")
    artifacts = command("artifacts", "list a task's artifacts")
    artifacts.add_argument("task_id")
    artifacts.add_argument("--run", type=int)
    for name, text in (("fetch", "download an artifact"), ("log", "print the task's log")):
        cmd = command(name, text)
        cmd.add_argument("task_id")
        if name == "fetch":
            cmd.add_argument("name")
        cmd.add_argument("--run", type=int)
        cmd.add_argument("--output", type=Path, help="file to write (default: stdout)")
    return parser


async def serve(config: ServerConfig) -> ExitCode:
    """Run tc-local until SIGINT or SIGTERM, printing how to reach it."""
    server = TCLocalServer(config)
    try:
        await server.start()
    except OSError as err:
        print(f"tc-local: cannot start: {err}", file=sys.stderr)
        return ExitCode.ERROR
    await asyncio.to_thread(write_server_info, config.data_dir, server.root_url)
    print(f"tc-local is listening on {server.root_url} (data in {config.data_dir})")
    print(f"web view: {server.root_url}/")
    print(f"export TASKCLUSTER_ROOT_URL={server.root_url}")
    print(f"export TASKCLUSTER_CLIENT_ID={server.root_client_id}")
    print(f"export TASKCLUSTER_ACCESS_TOKEN={server.root_access_token}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    print("tc-local: stopping", flush=True)
    await server.stop()
    return ExitCode.OK


def _run(args: argparse.Namespace) -> ExitCode:
    data_dir = args.sub_data_dir or args.data_dir or default_data_dir()
    if args.command == "serve":
        config = ServerConfig(
            data_dir=data_dir,
            host=args.host,
            port=args.port,
            root_access_token=args.root_access_token,
            clients_file=args.clients,
            settings=Settings(claim_timeout=args.claim_timeout, sentry_dsn=args.sentry_dsn),
            access_log=args.access_log,
        )
        return asyncio.run(serve(config))
    from tclocal import client_commands

    return asyncio.run(client_commands.run(args, data_dir))


def main(argv: list[str] | None = None) -> ExitCode:
    """Parse the command line and run the command; return the exit code."""
    try:
        args = build_parser().parse_args(argv)
    except UsageError as err:
        print(err, file=sys.stderr)
        return ExitCode.USAGE
    except _Done as done:
        return ExitCode.OK if done.status == 0 else ExitCode.USAGE
    try:
        return _run(args)
    except KeyboardInterrupt:
        return ExitCode.OK


def entry_point() -> None:
    """The `tc-local` console script."""
    raise SystemExit(int(main()))
