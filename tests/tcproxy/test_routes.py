"""Where the proxy forwards: upstream's path rules, encoded paths kept as sent."""

import pytest

from generic_worker.config import Config, config_from_mapping
from generic_worker.tcproxy.routes import UnknownEndpoint, target_url


def config(**overrides: object) -> Config:
    base = {
        "rootURL": "https://tc.example.com/",
        "accessToken": "a",
        "clientId": "c",
        "workerId": "w",
        "workerType": "t",
    }
    loaded, _ = config_from_mapping({**base, "publicIP": "127.0.0.1", "subdomain": "", **overrides})
    return loaded


@pytest.mark.parametrize(
    ("path", "query", "expected"),
    [
        ("/api/queue/v1/task/abc", "", "https://tc.example.com/api/queue/v1/task/abc"),
        ("/queue/v1/task/abc", "", "https://tc.example.com/api/queue/v1/task/abc"),
        (
            "/api/queue/v1/task/abc/artifacts/public%2Flogs%2Flive.log",
            "",
            "https://tc.example.com/api/queue/v1/task/abc/artifacts/public%2Flogs%2Flive.log",
        ),
        (
            "/queue/v1/task/abc/runs/0/artifacts",
            "limit=5&continuationToken=a%20b",
            "https://tc.example.com/api/queue/v1/task/abc/runs/0/artifacts?limit=5&continuationToken=a%20b",
        ),
        ("/api/index/v2/task/x", "", "https://tc.example.com/api/index/v2/task/x"),
        ("/api/queue/v1/", "", "https://tc.example.com/api/queue/v1/"),
        ("/api/queue/v1//double", "", "https://tc.example.com/api/queue/v1//double"),
        ("/hawk.example.org/v1/thing", "a=1", "https://hawk.example.org/v1/thing?a=1"),
    ],
)
def test_targets(path: str, query: str, expected: str):
    assert target_url(config(), path, query) == expected


def test_legacy_per_service_base_urls_win_for_v1():
    legacy = config(queueBaseURL="http://queue.local:8080/v1")
    assert target_url(legacy, "/queue/v1/ping", "") == "http://queue.local:8080/v1/ping"
    assert target_url(legacy, "/api/auth/v1/ping", "") == "https://tc.example.com/api/auth/v1/ping"


@pytest.mark.parametrize("path", ["/", "/api", "/api/queue", "/api/queue/v1", "/bad_service!/v1/x", "/queue"])
def test_unknown_endpoints(path: str):
    with pytest.raises(UnknownEndpoint):
        target_url(config(), path, "")
