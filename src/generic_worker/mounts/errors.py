"""The one error type of the mounts package: a mount that could not be set up or torn down.

A `MountError` is the task's problem (a bad sha256, a missing artifact, an archive that tries to
escape its directory, a cache the task moved away...), so the feature turns it into a
`failed/failed` resolution with a `[mounts]` line, as the seed does (seed-gw.md §3.10).
"""

from __future__ import annotations


class MountError(Exception):
    """A mount step failed; `str(error)` is the message without the `[mounts] ` prefix."""
