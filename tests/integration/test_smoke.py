from generic_worker.exitcodes import ExitCode

from .harness import GW


async def test_hello_world(gw: GW):
    task_id = await gw.submit(
        {"command": [["echo", "hello world!"], ["echo", "goodbye world!"]], "maxRunTime": 30}
    )
    assert await gw.run() == ExitCode.TASKS_COMPLETE
    assert await gw.resolution(task_id) == "completed/completed"
    log = await gw.log(task_id)
    assert "hello world!\n" in log and "goodbye world!\n" in log
    assert "=== Task Finished ===" in log
