"""Declaring API endpoints and dispatching requests to them, the way taskcluster-lib-api does.

Each service declares `Endpoint`s (name, method, route, scope template, input validator,
handler). Routing works on the *raw* (percent-encoded) path, so `%2F` inside an artifact name
or taskQueueId never splits a segment; a route parameter written `<*name>` may also span plain
`/`s. Scopes: when a template needs only route parameters it is checked before the handler
runs; otherwise the handler must call `call.authorize(...)` itself, and a handler that forgets
to is an internal error (so no route can skip its scope check). Authentication is lazy, as
upstream: a route without scopes never looks at credentials.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import slugid
from aiohttp import web

from tclocal.core import scopes as scopelib
from tclocal.core.errors import APIError, error_body
from tclocal.core.hawk import Authenticator, AuthFailed, Identity
from tclocal.core.validation import Validator, ecma_regex, rewrite_outside_classes

log = logging.getLogger(__name__)

Reply: TypeAlias = "dict[str, Any] | list[Any] | web.StreamResponse | None"
Handler: TypeAlias = "Callable[[Call], Awaitable[Reply]]"
MAX_BODY = 10 * 1024 * 1024

# Upstream's URL parameter patterns (a mismatch is 400 InvalidRequestArguments).
PARAM_PATTERNS: dict[str, re.Pattern[str]] = {
    "taskId": re.compile(r"^[A-Za-z0-9_-]{8}[Q-T][A-Za-z0-9_-][CGKOSWaeimquy26-][A-Za-z0-9_-]{10}[AQgw]$"),
    "taskGroupId": re.compile(
        r"^[A-Za-z0-9_-]{8}[Q-T][A-Za-z0-9_-][CGKOSWaeimquy26-][A-Za-z0-9_-]{10}[AQgw]$"
    ),
    "runId": re.compile(r"^[1-9]*[0-9]+$"),
    "name": re.compile(r"^[\x20-\x7e]+$"),
    "taskQueueId": re.compile(r"^[a-zA-Z0-9-_]{1,38}/[a-z]([-a-z0-9]{0,36}[a-z0-9])?$"),
}


def json_reply(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    """A compact JSON response."""
    return web.Response(
        body=json.dumps(data, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
        headers=headers,
    )


@dataclass(frozen=True)
class Endpoint:
    """One API method: what upstream's `builder.declare` holds."""

    name: str
    method: str
    route: str
    handler: Handler
    scopes: scopelib.Template | None = None
    input: Validator | None = None
    query: tuple[str, ...] = ()
    # Upstream's `cleanPayload`: what an error echoes of the request body (a copy is passed).
    clean_payload: Callable[[Any], Any] | None = None
    pattern: re.Pattern[str] = field(init=False, repr=False)
    route_params: tuple[str, ...] = field(init=False, repr=False)
    optional_params: frozenset[str] = field(init=False, repr=False)
    auto_authorize: bool = field(init=False, repr=False)

    def __post_init__(self) -> None:
        params: list[str] = []
        optional: set[str] = set()
        regex = ""
        # Like express (non-strict routing), a trailing slash is optional.
        # `/<?name>` at the end is optional, as express's `{/:name}` (it is then "").
        for i, part in enumerate(re.split(r"<([*?]?[a-zA-Z]+)>", self.route.rstrip("/"))):
            if i % 2 == 0:
                regex += re.escape(part)
                continue
            name = part.lstrip("*?")
            params.append(name)
            if part.startswith("?"):
                optional.add(name)
                regex = regex.removesuffix("/") + f"(?:/(?P<{name}>[^/]+))?"
                continue
            regex += f"(?P<{name}>{'.+' if part.startswith('*') else '[^/]+'})"
        object.__setattr__(self, "pattern", re.compile(f"^{regex}/?\\Z"))
        object.__setattr__(self, "route_params", tuple(params))
        object.__setattr__(self, "optional_params", frozenset(optional))
        needs = scopelib.template_params(self.scopes) if self.scopes is not None else set()
        object.__setattr__(self, "auto_authorize", needs <= set(params))


