"""Submissions with group commit.

A submission is durable before the API answers. One transaction per request would cap throughput at the
database's commit rate, so concurrent requests share one: each request queues its rows and waits; a single writer
takes everything queued, inserts it in one transaction, and answers them all. Under light load a batch is one
request; under heavy load batches grow by themselves, and so does throughput.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from sqlalchemy import Engine as Store

from gigafactory.control.store import jobs as jobstore

__all__ = ["SubmissionWriter"]


class SubmissionWriter:
    def __init__(self, store: Store, *, max_batch: int = 20_000) -> None:
        self.store = store
        self.max_batch = max_batch
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
            rows = [r for batch, _ in pending for r in batch]
            try:
                ids = await loop.run_in_executor(None, self._insert, rows)
            except Exception as exc:  # the store failed: every waiting request gets the error
                for _, fut in pending:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            at = 0
            for batch, fut in pending:
                if not fut.done():
                    fut.set_result(ids[at : at + len(batch)])
                at += len(batch)

    def _insert(self, rows: list[dict[str, Any]]) -> list[int]:
        with self.store.begin() as conn:
            return jobstore.insert_jobs(conn, rows)
