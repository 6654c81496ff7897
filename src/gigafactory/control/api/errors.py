"""Errors to HTTP, in one place.

Every error the API returns has the same body, ``{"error": {"status", "message", "field"}}``, where ``field`` names
what was wrong (``body.jobs.3.gpus``) when one thing was. Bad input is a 4xx that says what and where; a 500 is
always a bug.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from gigafactory.core.errors import UnknownNameError, UserError

__all__ = ["ApiError", "install"]

log = logging.getLogger("gigafactory.api")


class ApiError(Exception):
    def __init__(
        self, status: int, message: str, field: str | None = None, *, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.headers = headers or {}


def _body(status: int, message: str, field: str | None = None) -> dict[str, object]:
    return {"error": {"status": status, "message": message, "field": field}}


def _where(loc: tuple[object, ...] | list[object]) -> str:
    return ".".join(str(p) for p in loc)


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer", **exc.headers} if exc.status == 401 else exc.headers
        return JSONResponse(_body(exc.status, exc.message, exc.field), status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        hook = getattr(request.app.state, "on_invalid", None)
        if hook is not None:
            hook(request, exc.body)
        errors = exc.errors()
        parts = []
        for e in errors[:5]:
            where = _where(e.get("loc", ()))
            msg = str(e.get("msg", "invalid")).removeprefix("Value error, ")
            if e.get("type") == "json_invalid":
                msg = f"the body is not valid JSON ({e.get('ctx', {}).get('error', msg)})"
            parts.append(f"{where}: {msg}" if where else msg)
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        field = _where(errors[0].get("loc", ())) if errors else None
        return JSONResponse(_body(422, "; ".join(parts) + more, field), status_code=422)

    @app.exception_handler(UnknownNameError)
    async def _unknown(_: Request, exc: UnknownNameError) -> JSONResponse:
        return JSONResponse(_body(404, str(exc), exc.kind), status_code=404)

    @app.exception_handler(UserError)
    async def _user(_: Request, exc: UserError) -> JSONResponse:
        return JSONResponse(_body(400, str(exc)), status_code=400)

    @app.exception_handler(OperationalError)
    async def _store(_: Request, exc: OperationalError) -> JSONResponse:
        # The database is down, locked for too long or out of space: the request did not take effect.
        log.error("store unavailable: %s", exc)
        message = f"the store is unavailable ({type(exc.orig).__name__}); nothing was changed, try again"
        return JSONResponse(_body(503, message), status_code=503, headers={"Retry-After": "5"})

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(_body(exc.status_code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers)