@dataclass
class Call:
    """One request to an endpoint, as its handler sees it."""

    request: web.Request
    endpoint: Endpoint
    params: dict[str, str]
    body: Any
    authenticator: Authenticator
    url: str
    raw_body: bytes = b""
    authorized: bool = False
    _identity: Identity | None = None

    @property
    def query(self) -> Mapping[str, str]:
        """The decoded query string."""
        return self.request.query

    def identity(self) -> Identity:
        """Authenticate the caller (once); raise 401 AuthenticationFailed on bad credentials."""
        if self._identity is None:
            self._identity = _authenticate(self)
        return self._identity

    def authorize(self, **params: Any) -> None:
        """Render the endpoint's scope template with `params` and require the caller to satisfy it."""
        self.authorized = True
        if self.endpoint.scopes is None:
            return
        try:
            expression = scopelib.render(self.endpoint.scopes, params)
        except KeyError as err:
            raise RuntimeError(f"{self.endpoint.name}: missing scope parameter {err}") from err
        if expression is None:
            return
        identity = self.identity()
        if scopelib.satisfies(identity.scopes, expression):
            return
        if identity.client_id is None:  # upstream's text for a caller without credentials
            raise APIError(
                "InsufficientScopes",
                "This request requires Taskcluster credentials that satisfy the following scope "
                "expression:\n\n```\n{{required}}\n```",
                required=expression,
            )
        raise APIError(
            "InsufficientScopes",
            f"Client ID {identity.client_id} does not have sufficient scopes and is missing the "
            "following scopes:\n\n```\n{{unsatisfied}}\n```\n\nThis request requires the client to "
            "satisfy the following scope expression:\n\n```\n{{required}}\n```",
            required=expression,
            unsatisfied=scopelib.unsatisfied(identity.scopes, expression),
        )


def _authenticate(call: Call) -> Identity:
    request = call.request
    header = request.headers.get("Authorization")
    has_bewit = re.search(r"[?&]bewit=", request.raw_path) is not None
    try:
        if header and has_bewit:
            raise AuthFailed("Cannot use two authentication schemes at once")
        if header:
            return call.authenticator.from_header(
                authorization=header,
                method=request.method,
                url=call.url,
                content=call.raw_body,
                content_type=request.headers.get("Content-Type", ""),
            )
        if has_bewit:
            if request.method not in ("GET", "HEAD"):
                raise AuthFailed("bewits are only accepted on GET requests")
            return call.authenticator.from_bewit(url=call.url)
    except AuthFailed as err:
        raise APIError("AuthenticationFailed", str(err)) from err
    return call.authenticator.anonymous()


class Service:
    """The endpoints of one service (`/api/<name>/v1/...`) and how to dispatch to them."""

    def __init__(
        self,
        name: str,
        endpoints: list[Endpoint],
        authenticator: Authenticator,
        params: Mapping[str, re.Pattern[str]] | None = None,
    ) -> None:
        self.name = name
        self.endpoints = endpoints
        self.authenticator = authenticator
        self.prefix = f"/api/{name}/v1"
        # This service's own URL parameter patterns (upstream's per-service `params`).
        self.params = {**PARAM_PATTERNS, **(params or {})}

    def match(self, method: str, raw_path: str) -> tuple[Endpoint, dict[str, str]] | None:
        """Find the endpoint for a method and raw path (below the service prefix)."""
        for endpoint in self.endpoints:
            if endpoint.method != method:
                continue
            found = endpoint.pattern.match(raw_path)
            if found:
                params = found.groupdict()
                return endpoint, {k: urllib.parse.unquote(v) if v else "" for k, v in params.items()}
        return None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Handle (as the aiohttp handler) every request below this service's prefix."""
        raw = request.raw_path.split("?", 1)[0][len(self.prefix) :]
        found = self.match(request.method, raw)
        if found is None:
            err = APIError("ResourceNotFound", f"No such endpoint: {request.method} {raw}")
            return json_reply(error_body(err, "unknown", {}, None), err.status)
        endpoint, params = found
        body: Any = None
        try:
            raw_body = await request.read() if request.can_read_body else b""
            if len(raw_body) > MAX_BODY:
                raise APIError("InputTooLarge", "Request body is too large")
            call = Call(request, endpoint, params, None, self.authenticator, _full_url(request), raw_body)
            # Upstream's middleware order: parse the body, authenticate and (when the URL alone
            # parameterises the scopes) authorize, check URL parameters, validate the body.
            body = _parse_body(endpoint, raw_body)
            call.body = body
            if endpoint.auto_authorize:
                call.authorize(**params)
            _check_params(params, self.params, endpoint.optional_params)
            _check_query(request, endpoint.query)
            if endpoint.input is not None:
                endpoint.input.check(body)
            reply = await endpoint.handler(call)
            if endpoint.scopes is not None and not call.authorized:
                raise RuntimeError(f"{endpoint.name} returned without checking scopes")
        except APIError as err:
            headers = {"WWW-Authenticate": "hawk"} if err.status == 401 else None
            return json_reply(
                error_body(err, endpoint.name, params, _echo(endpoint, body)), err.status, headers
            )
        except Exception:
            incident = slugid.nice()
            log.exception("internal error in %s (incident %s)", endpoint.name, incident)
            internal = APIError("InternalServerError", f"Internal Server Error, incidentId {incident}.")
            echo = _echo(endpoint, body)
            return json_reply(error_body(internal, endpoint.name, params, echo), internal.status)
        if reply is None:
            return web.Response(status=204)
        if isinstance(reply, web.StreamResponse):
            return reply
        return json_reply(reply)


