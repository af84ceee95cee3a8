"""Request bodies: bounded in size, and JSON numbers parsed as Decimal, never float."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from api.problems import ApiProblem


class LedgerRequest(Request):
    """A request whose body may not exceed the app's limit and whose numbers are decimals."""

    async def body(self) -> bytes:
        if not hasattr(self, "_body"):
            limit: int = self.app.state.settings.request_body_bytes_max
            declared = self.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > limit:
                raise _too_large(limit)
            chunks, size = [], 0
            async for chunk in self.stream():
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                chunks.append(chunk)
            self._body = b"".join(chunks)
        return self._body

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            self._json = json.loads(body, parse_float=Decimal)
        return self._json


def _too_large(limit: int) -> ApiProblem:
    return ApiProblem(413, "request_too_large", f"The request body exceeds {limit} bytes.",
                      limit_bytes=limit)


BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def _check_media_type(content_type: str | None) -> None:
    """Bodies are JSON; a missing Content-Type is read as JSON too."""
    if content_type is None:
        return
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == "application/json" or media_type.endswith("+json"):
        return
    raise ApiProblem(415, "unsupported_media_type",
                     f"Send the body as JSON (Content-Type: application/json), not {media_type}.",
                     content_type=media_type)


class LedgerRoute(APIRoute):
    """Routes that hand their endpoints a `LedgerRequest`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            if request.method in BODY_METHODS:
                _check_media_type(request.headers.get("content-type"))
            return await handler(LedgerRequest(request.scope, request.receive))

        return handle
