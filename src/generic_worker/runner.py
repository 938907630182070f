"""The `run` target: load the config, build the worker and its features, run it to an exit code."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

from generic_worker.config import Config, ConfigInvalidError, ConfigLoadError, load_config
from generic_worker.exitcodes import ExitCode

log = logging.getLogger("generic_worker")


def setup_logging(level: int = logging.INFO) -> None:
    """Worker log to stderr, Go-style timestamps (`2006/01/02 15:04:05 message`)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%Y/%m/%d %H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("taskcluster").setLevel(logging.WARNING)


def load(config_file: Path) -> Config | ExitCode:
    """Load the config, or print why not and return the exit code (64 / 73)."""
    try:
        config, warnings = load_config(config_file)
    except ConfigLoadError as e:
        log.error("%s", e)
        return ExitCode.CANT_LOAD_CONFIG
    except ConfigInvalidError as e:
        log.error("%s", e)
        return ExitCode.INVALID_CONFIG
    for warning in warnings:
        log.warning("%s", warning)
    return config


def run_target(config_file: Path, *, configure_for_aws: bool, with_worker_runner: bool) -> ExitCode:
    """`generic-worker run`: returns the worker's exit code."""
    setup_logging()
    loaded = load(config_file)
    if isinstance(loaded, ExitCode):
        return loaded
    config = loaded
    problems = unsupported_modes(config, configure_for_aws)
    if problems:
        log.error("%s", ConfigInvalidError(str(config_file), problems))
        return ExitCode.INVALID_CONFIG
    from generic_worker.multiuser.startchecks import multiuser_problems  # noqa: PLC0415

    refused = multiuser_problems(config, config_file)
    for problem in refused:
        log.error("%s", problem)
    if refused:
        return ExitCode.INVALID_CONFIG
    log.info("Config: %r", config)
    return asyncio.run(_run_worker(config, with_worker_runner))


async def _run_worker(config: Config, with_worker_runner: bool) -> ExitCode:
    from generic_worker.engine.worker import Worker  # noqa: PLC0415 - keeps `--help` fast
    from generic_worker.features import build_features  # noqa: PLC0415
    from generic_worker.workerproto import RunnerLink, RunnerLogHandler  # noqa: PLC0415

    runner = None
    if with_worker_runner:
        # stdout belongs to the protocol; log lines go through it once `log` is agreed.
        runner = RunnerLink()
        root = logging.getLogger()
        root.handlers[:] = [RunnerLogHandler(runner, root.handlers[0])]
    worker = Worker(config, build_features(config), state_dir=Path.cwd(), runner=runner)
    return await worker.run()


def unsupported_modes(config: Config, configure_for_aws: bool) -> list[str]:
    """Modes this release cannot run in yet, as config problems (exit 73)."""
    problems = []
    if configure_for_aws:
        problems.append("--configure-for-aws is not available in this release")
    return problems
