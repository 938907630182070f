"""The `run` target: load the config, build the worker and its features, run it to an exit code."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from generic_worker.config import (
    Config,
    ConfigInvalidError,
    ConfigLoadError,
    config_from_mapping,
    load_config,
)
from generic_worker.config.layers import merge_layers
from generic_worker.config.load import read_config_file
from generic_worker.exitcodes import ExitCode
from generic_worker.worker_log import TEXT, TaskAndSecretsFilter, add_secret, make_handler

log = logging.getLogger("generic_worker")


def setup_logging(level: int = logging.INFO, log_format: str = TEXT) -> None:
    """Worker log to stderr: Go-style text lines (`2006/01/02 15:04:05 message`) or JSON lines."""
    root = logging.getLogger()
    root.handlers[:] = [make_handler(log_format)]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("taskcluster").setLevel(logging.WARNING)


def load(config_file: Path, *, configure_for_aws: bool = False) -> Config | ExitCode:
    """Load the config, or print why not and return the exit code (64 / 73).

    With `configure_for_aws` the AWS layer comes first and the file is merged over it, so
    the keys AWS provides need not be in the file (which may then be missing altogether);
    validation runs on the merged result.
    """
    try:
        if configure_for_aws:
            config, warnings = asyncio.run(_load_for_aws(config_file))
        else:
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


async def _load_for_aws(config_file: Path) -> tuple[Config, list[str]]:
    from generic_worker.aws import aws_config_layer  # noqa: PLC0415 - only for --configure-for-aws

    # Sync reads before the worker starts: nothing else runs on the loop yet.
    raw = read_config_file(config_file) if config_file.exists() else {}  # noqa: ASYNC240
    base_url = merge_layers(raw).get("metadataBaseURL") or Config().metadata_base_url
    if not isinstance(base_url, str):
        raise ConfigInvalidError(str(config_file), ['"metadataBaseURL": must be a string'])
    layer, problems = await aws_config_layer(base_url, Path.cwd())
    for problem in problems:
        log.error("%s", problem)
    config, warnings = config_from_mapping(merge_layers(layer, raw), str(config_file))
    return config, warnings


def run_target(config_file: Path, *, configure_for_aws: bool, with_worker_runner: bool) -> ExitCode:
    """`generic-worker run`: returns the worker's exit code."""
    setup_logging()
    loaded = load(config_file, configure_for_aws=configure_for_aws)
    if isinstance(loaded, ExitCode):
        return loaded
    config = loaded
    for secret in (config.access_token, config.certificate, config.livelog_secret):
        add_secret(secret)
    setup_logging(log_format=config.log_format)
    from generic_worker.multiuser.startchecks import multiuser_problems  # noqa: PLC0415

    refused = multiuser_problems(config, config_file)
    for problem in refused:
        log.error("%s", problem)
    if refused:
        return ExitCode.INVALID_CONFIG
    log.info("Config: %r", config)
    return asyncio.run(_run_worker(config, with_worker_runner, configure_for_aws))


async def _run_worker(config: Config, with_worker_runner: bool, configure_for_aws: bool) -> ExitCode:
    from generic_worker.engine.worker import Worker  # noqa: PLC0415 - keeps `--help` fast
    from generic_worker.features import build_features  # noqa: PLC0415
    from generic_worker.workerproto import RunnerLink, RunnerLogHandler  # noqa: PLC0415

    runner = None
    if with_worker_runner:
        # stdout belongs to the protocol; log lines go through it once `log` is agreed.
        runner = RunnerLink()
        root = logging.getLogger()
        handler = RunnerLogHandler(runner, root.handlers[0])
        handler.addFilter(TaskAndSecretsFilter())
        root.handlers[:] = [handler]
    features = build_features(config, configure_for_aws=configure_for_aws)
    worker = Worker(config, features, state_dir=Path.cwd(), runner=runner)
    return await worker.run()
