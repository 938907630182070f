"""The ``format`` checks our payload schemas use: ``date-time`` and ``uri``.

jsonschema checks ``date-time`` (with rfc3339-validator) but silently skips ``uri`` unless the
``rfc3987`` package is installed, so ``uri`` is checked here, as gojsonschema (the seed's
validator) did: Go's ``url.Parse`` must accept the text, there must be a scheme, and no backslash.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from jsonschema import (  # type: ignore[import-untyped, unused-ignore]  # no stubs
    Draft6Validator,
    FormatChecker,
)

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# A "%" must start a two-hex-digit escape (Go's url.Parse rejects "%zz" and a trailing "%").
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def is_uri(instance: object) -> bool:
    """Say whether ``instance`` is an absolute URI as gojsonschema's ``uri`` format means it.

    Non-strings pass (the ``type`` keyword reports those).
    """
    if not isinstance(instance, str):
        return True
    if not _SCHEME.match(instance) or "\\" in instance:
        return False
    if _CONTROL.search(instance) or _BAD_ESCAPE.search(instance):
        return False
    try:
        parts = urlsplit(instance)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return False
    return " " not in parts.netloc


def payload_format_checker() -> FormatChecker:
    """Build the format checker for payload validation: ``date-time`` (RFC 3339) and ``uri``."""
    checker = FormatChecker(formats=())
    func, raises = Draft6Validator.FORMAT_CHECKER.checkers["date-time"]
    checker.checkers["date-time"] = (func, raises)
    checker.checks("uri")(is_uri)
    return checker
