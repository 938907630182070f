"""Fixtures for the process tests: a subreaper test process, an output collector, leak checks."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator

import psutil
import pytest

from generic_worker.process import TaskProcesses, enable_subreaper, is_subreaper, reap_orphans

from .proc_helpers import Collector


@pytest.fixture(autouse=True)
def subreaper() -> Iterator[None]:
    """Make the test process a child subreaper, as the worker is, and undo it afterwards."""
    was = is_subreaper()
    assert enable_subreaper() or not sys.platform.startswith("linux")
    yield
    if not was:
        enable_subreaper(False)


@pytest.fixture(autouse=True)
def no_leftovers() -> Iterator[None]:
    """Fail a test that leaves a process (or zombie) of its own behind."""
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    yield
    reap_orphans()
    left = [p for p in me.children(recursive=True) if p.pid not in before]
    for proc in left:  # clean up before failing, so one leak does not cascade
        proc.kill()
    reap_orphans()
    assert not left, f"processes left behind: {left}"


@pytest.fixture
def sink() -> Collector:
    return Collector()


@pytest.fixture
async def task(sink: Collector) -> AsyncIterator[TaskProcesses]:
    """A TaskProcesses of task 'T1' writing into `sink`, with a short grace period."""
    procs = TaskProcesses(("TASK_ID", "T1"), sink, grace_period=0.3)
    yield procs
    await procs.kill_all()
