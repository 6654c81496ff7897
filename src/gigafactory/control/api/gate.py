"""The API's gate: who is asking, and how much they send, settled before a body is read.

* A request under ``/api/`` that carries a body (POST, PUT, PATCH) must present a valid token (or a browser
  session) before a byte of its body is read. An unauthenticated client gets its 401 at once, however much it
  sends.
* Every body is capped, by path. A body larger than its cap, by ``Content-Length`` or as it streams in, is a 413,
  and is not read further. Only then does the application parse it.

The sign-in form (``/login``) is the one body taken without a token, and its cap is 4 KiB.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.exc import OperationalError
from starlette.concurrency import run_in_threadpool

__all__ = ["BODY_CAPS", "DEFAULT_CAP", "Gate"]

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

DEFAULT_CAP = 1 << 20  # 1 MiB: one job at the largest is about 100 KiB
BODY_CAPS = {"/api/v1/jobs/batch": 8 << 20, "/login": 4096}


class Gate:
    def __init__(
        self,
        app: App,
        who: Callable[[str | None, str | None], object | None],
        known: Callable[[str | None, str | None], tuple[bool, object | None]] | None = None,
        hold: Callable[[object, str], tuple[int, str]] | None = None,
    ) -> None:
        """``who(bearer_token, session_cookie)`` names the caller, or returns None (it may touch the store);
        ``known`` answers the same from a cache, without the store, when it can (sparing a thread per request)."""
        self.app = app
        self.who = who
        self.known = known
        self.hold = hold  # hold(caller, path): (seconds the caller must wait before sending this, why); 0: none

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = _framed(send)
        raw = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope.get("headers", [])]
        names = [k for k, _ in raw]
        if names.count("authorization") > 1:
            await _error(send, 400, "send one Authorization header, not several")
            return
        if sum(_cookie_count(v, "gf_session") for k, v in raw if k == "cookie") > 1:
            await _error(send, 400, "send one gf_session cookie, not several")
            return
        if scope["method"] not in ("POST", "PUT", "PATCH", "DELETE"):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"].rstrip("/") or "/"  # /api/v1/jobs/batch/ is /api/v1/jobs/batch
        headers = dict(raw)
        if "authorization" not in headers:
            # A browser sends the session cookie by itself, also when another site's page posts here (a page on
            # another port of this host counts as the same site to SameSite): a change made by cookie must come
            # from this origin.
            refused = _cross_origin(headers)
            if refused:
                await _error(send, 403, refused)
                return
        if path.startswith("/api/"):
            auth = headers.get("authorization")
            if auth is not None:
                scheme, _, token = auth.partition(" ")
                if scheme.lower() != "bearer" or not token.strip():
                    await _error(send, 401, "the Authorization header must be 'Bearer <token>'")
                    return
            cookie = _cookie(headers.get("cookie", ""), "gf_session")
            bearer = token.strip() if auth is not None else None
            if not bearer and not cookie:
                await _error(send, 401, "no token: send 'Authorization: Bearer <token>'")
                return
            try:
                cached, known = self.known(bearer, cookie) if self.known is not None else (False, None)
                if not cached:
                    known = await run_in_threadpool(self.who, bearer, cookie)
            except OperationalError as exc:
                await _error(send, 503, f"the store is unavailable ({type(exc.orig).__name__}); nothing was changed, "
                             "try again", {"retry-after": "5"})  # fmt: skip
                return
            if known is None:
                await _error(send, 401, "the token is not valid (unknown or revoked)")
                return
            wait, why = self.hold(known, path) if self.hold is not None else (0, "")
            if wait > 0:
                await _error(send, 429, why, {"retry-after": str(wait)})
                return
        cap = BODY_CAPS.get(path, DEFAULT_CAP)
        too_big = f"the body is over {cap:,} bytes, the most {path} takes" + (
            "; send the jobs in several batches" if path.endswith("/batch") else ""
        )
        try:
            declared = int(headers.get("content-length", "0"))
        except ValueError:
            await _error(send, 400, "Content-Length is not a number")
            return
        if declared > cap:
            await _error(send, 413, too_big)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > cap:
                await _error(send, 413, too_big)
                return
            if not message.get("more_body"):
                break
        scope.setdefault("state", {})["body_bytes"] = len(body)  # what an invalid submission is charged by
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _framed(send: Send) -> Send:
    """Every response says it may not be framed by another page (clickjacking) nor sniffed into another type."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), (b"x-frame-options", b"DENY"),
                       (b"content-security-policy", b"frame-ancestors 'none'"),
                       (b"x-content-type-options", b"nosniff")]}  # fmt: skip
        await send(message)

    return wrapped


def _cross_origin(headers: dict[str, str]) -> str:
    """Why a request that would act by cookie is refused as coming from another origin; "" if it is not."""
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return f"refused: this request came from another origin (Sec-Fetch-Site: {fetch_site}); use a bearer token"
    origin = headers.get("origin")
    if origin is not None:
        hosts = {headers.get("host", ""), headers.get("x-forwarded-host", "")} - {""}  # behind a proxy too
        if origin == "null" or origin.split("://", 1)[-1].rstrip("/") not in hosts:
            return f"refused: this request came from another origin ({origin}); use a bearer token"
    return ""


def _cookie_count(header: str, name: str) -> int:
    return sum(1 for part in header.split(";") if part.strip().partition("=")[0] == name)


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name and value:
            return value
    return None


async def _error(send: Send, status: int, message: str, extra: dict[str, str] | None = None) -> None:
    body = json.dumps({"error": {"status": status, "message": message, "field": None}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
