"""Content type and content encoding of file artifacts, when the payload does not give them.

Content type, as upstream: our own map first (`.log` -> `text/plain`, `.jsonl` ->
`application/jsonl`), then the system's MIME table (Python's built-in table plus the
`mime.types` files Go also reads), with `; charset=utf-8` appended to `text/*` types the way Go's
`mime.TypeByExtension` does (`.txt` -> `text/plain; charset=utf-8`), else
`application/octet-stream`.

Content encoding: gzip unless the extension is on today's upstream skip-list of formats that are
already compressed. Decision: the extension match is **case-insensitive** (`X.JPG` and `a.ZIP`
are as incompressible as `x.jpg`); upstream matches case-sensitively, which only makes it gzip
such files again for no gain. The encoding changes how the bytes travel, never what a client
downloads, so the difference is invisible to consumers.
"""

from __future__ import annotations

import functools
import mimetypes
import os

CUSTOM_TYPES = {".log": "text/plain", ".jsonl": "application/jsonl"}
"""Upstream's own mappings, consulted before the system table (no charset added)."""

DEFAULT_TYPE = "application/octet-stream"

SKIP_COMPRESSION = frozenset(
    ".7z .aab .apk .br .bz2 .deb .dmg .flv .gif .gz .jar .jpeg .jpg .lz .lz4 .mz .npz .pkg .png"
    " .swf .sz .tbz .tgz .wasm .webp .whl .woff .woff2 .xpi .xz .zip .zst .zz".split()
)
"""Extensions uploaded with `identity` encoding by default (upstream's list, modern-gw §1.2)."""

GZIP = "gzip"
IDENTITY = "identity"


def extension(name: str) -> str:
    """Return the extension as Go's `filepath.Ext` does: from the last dot of the last element."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    dot = base.rfind(".")
    return base[dot:] if dot >= 0 else ""


@functools.cache
def _system_types() -> dict[str, str]:
    """Python's built-in table overlaid with the system `mime.types` files (read once)."""
    table = mimetypes.MimeTypes()
    for path in mimetypes.knownfiles:
        if os.path.isfile(path):
            try:
                table.read(path)
            except (OSError, UnicodeDecodeError):  # an unreadable system file: keep the built-ins
                continue
    return dict(table.types_map[True])


def _with_charset(mime_type: str) -> str:
    if mime_type.startswith("text/") and "charset=" not in mime_type:
        return mime_type + "; charset=utf-8"
    return mime_type


def guess_content_type(name: str) -> str:
    """Guess the content type of a file called `name` as upstream does (reads system files once)."""
    ext = extension(name)
    if not ext:
        return DEFAULT_TYPE
    custom = CUSTOM_TYPES.get(ext.lower())
    if custom:
        return custom
    table = _system_types()
    found = table.get(ext) or table.get(ext.lower())
    return _with_charset(found) if found else DEFAULT_TYPE


def default_content_encoding(name: str) -> str:
    """`identity` for already-compressed formats (case-insensitive extension match), else `gzip`."""
    return IDENTITY if extension(name).lower() in SKIP_COMPRESSION else GZIP
