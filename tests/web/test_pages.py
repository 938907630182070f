"""Every web view page over plain HTTP: status codes, escaping of hostile names and log lines, headers."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tclocal.web.ansi import AnsiRenderer

from .conftest import HOSTILE, Finished

RAW = "<script>alert("


def get(url: str, accept: str = "text/html") -> tuple[int, dict[str, str], str]:
    request = urllib.request.Request(url, headers={"Accept": accept})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def pages(f: Finished) -> dict[str, str]:
    wt = f.gw.worker_type
    return {
        "index": "/",
        "filtered": f"/?state=completed&workerType={wt}",
        "group": f"/tasks/groups/{f.group}",
        "task": f"/tasks/{f.hostile}",
        "dependent": f"/tasks/{f.dependent}",
        "live log (a link to the stored log)": f"/tasks/{f.hostile}/runs/0/logs/public/logs/live.log",
        "stored log": f"/tasks/{f.hostile}/runs/0/logs/public/logs/live_backing.log",
        "encoded name": f"/tasks/{f.hostile}/runs/0/logs/public%2Flogs%2Flive_backing.log",
    }


@pytest.mark.parametrize(
    "page",
    [
        "index",
        "filtered",
        "group",
        "task",
        "dependent",
        "live log (a link to the stored log)",
        "stored log",
        "encoded name",
    ],
)
def test_every_page_answers_200_and_never_lets_a_script_through(tc, finished, page):
    status, headers, body = get(tc.root_url + pages(finished)[page])
    assert status == 200, body[:500]
    assert headers["Content-Type"].startswith("text/html")
    assert "script-src" not in headers["Content-Security-Policy"]  # default-src 'self': no inline script
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert RAW not in body
    if page not in ("dependent",):
        assert "&lt;script&gt;alert(" in body


def test_task_list_filters_by_state_and_worker_type(tc, finished):
    wt = finished.gw.worker_type
    _, _, completed = get(f"{tc.root_url}/?state=completed&workerType={wt}")
    assert finished.hostile in completed and finished.dependent in completed
    _, _, failed = get(f"{tc.root_url}/?state=failed&workerType={wt}")
    assert finished.hostile not in failed
    _, _, other = get(f"{tc.root_url}/?workerType=no-such-type")
    assert finished.hostile not in other
    _, _, index = get(tc.root_url + "/")
    assert index.index(finished.dependent) < index.index(finished.hostile)  # newest first


def test_task_page_links_dependencies_artifacts_and_logs(tc, finished):
    _, _, dependent = get(f"{tc.root_url}/tasks/{finished.dependent}")
    assert f'href="/tasks/{finished.hostile}"' in dependent
    _, _, task = get(f"{tc.root_url}/tasks/{finished.hostile}")
    assert f'download href="/api/queue/v1/task/{finished.hostile}/runs/0/artifacts/public/out.txt"' in task
    assert f'href="/tasks/{finished.hostile}/runs/0/logs/public/logs/live.log"' in task
    assert "completed" in task and "Definition" in task


def test_log_view_renders_colours_line_anchors_and_a_raw_link(tc, finished):
    _, _, body = get(f"{tc.root_url}/tasks/{finished.hostile}/runs/0/logs/public/logs/live.log")
    assert '<span class="ansi-fg1">red text</span> plain' in body
    assert '<a class="ln" href="#L1">1</a>' in body and 'id="L1"' in body
    assert (
        f'href="/api/queue/v1/task/{finished.hostile}/runs/0/artifacts/public/logs/live.log">raw</a>' in body
    )
    assert "data-follow" not in body  # resolved: nothing to follow


@pytest.mark.parametrize(
    "path",
    [
        "/tasks/fGpaB2uNQ2iVXK2cBhCz5g",
        "/tasks/groups/fGpaB2uNQ2iVXK2cBhCz5g",
        "/tasks/{hostile}/runs/7/logs/public/logs/live.log",
        "/tasks/{hostile}/runs/x/logs/public/logs/live.log",
        "/tasks/{hostile}/runs/0/logs/public/no-such.log",
        "/web/follow/{hostile}/0/public/logs/live.log",
        "/web/static/no-such.css",
    ],
)
def test_unknown_things_are_404(tc, finished, path):
    status, _, body = get(tc.root_url + path.format(hostile=finished.hostile))
    assert status == 404
    assert RAW not in body


def test_static_assets_ship_in_the_package_and_root_stays_json_for_clients(tc):
    for asset in ("style.css", "follow.js"):
        status, _, body = get(f"{tc.root_url}/web/static/{asset}")
        assert status == 200 and len(body) > 100
    status, _, body = get(tc.root_url + "/", accept="application/json")
    assert status == 200 and json.loads(body)["tc-local"] is True


def test_ansi_renderer_escapes_text_and_carries_styles_across_lines():
    r = AnsiRenderer()
    assert r.line(f"\x1b[1;32mok\x1b[0m {HOSTILE}") == (
        '<span class="ansi-b ansi-fg2">ok</span> &lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;'
    )
    assert r.line("\x1b[91mstill") == '<span class="ansi-fg9">still</span>'
    assert r.line("red\x1b[39m") == '<span class="ansi-fg9">red</span>'
    assert r.line("\x1b[38;5;200mx\x1b[2K\x1b[48;2;1;2;3my") == "xy"
