"""Errors to HTTP, in one place.

Every error the API returns has the same body, ``{"error": {"status", "message", "field"}}``, where ``field`` names
what was wrong (``body.jobs.3.gpus``) when one thing was. Bad input is a 4xx that says what and where; a 500 is
always a bug. A browser asking for a page (``Accept: text/html``, outside ``/api/``) gets the same message on an
HTML page instead, from ``app.state.error_page`` when the dashboard has installed one.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
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


def _wants_html(request: Request) -> bool:
    path = request.url.path
    return (
        not path.startswith("/api/")
        and path != "/openapi.json"
        and "text/html" in request.headers.get("accept", "")
        and getattr(request.app.state, "error_page", None) is not None
    )


def _reply(
    request: Request, status: int, message: str, field: str | None = None, headers: dict[str, str] | None = None
) -> Response:
    if _wants_html(request):
        page: Response = request.app.state.error_page(request, status, message, headers or {})
        return page
    return JSONResponse(_body(status, message, field), status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api(request: Request, exc: ApiError) -> Response:
        headers = {"WWW-Authenticate": "Bearer", **exc.headers} if exc.status == 401 else exc.headers
        return _reply(request, exc.status, exc.message, exc.field, headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        hook = getattr(request.app.state, "on_invalid", None)
        if hook is not None:
            hook(request, exc.body)
        errors = exc.errors()
        json_sent = "json" in request.headers.get("content-type", "")
        parts, fields = [], []
        for e in errors[:5]:
            loc = tuple(e.get("loc", ()))
            msg = str(e.get("msg", "invalid")).removeprefix("Value error, ")
            if e.get("type") == "json_invalid":
                # pydantic puts the character offset where a field would go: it is a position, not a field.
                at = f" at character {loc[1]}" if len(loc) > 1 and isinstance(loc[1], int) else ""
                loc, msg = ("body",), f"the body is not valid JSON{at} ({e.get('ctx', {}).get('error', msg)})"
            elif loc == ("body",) and not json_sent:
                msg = "the body must be a JSON object, sent with the header Content-Type: application/json"
            where = _where(loc)
            fields.append(where)
            parts.append(f"{where}: {msg}" if where else msg)
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        return _reply(request, 422, "; ".join(parts) + more, fields[0] if fields else None)

    @app.exception_handler(UnknownNameError)
    async def _unknown(request: Request, exc: UnknownNameError) -> Response:
        return _reply(request, 404, str(exc), exc.kind)

    @app.exception_handler(UserError)
    async def _user(request: Request, exc: UserError) -> Response:
        return _reply(request, 400, str(exc))

    @app.exception_handler(OperationalError)
    async def _store(request: Request, exc: OperationalError) -> Response:
        # The database is down, locked for too long or out of space: the request did not take effect.
        log.error("store unavailable: %s", exc)
        message = f"the store is unavailable ({type(exc.orig).__name__}); nothing was changed, try again"
        return _reply(request, 503, message, None, {"Retry-After": "5"})

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        message = str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"There is no page at {request.url.path[:200]}."
        return _reply(request, exc.status_code, message, None, dict(exc.headers or {}))
