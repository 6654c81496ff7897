"""Independent runs in parallel: local processes, or a Ray cluster (``pip install 'gigafactory[ray]'``).

Each run is deterministic and independent, so what a batch returns does not depend on where or in which order its
runs executed; results come back in the order of the tasks.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

from gigafactory.core.errors import ConfigError

__all__ = ["run_tasks"]

T = TypeVar("T")
R = TypeVar("R")


def run_tasks(
    fn: Callable[[T], R],
    tasks: Sequence[T],
    *,
    processes: int | None = None,
    ray_address: str | None = None,
    progress: Callable[[R], None] | None = None,
) -> list[R]:
    """``[fn(t) for t in tasks]``, run in up to ``processes`` local processes or on the Ray cluster at
    ``ray_address``; ``fn`` must be a module-level function and the tasks picklable."""
    if ray_address:
        return _on_ray(fn, tasks, ray_address, progress)
    workers = max(1, min(processes or os.cpu_count() or 1, len(tasks)))
    out: list[R] = []
    if workers == 1:
        for task in tasks:
            result = fn(task)
            if progress:
                progress(result)
            out.append(result)
        return out
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for result in pool.map(fn, tasks):
            if progress:
                progress(result)
            out.append(result)
    return out


def _on_ray(fn: Callable[[T], R], tasks: Sequence[T], address: str, progress: Callable[[R], None] | None) -> list[R]:
    try:
        import ray
    except ImportError:
        raise ConfigError("--ray needs Ray: pip install 'gigafactory[ray]'") from None
    _check_reachable(address)
    started_here = not ray.is_initialized()
    if started_here:
        try:
            ray.init(address=address, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ConfigError(f"cannot connect to the Ray cluster at {address}: {exc}") from exc
    try:
        remote = ray.remote(fn)
        refs = [remote.remote(t) for t in tasks]
        out: list[R] = []
        for ref in refs:
            result = ray.get(ref)
            if progress:
                progress(result)
            out.append(result)
        return out
    finally:
        if started_here:
            ray.shutdown()


def _check_reachable(address: str) -> None:
    """Fail fast on a ``host:port`` nobody listens on (Ray itself would retry for minutes)."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=5).close()
    except OSError as exc:
        raise ConfigError(f"cannot connect to the Ray cluster at {address}: {exc.strerror or exc}") from exc
