"""Command line: parse with docopt (the seed's usage shape), dispatch, return an ExitCode.

Only `__main__` (and the console-script wrapper, which calls `sys.exit(entry_point())`) turns
the returned code into the process exit status.
"""

from __future__ import annotations

import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from docopt import DocoptExit, docopt

from generic_worker.config import ConfigInvalidError, ConfigLoadError
from generic_worker.config.load import read_config_file
from generic_worker.exitcodes import ExitCode
from generic_worker.usage import VERSION_LINE, usage_text


def main(argv: Sequence[str] | None = None) -> ExitCode:
    """Run the command line `argv` (default: sys.argv[1:]) and return the exit code."""
    doc = usage_text()
    try:
        args: dict[str, Any] = docopt(doc, argv=list(sys.argv[1:] if argv is None else argv), help=False)
    except DocoptExit as e:
        print(str(e), file=sys.stderr)
        return ExitCode.USAGE_ERROR
    if args["--help"]:
        print(doc.rstrip("\n"))
        return ExitCode.TASKS_COMPLETE
    if args["--version"]:
        print(VERSION_LINE)
        return ExitCode.TASKS_COMPLETE
    return _dispatch(args, list(sys.argv[1:] if argv is None else argv))


def _dispatch(args: dict[str, Any], argv: list[str]) -> ExitCode:
    if args["exec"]:
        from generic_worker.local.exec_run import ExecOptions, exec_target  # noqa: PLC0415

        # `--config` has a default for `run`; exec reads a config file only when one is named.
        named = any(a == "--config" or a.startswith("--config=") for a in argv)
        return exec_target(
            ExecOptions(
                args["TASK-FILE"],
                Path(args["--config"]) if named else None,
                Path(args["--artifacts"]),
                bool(args["--keep"]),
            )
        )
    if args["run"]:
        from generic_worker.runner import run_target  # noqa: PLC0415 - heavy imports only for `run`

        return run_target(
            Path(args["--config"]),
            configure_for_aws=bool(args["--configure-for-aws"]),
            with_worker_runner=bool(args["--with-worker-runner"]),
        )
    if args["install"]:
        from generic_worker.service import install_service  # noqa: PLC0415

        return install_service(args["--service-name"], Path(args["--config"]))
    if args["show-payload-schema"]:
        return show_payload_schema(Path(args["--config"]))
    if args["new-openpgp-keypair"]:
        return _keypair("openpgp", Path(args["--file"]))
    if args["new-ed25519-keypair"]:
        return _keypair("ed25519", Path(args["--file"]))
    if args["grant-winsta-access"]:
        return grant_winsta_access(args["--sid"])
    raise AssertionError(f"unhandled command line {args}")  # pragma: no cover - docopt guarantees one


def show_payload_schema(config_file: Path) -> ExitCode:
    """Print the payload schema of the engine the config file selects (insecure by default)."""
    from generic_worker.payload import Engine, schema_json  # noqa: PLC0415

    engine = Engine.INSECURE
    if config_file.exists():
        try:
            raw = read_config_file(config_file)
        except ConfigLoadError as e:
            print(e, file=sys.stderr)
            return ExitCode.CANT_LOAD_CONFIG
        as_current = {k.lower(): v for k, v in raw.items()}.get("runtasksascurrentuser", True)
        if not isinstance(as_current, bool):
            err = ConfigInvalidError(str(config_file), ['"runTasksAsCurrentUser": must be true or false'])
            print(err, file=sys.stderr)
            return ExitCode.INVALID_CONFIG
        if not as_current:
            engine = Engine.MULTIUSER
    print(schema_json(engine))
    return ExitCode.TASKS_COMPLETE


def _keypair(kind: str, file: Path) -> ExitCode:
    from generic_worker.keypairs import new_ed25519_keypair, new_openpgp_keypair  # noqa: PLC0415

    try:
        public = new_openpgp_keypair(file) if kind == "openpgp" else new_ed25519_keypair(file)
    except OSError as e:
        print(
            f"Could not write {kind} private key to file '{file}': {e.strerror or e}",
            file=sys.stderr,
        )
        return ExitCode.CANT_CREATE_KEYPAIR
    sys.stdout.write(public)
    return ExitCode.TASKS_COMPLETE


def grant_winsta_access(sid: str) -> ExitCode:
    """Windows only: elsewhere, the seed's message and exit 74."""
    goos = platform.system().lower()
    print(
        f"Cannot grant {sid} full control of interactive windows station and desktop; "
        f"platform {goos} does not have such entities",
        file=sys.stderr,
    )
    return ExitCode.CANT_GRANT_CONTROL_OF_WINSTA_AND_DESKTOP


def entry_point() -> int:
    """Console-script entry: the wrapper setuptools generates passes this to sys.exit."""
    return int(main())
