"""The busiest requests answered below FastAPI's routing: same checks, same work, same answer.

A handful of routes carry most of a ledger's traffic: the stock documents
(`api.fast_commands`) and the current-stock query (`api.fast_stock`). FastAPI answers each
request through a dozen layers of middleware, routing, dependency solving, parameter
validation and response validation; for these routes that machinery costs more CPU than
the work itself (docs/architecture.md, "The busiest requests are answered below FastAPI's
routing").

`FastPath` hands each such request to its handler, which answers the ordinary request
itself with the code the endpoint uses (the same model, the same query, the same
serialisation) and hands everything else on, untouched, to FastAPI: every malformed or
unusual request, every refusal of the request itself. So every error is worded once, by
the endpoint, and the fast path never answers what the endpoint would answer differently
(tests/api/test_fast_commands.py and test_fast_stock.py send every kind of request to the
app with and without it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import KeyRing, Principal


@dataclass(frozen=True)
class Onward:
    """What a handler hands a request on to, and the limit the app puts on bodies."""

    app: ASGIApp
    body_limit: int


Handler = Callable[[Onward, Scope, Receive, Send], Awaitable[None]]


class FastPath:
    """ASGI middleware: `routes` maps (method, path) to the handler that answers it."""

    def __init__(self, app: ASGIApp, body_limit: int,
                 routes: Mapping[tuple[str, str], Handler]) -> None:
        self.onward = Onward(app, body_limit)
        self.routes = dict(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = (self.routes.get((scope["method"], scope["path"]))
                   if scope["type"] == "http" else None)
        if handler is None:
            await self.onward.app(scope, receive, send)
        else:
            await handler(self.onward, scope, receive, send)


def first_headers(scope: Scope) -> dict[bytes, bytes]:
    """Each header's first value, as Starlette's `Headers.get` reads it."""
    found: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        found.setdefault(name, value)
    return found


def caller(scope: Scope, headers: dict[bytes, bytes]) -> Principal | None:
    """The caller, when it sent a valid key as `Authorization: Bearer` (as
    `api.requests.authenticate` reads it); None for anything else."""
    authorization = headers.get(b"authorization")
    if authorization is None:
        return None
    scheme, _, presented = authorization.decode("latin-1").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        return None
    keys: KeyRing = scope["app"].state.keys
    return keys.authenticate(presented.strip())


def replaying(messages: list[Message], receive: Receive) -> Receive:
    """A `receive` that gives the messages already read again, then the client's."""
    queue = list(messages)

    async def replay() -> Message:
        return queue.pop(0) if queue else await receive()

    return replay


def json_response(content: str | bytes, status: int = 200) -> Response:
    """JSON as FastAPI answers a route with a response model (pydantic's bytes)."""
    return Response(content, status_code=status, media_type="application/json")
