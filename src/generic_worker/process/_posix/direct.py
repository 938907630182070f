"""A command that writes its output into the sink's file itself: the pump's stand-in.

When the output sink is a `DirectSink` that agrees (the task log in the insecure engine), the
command's stdout and stderr are an appending descriptor of the log file: no pipe, no pump
thread, no copy, so the worker costs the task nothing while it prints. `DirectOutput` offers
the part of the `Pump` interface that `TaskProcesses` uses, so a command has one or the other.
"""

from __future__ import annotations

import os

from ..model import DirectSink


class DirectOutput:
    """The output side of one command writing straight into `sink` through `write_fd`."""

    def __init__(self, sink: DirectSink, fd: int) -> None:
        self.write_fd = fd
        self.error: OSError | None = None  # a full disk shows in the log itself (truncation)
        self._sink = sink
        self._ended = False

    def close_write_end(self) -> None:
        """Close our copy of the descriptor (the command has its own)."""
        if self.write_fd >= 0:
            os.close(self.write_fd)
            self.write_fd = -1

    def discard(self) -> None:
        """The command did not start."""
        self.close_write_end()
        self._end()

    def start(self, name: str) -> None:
        """Nothing runs on our side."""

    async def flush(self) -> None:
        """Everything the command wrote is in the file already: make the sink take it in."""
        self._sink.refresh()

    def stop(self) -> None:
        """The command's processes are gone (or being killed): this writer is over."""
        self._end()

    async def join(self) -> None:
        """Nothing to wait for."""

    def _end(self) -> None:
        if not self._ended:
            self._ended = True
            self._sink.direct_done()
