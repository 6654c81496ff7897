"""A small HTTP client for the API, used by the CLI (and handy in scripts).

Errors from the server come back as :class:`ClientError` carrying the server's own message, so the CLI prints
what the API said (``body.gpus: 5000 GPUs asked; this site has 32``), not a status line.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from gigafactory.control.home import default_data_dir
from gigafactory.core.errors import UserError

__all__ = ["DEFAULT_URL", "Client", "ClientError", "find_token"]

DEFAULT_URL = "http://127.0.0.1:8642"


class ClientError(UserError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{message} (HTTP {status})" if status else message)
        self.status = status


def find_token(explicit: str | None, data_dir: Path | None = None) -> str | None:
    """The token to use: given, else ``$GIGAFACTORY_TOKEN``, else the local admin token if this user can read it."""
    if explicit:
        return explicit
    env = os.environ.get("GIGAFACTORY_TOKEN")
    if env:
        return env
    path = (data_dir or default_data_dir()) / "admin.token"
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


class Client:
    def __init__(self, url: str = DEFAULT_URL, token: str | None = None, timeout: float = 30.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self.http = httpx.Client(base_url=self.url + "/api/v1", headers=headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kw: Any) -> Any:
        try:
            r = self.http.request(method, path, **kw)
        except httpx.ConnectError as exc:
            raise ClientError(
                0, f"cannot reach the control plane at {self.url} ({exc}); is `gigafactory serve` running?"
            ) from exc
        except httpx.HTTPError as exc:
            raise ClientError(0, f"{self.url}: {exc}") from exc
        except ValueError as exc:  # JSON cannot carry nan or inf
            raise ClientError(0, f"a number given is not finite (nan or inf): {exc}") from exc
        if r.status_code >= 400:
            try:
                message = r.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = r.text[:500] or r.reason_phrase
            raise ClientError(r.status_code, message)
        if r.status_code == 204:
            return None
        if r.headers.get("content-type", "").startswith("application/json"):
            return r.json()
        return r.text

    # ---- jobs ------------------------------------------------------------------------------------------------
    def submit(self, **spec: Any) -> int:
        """Submit one job. Each submission carries a fresh key, so a retry after a lost answer is not a second job."""
        body = {"key": uuid.uuid4().hex, **{k: v for k, v in spec.items() if v is not None}}
        return int(self._retrying("POST", "/jobs", json=body)["ids"][0])

    def submit_many(self, specs: list[dict[str, Any]]) -> list[int]:
        jobs = [{"key": uuid.uuid4().hex, **s} for s in specs]
        return [int(i) for i in self._retrying("POST", "/jobs/batch", json={"jobs": jobs})["ids"]]

    def _retrying(self, method: str, path: str, attempts: int = 4, **kw: Any) -> Any:
        """A request that is safe to repeat (keyed submissions), repeated when the connection fails or the store
        is briefly unavailable (503)."""
        for i in range(attempts):
            try:
                return self.request(method, path, **kw)
            except ClientError as exc:
                if exc.status not in (0, 503) or i == attempts - 1:
                    raise
                time.sleep(0.5 * 2**i)
        raise AssertionError("unreachable")

    def job(self, job_id: int) -> dict[str, Any]:
        return dict(self.request("GET", f"/jobs/{job_id}"))

    def jobs(
        self,
        *,
        tenant: str | None = None,
        states: list[str] | None = None,
        limit: int = 100,
        search: str | None = None,
        since: float | None = None,
        sort: str | None = None,
        descending: bool = False,
    ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit}
        if tenant:
            params["tenant"] = tenant
        if states:
            params["state"] = states
        if search:
            params["q"] = search
        if since is not None:
            params["since"] = since
        if sort:
            params["sort"] = sort
        if descending:
            params["order"] = "desc"
        return list(self.request("GET", "/jobs", params=params))

    def cancel(self, job_id: int) -> dict[str, Any]:
        return dict(self.request("POST", f"/jobs/{job_id}/cancel"))

    def logs(self, job_id: int, stream: str = "stdout", attempt: int | None = None) -> str:
        params: dict[str, Any] = {"stream": stream}
        if attempt:
            params["attempt"] = attempt
        return str(self.request("GET", f"/jobs/{job_id}/logs", params=params))

    def story(self, job_id: int) -> list[dict[str, Any]]:
        return list(self.request("GET", f"/jobs/{job_id}/story"))

    def queue(self, tenant: str | None = None, site: str | None = None) -> list[dict[str, Any]]:
        params = {k: v for k, v in (("tenant", tenant), ("site", site)) if v}
        return list(self.request("GET", "/queue", params=params))

    # ---- site ------------------------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        return dict(self.request("GET", "/health"))

    def whoami(self) -> dict[str, Any]:
        return dict(self.request("GET", "/whoami"))

    def tenants(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/tenants"))

    def usage(self, since: float = 0.0, site: str | None = None) -> dict[str, Any]:
        return dict(self.request("GET", "/usage", params={"since": since, **({"site": site} if site else {})}))

    def nodes(
        self, states: list[str] | None = None, site: str | None = None, nodelist: str | None = None
    ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"state": states} if states else {}
        if site:
            params["site"] = site
        if nodelist:
            params["nodelist"] = nodelist
        return list(self.request("GET", "/nodes", params=params or None))

    def sites(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/sites"))

    # ---- admin -----------------------------------------------------------------------------------------------
    def put_tenant(self, name: str, **body: Any) -> dict[str, Any]:
        return dict(
            self.request("PUT", f"/admin/tenants/{name}", json={k: v for k, v in body.items() if v is not None})
        )

    def sign_in_link(self) -> str:
        """A one-time link (``URL/login?code=...``) that signs a browser in as this client's token."""
        return self.url + str(self.request("POST", "/sign-in-links")["path"])

    def create_token(self, role: str, tenant: str | None = None, name: str = "") -> dict[str, Any]:
        return dict(self.request("POST", "/admin/tokens", json={"role": role, "tenant": tenant, "name": name}))

    def tokens(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/admin/tokens"))

    def revoke_token(self, token_id: int) -> None:
        self.request("DELETE", f"/admin/tokens/{token_id}")

    def drain(self, node: str, reason: str = "drained by an admin", site: str | None = None) -> None:
        self.request(
            "POST", f"/admin/nodes/{node}/drain", params={"reason": reason, **({"site": site} if site else {})}
        )

    def resume(self, node: str, site: str | None = None) -> None:
        self.request("POST", f"/admin/nodes/{node}/resume", params={"site": site} if site else None)
