"""The one error body (``ErrorPublic``) for every failure, and the exception handlers that produce it."""

from __future__ import annotations

from typing import Any, Final

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from cryptolake.logging import get_logger
from serving.api.lake import SnapshotNotFoundError, TableMissingError
from serving.api.schemas import ErrorPublic, FieldErrorPublic

log = get_logger(__name__)

ERROR_CODES: Final = {
    400: "bad_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed", 406: "not_acceptable",
    422: "validation_error", 503: "service_unavailable",
}  # fmt: skip


class ApiError(Exception):
    """A documented failure: status, and a message saying what to do."""

    def __init__(self, status_code: int, detail: str, errors: list[FieldErrorPublic] | None = None) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail
        self.errors = errors or []


def invalid_parameter(name: str, message: str, location: str = "query", kind: str = "value_error") -> ApiError:
    return ApiError(
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        f"invalid {location} parameter {name!r}: {message}",
        [FieldErrorPublic(location=location, name=name, message=message, type=kind)],
    )


def error_response(status_code: int, detail: str, errors: list[FieldErrorPublic] | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:  # fmt: skip
    body = ErrorPublic(
        status=status_code, error=ERROR_CODES.get(status_code, "error"), detail=detail, errors=errors or []
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=status_code, headers=headers)


def _describe(status_code: int, text: str) -> dict[str, Any]:
    return {"model": ErrorPublic, "description": text}


#: ``responses=`` of the routes: every status an /api route can answer besides 200.
DATA_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    401: _describe(401, "CRYPTOLAKE_API_KEY is set and X-API-Key is missing or wrong"),
    404: _describe(404, "Unknown symbol, coin or snapshot"),
    422: _describe(422, "A parameter is invalid (type, range, an inverted time range, an unknown interval)"),
    503: _describe(503, "The Iceberg catalog is unavailable"),
}


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status_code, exc.detail, exc.errors)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = []
    for item in exc.errors():
        loc = [str(part) for part in item.get("loc", ())]
        location = loc[0] if loc else "request"
        name = ".".join(loc[1:]) or location
        errors.append(FieldErrorPublic(location=location, name=name, message=str(item.get("msg", "")),
                                       type=str(item.get("type", "value_error"))))  # fmt: skip
    detail = "; ".join(f"invalid {e.location} parameter {e.name!r}: {e.message}" for e in errors) or "invalid request"
    return error_response(status.HTTP_422_UNPROCESSABLE_CONTENT, detail, errors)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no route {request.url.path}: see /docs for the routes"
    return error_response(exc.status_code, detail, headers=getattr(exc, "headers", None))


async def _snapshot_missing(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SnapshotNotFoundError)
    return error_response(
        status.HTTP_404_NOT_FOUND,
        f"{exc.identifier} has no snapshot {exc.snapshot_id} (never, or it was expired): pass a snapshot id from "
        "served_from, or a time",
    )


async def _table_missing(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TableMissingError)
    return error_response(
        status.HTTP_404_NOT_FOUND, f"table {exc.identifier} does not exist yet: run the pipeline first"
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(SnapshotNotFoundError, _snapshot_missing)
    app.add_exception_handler(TableMissingError, _table_missing)
