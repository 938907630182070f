import pytest

from generic_worker.engine.scopes import (
    ScopeChecker,
    missing_scopes_message,
    render_requirement,
    satisfied,
    scope_matches,
)
from generic_worker.errors import ExceptionReason
from generic_worker.tc import TC_ERRORS


def test_scope_matching():
    assert scope_matches("a:b", "a:b")
    assert scope_matches("a:*", "a:b:c")
    assert scope_matches("*", "anything")
    assert not scope_matches("a:b", "a:bc")
    assert not scope_matches("a:b*x", "a:bcx")


def test_requirement_alternatives():
    assert satisfied([], [])
    assert satisfied(["x"], [["x"]])
    assert not satisfied(["x"], [["x", "y"]])
    assert satisfied(["y"], [["x"], ["y"]])
    assert satisfied(["generic-worker:cache:*"], [["generic-worker:cache:a", "generic-worker:cache:b"]])


def test_rendering_is_the_seeds():
    assert render_requirement([["a", "b"]]) == "a, and\nb"
    assert render_requirement([["a", "b"], ["c"]]) == "(a and b), or\n(c)"
    assert render_requirement([]) == "<no scopes>"
    text = missing_scopes_message("Mounts/Caches", [["a", "b"]], ["x", "y"])
    assert text == (
        'Feature "Mounts/Caches" requires scopes:\n\na, and\nb\n\nbut task only has scopes:\n\n'
        "x and y\n\nYou probably should add some scopes to your task definition"
    )
    assert "<no scopes>\n\nYou probably" in missing_scopes_message("F", [["a"]], [])


async def test_checker_expands_assume_scopes_once():
    calls = []

    async def expand(scopes: list[str]) -> list[str]:
        calls.append(scopes)
        return [*scopes, "granted:*"]

    checker = ScopeChecker(["assume:role"], expand)
    assert await checker.check("F", [["granted:x"]]) is None
    assert await checker.check("F", [["granted:y"]]) is None
    assert len(calls) == 1
    error = await checker.check("F", [["other"]])
    assert error is not None and error.reason == ExceptionReason.MALFORMED_PAYLOAD


async def test_checker_without_assume_does_not_call_auth():
    async def expand(scopes: list[str]) -> list[str]:
        raise AssertionError("must not be called")

    error = await ScopeChecker(["plain"], expand).check("F", [["needed"]])
    assert error is not None and error.reason == ExceptionReason.MALFORMED_PAYLOAD
    assert await ScopeChecker(["plain"], expand).check("F", []) is None


@pytest.mark.parametrize("failure", [e for e in TC_ERRORS if e is not BaseException][:2])
async def test_auth_failure_is_resource_unavailable(failure: type[BaseException]):
    async def expand(scopes: list[str]) -> list[str]:
        raise failure("auth is down")

    error = await ScopeChecker(["assume:x"], expand).check("F", [["y"]])
    assert error is not None and error.reason == ExceptionReason.RESOURCE_UNAVAILABLE


def test_url_secrets_are_redacted_from_messages():
    from generic_worker.tc import redact_url_secrets

    text = "Cannot PUT http://h/blobs/x?expires=1&signature=abc123 and GET 'http://h/a?bewit=Zm9v&x=1'"
    assert redact_url_secrets(text) == "Cannot PUT http://h/blobs/x and GET 'http://h/a'"
    assert redact_url_secrets("query string: bewit=Zm9v") == "query string: bewit=[redacted]"
    aws = "https://s3/o?X-Amz-Credential=AKIA%2F&X-Amz-Signature=deadbeef"
    assert "AKIA" not in redact_url_secrets(aws) and "deadbeef" not in redact_url_secrets(aws)
