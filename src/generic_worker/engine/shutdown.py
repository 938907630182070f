"""Running the configured machine shutdown / reboot command when the worker exits."""

from __future__ import annotations

import logging
import shlex

from generic_worker.process import run_capture

log = logging.getLogger(__name__)


async def run_machine_command(command: str, cause: str) -> bool:
    """Run `shutdownCommand`/`rebootCommand` (already validated to split); True if it exited 0."""
    argv = shlex.split(command)
    log.info("Running %s (%s)", shlex.join(argv), cause)
    try:
        result = await run_capture(argv, timeout=120)
    except OSError as e:
        log.error("Could not run %s: %s", argv[0], e.strerror or e)
        return False
    output = result.output.decode(errors="replace").strip()
    if result.exit_code != 0:
        log.error("%s exited with %s: %s", shlex.join(argv), result.exit_code, output)
        return False
    return True
