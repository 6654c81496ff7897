"""Running a control plane: the API server in this process and the daemon in a supervised child process.

The daemon is a process of its own so that the API answers while the engine thinks, and so that a daemon crash
(or a ``kill -9``) is survived: the supervisor starts a new one, which rebuilds its state from the store.
"""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from gigafactory.control.config import ControlConfig
from gigafactory.control.daemon import Daemon
from gigafactory.control.executors import Executor, LocalExecutor
from gigafactory.control.store.db import get_meta
from gigafactory.core.errors import ConfigError

__all__ = ["DaemonSupervisor", "make_executor", "run_daemon", "serve_api"]

log = logging.getLogger("gigafactory.serve")


def make_executor(cfg: ControlConfig, name: str) -> Executor:
    if name == "local":
        return LocalExecutor(cfg.data_dir)
    if name == "slurm":
        from gigafactory.control.executors.slurm import SlurmExecutor

        with cfg.open().connect() as conn:
            plane = get_meta(conn, "plane_id")
        if not plane:
            raise ConfigError("the store has no plane_id; start it once with `gigafactory serve`")
        return SlurmExecutor(cfg.data_dir, plane)
    raise ConfigError(f"executor {name!r}; known: local, slurm")


def run_daemon(cfg: ControlConfig, *, poll_s: float = 0.2, stop: Callable[[], bool] = lambda: False) -> None:
    """The daemon loop, until ``stop()`` or SIGTERM."""
    store = cfg.open()
    with store.connect() as conn:
        executor_name = get_meta(conn, "executor", "local") or "local"
        profile = get_meta(conn, "profile", "fifo+easy+best-fit") or "fifo+easy+best-fit"
    daemon = Daemon(store, make_executor(cfg, executor_name), profile=profile, data_dir=cfg.data_dir)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    daemon.run(poll_s=poll_s, stop=lambda: stopping.is_set() or stop())


class DaemonSupervisor:
    """Keeps one daemon process running: starts it, and starts it again if it dies."""

    def __init__(self, cfg: ControlConfig, *, log_file: Path | None = None) -> None:
        self.cfg = cfg
        self.log_file = log_file or cfg.data_dir / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="daemon-supervisor", daemon=True)

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "gigafactory", "daemon", "--data-dir", str(self.cfg.data_dir)]
        if self.cfg.db:
            cmd += ["--db", self.cfg.db]
        return cmd

    def start(self) -> None:
        self._spawn()
        self._thread.start()

    def _spawn(self) -> None:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as out:
            self.proc = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def _watch(self) -> None:
        while not self._stop.wait(0.5):
            if self.proc is not None and self.proc.poll() is not None:
                log.warning("the daemon exited with %s; starting it again", self.proc.returncode)
                self.restarts += 1
                time.sleep(min(5.0, 0.5 * self.restarts))
                if not self._stop.is_set():
                    self._spawn()

    def stop(self) -> None:
        self._stop.set()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def serve_api(
    cfg: ControlConfig,
    *,
    host: str,
    port: int,
    daemon: bool = True,
    on_ready: Callable[[], None] | None = None,
    stop_after_s: float | None = None,
) -> None:
    """Serve the API (and the dashboard) until interrupted (or for ``stop_after_s``), with a supervised daemon
    unless ``daemon`` is false. ``on_ready`` runs in a thread of its own once the server listens."""
    import uvicorn

    from gigafactory.control.api.app import create_app

    _check_port(host, port)
    app = create_app(cfg)
    supervisor = DaemonSupervisor(cfg) if daemon else None
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    if supervisor is not None:
        supervisor.start()
    if stop_after_s is not None:
        timer = threading.Timer(stop_after_s, lambda: setattr(server, "should_exit", True))
        timer.daemon = True
        timer.start()
    if on_ready is not None:

        def wait_ready() -> None:
            while not server.started and not server.should_exit:
                time.sleep(0.05)
            if server.started and on_ready is not None:
                on_ready()

        threading.Thread(target=wait_ready, daemon=True).start()
    try:
        server.run()
    finally:
        if supervisor is not None:
            supervisor.stop()


def _check_port(host: str, port: int) -> None:
    """A clear error before anything starts, rather than a bind failure after the daemon has."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror}); is another control plane "
                              "running there? Choose another with --port") from None  # fmt: skip
