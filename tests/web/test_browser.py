"""The web view in a real browser (Debian's Chromium driven by Playwright): follow a running task's log,
follow a dependency link, download an artifact. A screenshot is saved when a step fails."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tclocal.testing import RunningTCLocal
from tests.integration.harness import GW, run_state, wait_for

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium (`make system-deps` installs it)"
    ),
]


@pytest.fixture
async def page(tmp_path: Path) -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        context = await browser.new_context(accept_downloads=True, viewport={"width": 1000, "height": 700})
        try:
            yield await context.new_page()
        finally:
            await browser.close()


async def test_follow_a_running_log_then_a_dependency_then_download_an_artifact(
    tc: RunningTCLocal, tmp_path: Path, page: Any
):
    from playwright.async_api import expect

    gw = GW(tc, tmp_path / "worker")
    gate = tmp_path / "gate"
    first = await gw.submit(
        {
            "maxRunTime": 30,
            "command": [["/bin/sh", "-c", "echo artifact-body > out.txt"]],
            "artifacts": [{"type": "file", "path": "out.txt", "name": "public/out.txt"}],
        },
        metadata={**gw.task()["metadata"], "name": "builds an artifact"},
    )
    waiting = f"echo before-gate; while [ ! -e {gate} ]; do sleep 0.05; done; echo after-gate"
    second = await gw.submit(
        {"maxRunTime": 60, "command": [["/bin/sh", "-c", waiting]]},
        dependencies=[first],
        metadata={**gw.task()["metadata"], "name": "waits at the gate"},
    )
    worker = asyncio.create_task(gw.run(numberOfTasksToRun=2))
    try:
        await wait_for(lambda: _live_log_published(gw, second))
        await page.goto(tc.root_url + "/")
        await page.keyboard.press("Tab")  # keyboard users land on the skip link first
        assert await page.evaluate("document.activeElement.textContent") == "Skip to content"
        await page.set_viewport_size({"width": 360, "height": 700})  # phone width: nothing overflows the page
        assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        await page.set_viewport_size({"width": 1000, "height": 700})
        await page.get_by_role("link", name="waits at the gate").first.click()
        await expect(page).to_have_url(f"{tc.root_url}/tasks/{second}")
        await page.get_by_role("link", name="view public/logs/live.log", exact=True).click()
        log = page.locator("#log")
        await expect(log).to_contain_text("before-gate", timeout=20_000)
        await page.evaluate("window.__samePage = true")
        gate.touch()
        await expect(log).to_contain_text("after-gate", timeout=20_000)
        assert await page.evaluate("window.__samePage === true")  # new lines came without a reload
        await expect(page.locator("#follow-status")).to_contain_text("complete", timeout=20_000)

        await page.get_by_role("link", name=f"Task {second}").click()
        await page.get_by_role("link", name=first).click()
        await expect(page).to_have_url(f"{tc.root_url}/tasks/{first}")
        async with page.expect_download() as download_info:
            await page.get_by_role("link", name="public/out.txt", exact=True).click()
        download = await download_info.value
        saved = tmp_path / "downloaded.txt"
        await download.save_as(saved)
        assert saved.read_text() == "artifact-body\n"
    except BaseException:
        shot = tmp_path / "failure.png"
        await page.screenshot(path=str(shot), full_page=True)
        print(f"web view test failed; screenshot saved to {shot}")
        raise
    finally:
        gate.touch()
        assert int(await worker) == 0


async def _live_log_published(gw: GW, task_id: str) -> bool:
    if await run_state(gw, task_id) != "running":
        return False
    return (await gw.artifacts(task_id)).get("public/logs/live.log", {}).get("storageType") == "reference"
