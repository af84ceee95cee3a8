"""Request bodies: bounded in size, and JSON numbers parsed as Decimal, never float."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import KeyRing, Principal
from api.problems import ApiProblem, problem

# One decoder for every body (json.loads with hooks would build a new one per call).
_DECIMAL_JSON = json.JSONDecoder(parse_float=Decimal, parse_int=Decimal)


def decimal_json(body: bytes) -> Any:
    """A JSON body with its numbers as Decimal, decoded as `json.loads` decodes bytes."""
    return _DECIMAL_JSON.decode(body.decode(json.detect_encoding(body), "surrogatepass"))


class LedgerRequest(Request):
    """A request whose body may not exceed the app's limit and whose numbers are decimals."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                self._json = decimal_json(body)
            except json.JSONDecodeError:
                raise
            except (UnicodeDecodeError, RecursionError, ValueError) as error:
                # FastAPI answers 422 for JSONDecodeError only; these are malformed JSON too.
                raise json.JSONDecodeError(f"unreadable JSON: {type(error).__name__}",
                                           "", 0) from None
        return self._json


class BodyLimit:
    """ASGI middleware: refuse a request body over `limit` bytes with 413, before routing.

    A declared Content-Length over the limit is refused without reading; a streamed body
    is counted as it arrives and refused the moment it passes the limit.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, receive, send)
            return
        received = 0
        too_large = False

        async def counting_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    # End the body here; whatever the app answers to it is replaced below.
                    too_large = True
                    return {"type": "http.request", "body": b"", "more_body": False}
            return message

        async def guarded_send(message: Message) -> None:
            if not too_large:
                await send(message)

        await self.app(scope, counting_receive, guarded_send)
        if too_large:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem(413, "request_too_large",
                           f"The request body exceeds {self.limit} bytes.",
                           limit_bytes=self.limit)
        await response(scope, receive, send)


BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def is_json_media_type(content_type: str) -> bool:
    media_type = _media_type(content_type)
    return media_type == "application/json" or media_type.endswith("+json")


def _check_media_type(content_type: str | None) -> None:
    """Bodies are JSON; a missing Content-Type is read as JSON too."""
    if content_type is None or is_json_media_type(content_type):
        return
    media_type = _media_type(content_type)
    raise ApiProblem(415, "unsupported_media_type",
                     f"Send the body as JSON (Content-Type: application/json), not {media_type}.",
                     content_type=media_type)


def authenticate(request: Request) -> Principal:
    """The caller of a request, from `Authorization: Bearer <key>`; 401 when there is none."""
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise ApiProblem(401, "unauthorized", "Send an API key: Authorization: Bearer <key>.")
    keys: KeyRing = request.app.state.keys
    principal = keys.authenticate(presented.strip())
    if principal is None:
        raise ApiProblem(401, "unauthorized", "The API key is not valid.")
    return principal


class LedgerRoute(APIRoute):
    """Routes that authenticate first and hand their endpoints a `LedgerRequest`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # A body without a Content-Type is read as JSON (curl users forget the header).
        kwargs["strict_content_type"] = False
        super().__init__(*args, **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            # Who is asking is settled before the body is read: an anonymous caller gets 401,
            # not a verdict on its body.
            if self.path != "/health":
                request.state.principal = authenticate(request)
            if request.method in BODY_METHODS:
                _check_media_type(request.headers.get("content-type"))
            return await handler(LedgerRequest(request.scope, request.receive))

        return handle
