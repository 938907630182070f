"""The worker log's formats (text, JSON lines), task context and secret masking."""

import asyncio
import io
import json
import logging

import pytest

from generic_worker import worker_log
from generic_worker.worker_log import JSON, TEXT, bind_task, make_handler


@pytest.fixture
def capture():
    def make(fmt: str) -> tuple[logging.Logger, io.StringIO]:
        stream = io.StringIO()
        handler = make_handler(fmt)
        handler.setStream(stream)  # type: ignore[attr-defined]
        logger = logging.getLogger(f"test.worker_log.{fmt}")
        logger.handlers[:] = [handler]
        logger.propagate = False
        logger.setLevel(logging.DEBUG)
        return logger, stream

    yield make
    worker_log._SECRETS.clear()


@pytest.mark.parametrize("fmt", [TEXT, JSON])
def test_secrets_are_masked_in_messages_arguments_and_tracebacks(capture, fmt):
    worker_log.add_secret("hunter2-s3cret")
    logger, stream = capture(fmt)
    logger.info("token is %s", "hunter2-s3cret")
    try:
        raise RuntimeError("failed with hunter2-s3cret")
    except RuntimeError:
        logger.exception("boom hunter2-s3cret")
    out = stream.getvalue()
    assert "hunter2-s3cret" not in out
    assert out.count(worker_log.MASK) >= 3


def test_json_lines_carry_time_level_task_and_fields(capture):
    logger, stream = capture(JSON)
    logger.warning("outside any task", extra={"bytes": 12})

    async def in_task() -> None:
        bind_task("fV9AMf9aRuK3Hy0M9ozG1A", 2)
        logger.info("inside")
        await asyncio.create_task(asyncio.to_thread(logger.info, "in a thread the task started"))

    asyncio.run(in_task())
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["message"] for line in lines] == [
        "outside any task",
        "inside",
        "in a thread the task started",
    ]
    first, second, third = lines
    assert first["level"] == "warning" and first["fields"] == {"bytes": 12} and "taskId" not in first
    assert first["time"].endswith("Z") and first["logger"] == "test.worker_log.json"
    assert (second["taskId"], second["runId"]) == ("fV9AMf9aRuK3Hy0M9ozG1A", 2)
    assert third["taskId"] == "fV9AMf9aRuK3Hy0M9ozG1A"


def test_text_format_keeps_the_seeds_shape(capture):
    logger, stream = capture(TEXT)
    logger.info("hello")
    line = stream.getvalue()
    assert line.endswith(" hello\n") and line[4] == "/" and line[10] == " "
