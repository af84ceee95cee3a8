"""RFC 9457 problem details: one table maps each ledger error to its HTTP status."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ledger import errors
from ledger.config import ConfigurationError
from projections.service import ProjectionLag

PROBLEM_JSON = "application/problem+json"

STATUS_BY_ERROR: dict[type[errors.LedgerError], int] = {
    errors.InsufficientStock: 409,
    errors.BackdatedMovement: 409,
    errors.IdempotencyConflict: 409,
    errors.ImmutableField: 409,
    errors.ConcurrentModification: 409,
    errors.InvalidTransition: 409,
    errors.OrderLimitExceeded: 409,
    errors.CreditLimitExceeded: 409,
    errors.PossibleDuplicate: 409,
    errors.MissingPrice: 409,
    errors.PeriodClosed: 409,
    errors.LedgerClosed: 503,
    errors.UnknownOrder: 404,
    errors.UnknownItem: 422,
    errors.UnknownLocation: 422,
    errors.UnknownParty: 422,
    errors.InvalidInput: 422,
}


DESCRIPTIONS = {
    401: "No API key, or an unknown one",
    403: "The key's role may not do this",
    404: "No such resource",
    409: "Refused: insufficient_stock, idempotency_conflict, immutable_field",
    413: "The request body is too large",
    415: "The request body is not JSON",
    422: "Invalid input: validation_error, unknown_item, unknown_location",
    503: "projection_lag: the read models did not reach min_position in time",
}
PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["type", "title", "status", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string"},
    },
}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the problem+json answers a route may give."""
    return {
        status: {"description": DESCRIPTIONS[status],
                 "content": {PROBLEM_JSON: {"schema": PROBLEM_SCHEMA}}}
        for status in statuses
    }


class ApiProblem(Exception):
    """An error the API itself raises (auth, not found, body too large)."""

    def __init__(self, status: int, code: str, detail: str, **facts: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.facts = facts


def not_found(error: errors.LedgerError) -> ApiProblem:
    """A ledger refusal about a missing resource, as the 404 of a GET."""
    return ApiProblem(404, error.code, error.detail, **error.facts())


def problem(status: int, code: str, detail: str, /, **facts: Any) -> JSONResponse:
    """An RFC 9457 response; facts add members but never replace the standard ones."""
    body = {
        **facts,
        "type": f"/problems/{code}",
        "title": code.replace("_", " ").capitalize(),
        "status": status,
        "detail": detail,
        "code": code,
    }
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def ledger_problem(error: errors.LedgerError) -> JSONResponse:
    """A ledger refusal as problem+json: its status from the table, its code and facts."""
    return problem(status_of(error), error.code, error.detail, **error.facts())


def lag_problem(error: ProjectionLag) -> JSONResponse:
    """The read models did not reach a query's `min_position` in time."""
    return problem(503, error.code, str(error), min_position=error.position,
                   waited_seconds=error.timeout)


def status_of(error: errors.LedgerError) -> int:
    for kind in type(error).__mro__:
        if kind in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[kind]
    return 400


def _validation_errors(error: RequestValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": list(item.get("loc", ())), "message": item.get("msg", ""),
         "type": item.get("type", "")}
        for item in error.errors()
    ]


def install(app: FastAPI) -> None:
    """Register the handlers that turn every refusal into problem+json."""

    @app.exception_handler(errors.LedgerError)
    async def ledger_error(_: Request, error: errors.LedgerError) -> JSONResponse:
        return ledger_problem(error)

    @app.exception_handler(ApiProblem)
    async def api_problem(_: Request, error: ApiProblem) -> JSONResponse:
        return problem(error.status, error.code, error.detail, **error.facts)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, error: RequestValidationError) -> JSONResponse:
        return problem(422, "validation_error", "The request is not valid.",
                       errors=_validation_errors(error))

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, error: HTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
        return problem(error.status_code, code, str(error.detail))

    @app.exception_handler(ProjectionLag)
    async def projection_lag(_: Request, error: ProjectionLag) -> JSONResponse:
        return lag_problem(error)

    @app.exception_handler(ConfigurationError)
    async def configuration_error(_: Request, error: ConfigurationError) -> JSONResponse:
        return problem(500, "configuration_error", str(error))
