"""Writing the `files` of a worker type secret: base64 content, as a plain file or an unzipped tree.

The seed's texts for what it does not support are kept. Unlike the seed (mode 0777), files are
written 0700: they often hold keys or scripts that tasks must not read or change. Zip entries
that would land outside the target directory are refused.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import zipfile
from pathlib import Path
from typing import Any

FILE_MODE = 0o700


class SecretFileError(Exception):
    """A file in the worker type secret could not be written."""


def write_secret_files(files: Any, base_dir: Path) -> list[Path]:
    """Write every entry of `files` (relative paths are under `base_dir`); return what was written.

    Blocking: call it through `asyncio.to_thread`.
    """
    if files is None:
        return []
    if not isinstance(files, list):
        raise SecretFileError("files in worker type secret must be a list")
    written: list[Path] = []
    for entry in files:
        if not isinstance(entry, dict):
            raise SecretFileError("each file in worker type secret must be an object")
        fmt, encoding = entry.get("format"), entry.get("encoding")
        if fmt not in ("file", "zip"):
            raise SecretFileError(f"Unknown file format {fmt} in worker type secret")
        if encoding != "base64":
            raise SecretFileError(
                f"Unsupported encoding {encoding} for {fmt} secret in worker type definition"
            )
        path = entry.get("path")
        if not isinstance(path, str) or not path:
            raise SecretFileError(f"{fmt} secret in worker type definition has no path")
        target = base_dir / path
        data = _decode(entry.get("content"), path)
        if fmt == "file":
            _write_file(target, data)
            written.append(target)
        else:
            written.extend(_unzip(target, data))
    return written


def _decode(content: Any, path: str) -> bytes:
    if not isinstance(content, str):
        raise SecretFileError(f"secret file {path}: content must be a base64 string")
    try:
        return base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError) as e:
        raise SecretFileError(f"secret file {path}: content is not valid base64: {e}") from e


def _write_file(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(target, FILE_MODE)  # an existing file keeps its old mode through O_CREAT


def _unzip(directory: Path, data: bytes) -> list[Path]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as e:
        raise SecretFileError(f"zip secret for {directory} is not a zip file: {e}") from e
    root = directory.resolve()
    written = []
    with archive:
        for info in archive.infolist():
            dest = (root / info.filename).resolve()
            if dest != root and root not in dest.parents:
                raise SecretFileError(
                    f"zip secret for {directory}: entry {info.filename!r} escapes the directory"
                )
            if info.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
                continue
            _write_file(dest, archive.read(info))
            written.append(dest)
    return written
