"""The config layer `--configure-for-aws` builds before the config file is merged over it.

The seed's flow: read user-data from the metadata service; fetch the worker type secret from
the provisioner with user-data's `securityToken`, then always delete it (it can be read once);
read the instance metadata; take credentials, worker identity and addresses from them; merge
the secret's `generic-worker.config`; write the secret's `files`; default `idleTimeoutSecs` to
3600 and turn shutdown-on-idle and shutdown-on-internal-error on.

Because the secret can be read only once, a worker restarted on the same instance (systemd
restarts it after a crash) could not configure itself again: the layer is therefore saved in
the state directory (`aws-config.json`, mode 0600, like the config file it stands for) and
used when the secret is gone. The config file itself is never rewritten.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from pathlib import Path
from typing import Any

import aiohttp

from generic_worker.aws.metadata import MetadataError, MetadataService
from generic_worker.aws.secret_files import SecretFileError, write_secret_files
from generic_worker.config.layers import merge_layers
from generic_worker.tc import TC_ERRORS
from generic_worker.tc.failures import describe
from generic_worker.tc.provisioner import provisioner_client

AWS_LAYER_CACHE = "aws-config.json"
"""The saved layer, in the worker's state directory (its working directory)."""

DEFAULT_IDLE_TIMEOUT = 3600

INSTANCE_METADATA = (
    "ami-id",
    "instance-id",
    "instance-type",
    "public-ipv4",
    "placement/availability-zone",
    "public-hostname",
    "local-ipv4",
)
OPTIONAL_METADATA = frozenset({"public-ipv4", "public-hostname"})
"""Absent (404) on instances without a public address; the worker can still run there."""


class AwsStartupError(Exception):
    """The AWS start-up flow could not complete."""


STARTUP_ERRORS: tuple[type[BaseException], ...] = (
    AwsStartupError,
    MetadataError,
    SecretFileError,
    OSError,
    *TC_ERRORS,
)


async def aws_config_layer(metadata_base_url: str, state_dir: Path) -> tuple[dict[str, Any], list[str]]:
    """The config values from AWS (or the saved ones), and error lines to log.

    Never raises: as in the seed, a failed flow leaves validation of the merged config to say
    what is missing (exit 73).
    """
    cache = state_dir / AWS_LAYER_CACHE
    try:
        async with aiohttp.ClientSession() as session:
            layer = await _fetch_layer(session, metadata_base_url, state_dir)
    except STARTUP_ERRORS as e:
        why = describe(e) if isinstance(e, TC_ERRORS) else str(e)
        saved = await asyncio.to_thread(_read_saved, cache)
        if saved is not None:
            return saved, [f"--configure-for-aws: {why}; using the values saved in {cache} at first start-up"]
        return {}, [f"--configure-for-aws failed: {why}"]
    try:
        await asyncio.to_thread(_save, cache, layer)
    except OSError as e:
        return layer, [f"--configure-for-aws: could not save {cache} for restarts: {e.strerror or e}"]
    return layer, []


async def _fetch_layer(
    session: aiohttp.ClientSession, metadata_base_url: str, state_dir: Path
) -> dict[str, Any]:
    metadata = MetadataService(session, metadata_base_url)
    user_data = await metadata.user_data()
    fields = {
        name: _string(user_data, name)
        for name in ("provisionerBaseUrl", "securityToken", "provisionerId", "workerType", "region")
    }
    secret = await _take_secret(session, fields["provisionerBaseUrl"], fields["securityToken"])
    credentials = secret.get("credentials")
    if not isinstance(credentials, dict):
        raise AwsStartupError("the worker type secret has no credentials")
    layer: dict[str, Any] = {
        "shutdownMachineOnInternalError": True,
        "shutdownMachineOnIdle": True,
        "clientId": credentials.get("clientId", ""),
        "accessToken": credentials.get("accessToken", ""),
        "provisionerId": fields["provisionerId"],
        "workerType": fields["workerType"],
        "workerGroup": fields["region"],
        "region": fields["region"],
        "provisionerBaseURL": fields["provisionerBaseUrl"],
    }
    if credentials.get("certificate"):
        layer["certificate"] = credentials["certificate"]
    layer.update(await _instance_values(metadata))
    data = _secret_data(secret)
    gw_config = (data.get("generic-worker") or {}).get("config") or {}
    if not isinstance(gw_config, dict):
        raise AwsStartupError('the worker type secret\'s "generic-worker.config" is not an object')
    layer = merge_layers(layer, gw_config)
    await asyncio.to_thread(write_secret_files, data.get("files"), state_dir)
    if not layer.get("idleTimeoutSecs"):
        layer["idleTimeoutSecs"] = DEFAULT_IDLE_TIMEOUT
    return layer


async def _take_secret(session: aiohttp.ClientSession, base_url: str, token: str) -> dict[str, Any]:
    """GET the secret, then always DELETE it (it is for this instance only, and read once)."""
    provisioner = provisioner_client(session, base_url)
    try:
        secret = await provisioner.getSecret(token)
    except BaseException:
        with contextlib.suppress(*TC_ERRORS):
            await provisioner.removeSecret(token)
        raise
    await provisioner.removeSecret(token)
    if not isinstance(secret, dict):
        raise AwsStartupError("the worker type secret is not a JSON object")
    return secret


async def _instance_values(metadata: MetadataService) -> dict[str, Any]:
    aws: dict[str, str] = {}
    for name in INSTANCE_METADATA:
        try:
            aws[name.rsplit("/", 1)[-1]] = await metadata.instance(name)
        except MetadataError:
            if name not in OPTIONAL_METADATA:
                raise
    values: dict[str, Any] = {
        "workerId": aws["instance-id"],
        "instanceId": aws["instance-id"],
        "instanceType": aws["instance-type"],
        "availabilityZone": aws["availability-zone"],
        "privateIP": aws["local-ipv4"],
        "workerTypeMetadata": {"aws": aws},
    }
    if aws.get("public-ipv4"):
        values["publicIP"] = aws["public-ipv4"]
    return values


def _secret_data(secret: dict[str, Any]) -> dict[str, Any]:
    data = secret.get("data") or {}
    if isinstance(data, str):  # some provisioners stored it as a JSON string
        try:
            data = json.loads(data)
        except json.JSONDecodeError as e:
            raise AwsStartupError(f"the worker type secret's data is not JSON: {e}") from e
    if not isinstance(data, dict):
        raise AwsStartupError("the worker type secret's data is not an object")
    return data


def _string(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise AwsStartupError(f'user-data has no "{name}"')
    return value


def _read_saved(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _save(path: Path, layer: dict[str, Any]) -> None:
    """Write the layer 0600 (it holds the worker's credentials), atomically."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(layer, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)
