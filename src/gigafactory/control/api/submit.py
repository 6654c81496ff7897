"""Submissions: limits per tenant, and group commit.

A submission is durable before the API answers. One transaction per request would cap throughput at the
database's commit rate, so concurrent requests share one: each request queues its rows and waits; a single writer
takes everything queued, checks each request, inserts what passed in one transaction, and answers them all. Under
light load a batch is one request; under heavy load batches grow by themselves, and so does throughput.

No tenant can flood the site. Each tenant has two limits, answered with 429 and ``Retry-After``:

* **jobs waiting** (submitted or pending) at most ``max_jobs``, like Slurm's ``MaxSubmitJobs``. It is checked in
  the writer's transaction, so concurrent requests cannot pass it together. Counting a tenant's waiting jobs costs
  as much as it has, so the writer keeps each count, adds what it inserts, and counts again every few seconds (the
  daemon's starts only lower it) and whenever a request would pass the limit.
* **submission rate**: a token bucket of ``max_rate`` jobs per second that holds ten seconds' worth. A request may
  take more than the bucket holds (a large batch); the tenant then waits until the bucket has refilled, and while
  it waits the gate refuses its submissions before reading them. A submission refused as invalid costs as much as
  a valid one, so that a flood of them costs the same.

A submission key sent again with the same job returns the job it made. Sent with a different job, it is a 409:
that is a client bug, not a retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine as Store
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from gigafactory.control.api.errors import ApiError
from gigafactory.control.store import accounts
from gigafactory.control.store import jobs as jobstore

__all__ = ["RateLimiter", "SubmissionWriter"]

BURST_S = 10.0
RECOUNT_S = 5.0


@dataclass
class _Bucket:
    tokens: float
    at: float


@dataclass
class RateLimiter:
    """Per-tenant token buckets (in this API process)."""

    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def wait_s(self, tenant: str, rate: float) -> int:
        """Seconds until ``tenant`` may submit again (0: now). The gate asks before it reads a body."""
        b = self._buckets.get(tenant)
        if b is None:
            return 0
        tokens = min(rate * BURST_S, b.tokens + (self.clock() - b.at) * rate)
        return math.ceil(-tokens / rate) if tokens < 0 else 0

    def charge(self, tenant: str, n: int, rate: float) -> None:
        """Take ``n`` without asking (a refused submission costs what it would have)."""
        with contextlib.suppress(ApiError):
            self.take(tenant, 0, rate)
        self._buckets[tenant].tokens -= n

    def take(self, tenant: str, n: int, rate: float) -> None:
        """Take ``n`` submissions from ``tenant``'s bucket, or raise a 429 that says when to come back."""
        now = self.clock()
        size = rate * BURST_S
        b = self._buckets.get(tenant)
        if b is None:
            b = self._buckets[tenant] = _Bucket(size, now)
        b.tokens = min(size, b.tokens + (now - b.at) * rate)
        b.at = now
        if b.tokens < 0:
            wait = math.ceil(-b.tokens / rate)
            raise ApiError(
                429,
                f"tenant {tenant!r} submits faster than its limit of {rate:g} jobs per second; try again in {wait} s",
                "tenant",
                headers={"Retry-After": str(wait)},
            )
        b.tokens -= n


