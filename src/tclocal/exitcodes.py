"""tc-local's process exit codes (one enum; only `__main__` calls sys.exit)."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Every code `tc-local` exits with."""

    OK = 0
    """The command succeeded (for `serve`: it was stopped by SIGINT/SIGTERM)."""
    ERROR = 1
    """The command could not run: bad file, unusable data directory, port in use."""
    USAGE = 2
    """The command line did not parse."""
    API_ERROR = 3
    """The service answered with an error (unknown task, missing scope, error artifact...)."""
    UNREACHABLE = 4
    """The service could not be reached."""