def _full_url(request: web.Request) -> str:
    """The absolute URL the client signed: scheme, Host header and raw path with query."""
    return f"{request.scheme}://{request.host}{request.raw_path}"


def _parse_body(endpoint: Endpoint, raw: bytes) -> Any:
    if endpoint.input is None:
        return None
    try:
        body = json.loads(raw) if raw.strip() else {}
    except ValueError as err:
        raise APIError("MalformedPayload", f"Failed to parse JSON: {err}") from err
    return body


def _echo(endpoint: Endpoint, body: Any) -> Any:
    """The request body as an error shows it: cleaned by the endpoint's `clean_payload`."""
    if endpoint.clean_payload is None or body is None:
        return body
    return endpoint.clean_payload(copy.deepcopy(body))


def _check_params(
    params: dict[str, str], patterns: Mapping[str, re.Pattern[str]], optional: frozenset[str]
) -> None:
    """Every URL parameter must match its pattern; all mismatches are reported, in upstream's words."""
    errors: list[str] = []
    for name, value in params.items():
        if not value and name in optional:
            continue
        pattern = patterns.get(name)
        if pattern is not None and not ecma_regex(pattern.pattern).search(value):
            # As taskcluster-lib-api's parameterValidator, the pattern shown as JavaScript prints it.
            errors.append(
                f"URL parameter '{name}' given as '{value}' must match regular expression: "
                f"'/{js_source(pattern.pattern)}/'"
            )
        elif not value:
            raise APIError("InvalidRequestArguments", f"Empty URL parameter {name}")
    if errors:
        raise APIError(
            "InvalidRequestArguments", "Invalid URL patterns:\n" + "\n".join(errors), errors=errors
        )


def _check_query(request: web.Request, declared: tuple[str, ...]) -> None:
    """Only the endpoint's query arguments (and a bewit), once each, as lib-api's queryValidator.

    `limit` must be digits wherever it is taken (upstream's paginateResults pattern).
    """
    errors: list[str] = []
    for key in dict.fromkeys(request.query.keys()):
        values = request.query.getall(key)
        if key not in declared:
            if key != "bewit":
                errors.append(f"Query-string parameter: {key} is not supported!")
        elif len(values) > 1:
            errors.append(f"Query-string parameter: {key} must be a string!")
        elif key == "limit" and not re.fullmatch("[0-9]+", values[0]):
            errors.append(
                f'Query-string parameter: limit="{values[0]}" does not match expression: /^[0-9]+$/'
            )
    if errors:
        raise APIError("InvalidRequestArguments", "\n".join(errors), errors=errors)


def js_source(pattern: str) -> str:
    """A pattern as JavaScript's `RegExp.prototype.source` spells it: `/` escaped outside classes."""
    return rewrite_outside_classes(pattern, {"/": "\\/"})


def page_args(call: Call, default_limit: int = 1000) -> tuple[str, int]:
    """The `continuationToken` and `limit` query arguments (limit capped at 1000)."""
    token = call.query.get("continuationToken", "")
    text = call.query.get("limit", "")
    if not text:
        return token, default_limit
    if not re.fullmatch("[0-9]+", text):  # upstream's query pattern for `limit`, in its words
        raise APIError(
            "InvalidRequestArguments",
            f'Query-string parameter: limit="{text}" does not match expression: /^[0-9]+$/',
        )
    if int(text) < 1:
        raise APIError("InvalidRequestArguments", "`limit` must be a positive integer")
    return token, min(int(text), 1000)


def offset_page(call: Call) -> tuple[int, int]:
    """Offset and limit of an offset-paged list (upstream's paginateResults without index columns).

    The continuationToken is the offset of the next page; one that is not is 400 InputError.
    """
    token, limit = page_args(call)
    if token and not token.isdigit():
        raise APIError("InputError", "Invalid continuation token", token=token)
    return int(token or 0), limit


_STARTED = time.monotonic()


async def _ping(call: Call) -> Reply:
    return {"alive": True, "uptime": time.monotonic() - _STARTED}


async def _empty(call: Call) -> Reply:
    return {}


async def _version(call: Call) -> Reply:
    return {
        "source": "https://github.com/taskcluster/taskcluster",
        "version": "tc-local",
        "commit": "",
        "build": "",
    }


def health_endpoints() -> list[Endpoint]:
    """ping, lbheartbeat, version and heartbeat, which every service has (no scopes)."""
    return [
        Endpoint("ping", "GET", "/ping", _ping),
        Endpoint("lbheartbeat", "GET", "/__lbheartbeat__", _empty),
        Endpoint("version", "GET", "/__version__", _version),
        Endpoint("heartbeat", "GET", "/__heartbeat__", _empty),
    ]