class SubmissionWriter:
    def __init__(self, store: Store, limits: Callable[[str], accounts.Limits], *, max_batch: int = 20_000) -> None:
        self.store = store
        self.limits = limits
        self.max_batch = max_batch
        self._waiting: dict[str, tuple[int, float]] = {}  # tenant -> (jobs waiting, when counted)
        self._queue: asyncio.Queue[tuple[list[dict[str, Any]], asyncio.Future[list[int]]]] | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def submit(self, rows: list[dict[str, Any]]) -> list[int]:
        assert self._queue is not None, "the writer has not started"
        fut: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        await self._queue.put((rows, fut))
        return await fut

    async def _run(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            pending = [await self._queue.get()]
            size = len(pending[0][0])
            while not self._queue.empty() and size < self.max_batch:
                item = self._queue.get_nowait()
                pending.append(item)
                size += len(item[0])
            try:
                results: list[list[int] | ApiError | Exception] = list(
                    await loop.run_in_executor(None, self._insert, [rows for rows, _ in pending])
                )
            except OperationalError as exc:  # the store failed: every waiting request gets the error
                for _, fut in pending:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            except Exception:
                # One request broke the shared transaction: each goes alone, so that only its own sender fails.
                results = []
                for rows, _ in pending:
                    try:
                        results.extend(await loop.run_in_executor(None, self._insert, [rows]))
                    except Exception as alone:
                        results.append(alone)
            for (_, fut), result in zip(pending, results, strict=True):
                if fut.done():
                    continue
                if isinstance(result, Exception):
                    fut.set_exception(result)
                else:
                    fut.set_result(result)

    def _insert(self, requests: list[list[dict[str, Any]]]) -> list[list[int] | ApiError]:
        with self.store.begin() as conn:
            keyed = jobstore.keyed_jobs(conn, [(r["tenant"], r["client_key"]) for rows in requests for r in rows
                                               if r.get("client_key")])  # fmt: skip
            added: dict[str, int] = {}  # jobs accepted in this transaction, per tenant
            verdicts: list[ApiError | None] = []
            accepted: list[dict[str, Any]] = []
            for rows in requests:
                verdict = self._check(conn, rows, keyed, added)
                verdicts.append(verdict)
                if verdict is None:
                    accepted.extend(rows)
            stored = {key: jid for key, (jid, _) in keyed.items() if jid > 0}
            ids = iter(jobstore.insert_jobs(conn, accepted, stored))
        for tenant, n in added.items():
            count, at = self._waiting[tenant]
            self._waiting[tenant] = (count + n, at)
        return [v if v is not None else [next(ids) for _ in rows] for rows, v in zip(requests, verdicts, strict=True)]

    def _count(self, conn: Connection, tenant: str, *, fresh: bool = False) -> int:
        known = self._waiting.get(tenant)
        now = time.monotonic()
        if fresh or known is None or now - known[1] > RECOUNT_S:
            known = (jobstore.count_waiting(conn, tenant), now)
            self._waiting[tenant] = known
        return known[0]

    def _check(
        self,
        conn: Connection,
        rows: list[dict[str, Any]],
        keyed: dict[tuple[str, str], tuple[int, str | None]],
        added: dict[str, int],
    ) -> ApiError | None:
        """Whether one request may go in (its keys and its tenants' limits); it updates what later ones see."""
        fresh: dict[str, int] = {}
        mine: dict[tuple[str, str], str | None] = {}
        for i, r in enumerate(rows):
            key = (r["tenant"], r["client_key"]) if r.get("client_key") else None
            if key is not None:
                known = keyed.get(key)
                digest = known[1] if known is not None else mine.get(key, r.get("client_hash"))
                if digest is not None and r.get("client_hash") is not None and digest != r["client_hash"]:
                    job = f"job {known[0]}" if known is not None and known[0] > 0 else "another submission"
                    return ApiError(
                        409,
                        f"key {r['client_key']!r} was used for a different job ({job}); a retry must send the same "
                        f"job, and a new job needs a new key",
                        f"body.jobs.{i}.key" if len(rows) > 1 else "body.key",
                    )
                if known is not None or key in mine:
                    continue  # a retry: the job it made is returned
                mine[key] = r.get("client_hash")
            fresh[r["tenant"]] = fresh.get(r["tenant"], 0) + 1
        for tenant, n in fresh.items():
            limit = self.limits(tenant).max_jobs
            have = self._count(conn, tenant) + added.get(tenant, 0)
            if have + n > limit:  # some may have started since the last count
                have = self._count(conn, tenant, fresh=True) + added.get(tenant, 0)
            if have + n > limit:
                return ApiError(
                    429,
                    f"tenant {tenant!r} has {have:,} jobs waiting and may have {limit:,}; "
                    f"{n:,} more would pass that (try again when some have started)",
                    "tenant",
                    headers={"Retry-After": "30"},
                )
        for tenant, n in fresh.items():
            added[tenant] = added.get(tenant, 0) + n
        for key, digest in mine.items():
            keyed[key] = (-1, digest)
        return None
