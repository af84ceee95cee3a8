"""The current-stock query on the fast path (api.fast_path): `GET /stock`.

Answered here, the ordinary query: any valid key, and no parameters but `sku`, `location`,
`min_position`, `limit` and `cursor`, each given once and in its plain form (codes of the
route's pattern, decimal digits without leading zeros within the route's bounds, a cursor
this API gave out). It runs the endpoint's own query (`api.routers.stock.current_stock`)
in the thread pool, as the endpoint would run, and answers with the same page or the same
`projection_lag` problem. Everything else (`as_of`, a malformed or repeated parameter, a
missing or unknown key) is handed on to FastAPI.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from api import cursors
from api.fast_path import Onward, caller, first_headers, json_response
from api.problems import ApiProblem, lag_problem
from api.routers.stock import current_stock
from api.schemas import PAGE_LIMIT_MAX
from projections.service import ProjectionLag

CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
NUMBER = re.compile(r"0|[1-9][0-9]{0,18}")
MIN_POSITION_MAX = 2**62
PARAMETERS = frozenset({"sku", "location", "min_position", "limit", "cursor"})


async def get_stock(onward: Onward, scope: Scope, receive: Receive, send: Send) -> None:
    query = _query(scope["query_string"])
    if query is None or caller(scope, first_headers(scope)) is None:
        await onward.app(scope, receive, send)
        return
    app = scope["app"]
    try:
        page = await run_in_threadpool(
            current_stock, app.state.read_models, **query,
            wait=app.state.settings.read_wait_seconds)
    except ProjectionLag as error:
        await lag_problem(error)(scope, receive, send)
        return
    await json_response(page.model_dump_json())(scope, receive, send)


ROUTES = {("GET", "/stock"): get_stock}


def _query(raw: bytes) -> dict[str, Any] | None:
    """The query's arguments for `current_stock`; None unless every one is plain."""
    pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True)
    given = dict(pairs)
    if len(given) != len(pairs) or not given.keys() <= PARAMETERS:
        return None
    codes = [given.get(name) for name in ("sku", "location")]
    if any(code is not None and not CODE.fullmatch(code) for code in codes):
        return None
    min_position = _number(given.get("min_position", "0"), 0, MIN_POSITION_MAX)
    limit = _number(given.get("limit", "50"), 1, PAGE_LIMIT_MAX)
    after = _after(given.get("cursor"))
    if min_position is None or limit is None or after is False:
        return None
    return {"sku": codes[0], "location": codes[1], "min_position": min_position,
            "limit": limit, "after": after}


def _number(text: str, low: int, high: int) -> int | None:
    if not NUMBER.fullmatch(text):
        return None
    value = int(text)
    return value if low <= value <= high else None


def _after(cursor: str | None) -> tuple[str, str] | bool | None:
    """The cursor's key; None without one; False for one FastAPI must refuse."""
    if cursor is None:
        return None
    if len(cursor) > cursors.CURSOR_LENGTH_MAX:
        return False
    try:
        key = cursors.decode(cursor, (str, str))
    except ApiProblem:
        return False
    return None if key is None else (key[0], key[1])
