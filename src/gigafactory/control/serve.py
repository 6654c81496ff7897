"""Running a control plane: the API server in this process and the daemon in a supervised child process.

The daemon is a process of its own so that the API answers while the engine thinks, and so that a daemon crash
(or a ``kill -9``) is survived: the supervisor starts a new one, which rebuilds its state from the store.

One controller per store (:mod:`gigafactory.control.lease`):

* ``serve`` holds the store's *serve* lock, so a second ``serve`` on the same store refuses and names the first;
* the daemon holds the *daemon* lease, and fences every write with it;
* the daemon dies with its ``serve``, however ``serve`` ends (SIGTERM, SIGINT, SIGHUP or ``kill -9``): it asks the
  kernel for SIGTERM when its parent dies, and checks its parent at start.

The database URL, which may carry a password, reaches the daemon in its environment, never on its command line.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine as Store

from gigafactory.control.config import DEFAULTS, ControlConfig, jobs_root, reachable_by_all
from gigafactory.control.daemon import Daemon
from gigafactory.control.executors import Executor, LocalExecutor
from gigafactory.control.identity import isolating
from gigafactory.control.lease import Lease, LeaseLostError
from gigafactory.control.store.db import get_meta
from gigafactory.control.store.site import StoredSite, load_sites
from gigafactory.core.errors import ConfigError

__all__ = ["DaemonSupervisor", "containment", "make_executor", "run_daemon", "serve_api"]

log = logging.getLogger("gigafactory.serve")
PR_SET_PDEATHSIG = 1


def make_executor(
    cfg: ControlConfig, store: Store, name: str | None = None, *, conf: str | None = None, partition: str | None = None
) -> Executor:
    """The executor the store was set up with (or ``name``), configured from the store. For Slurm, ``conf`` names
    the cluster's slurm.conf (else ``$SLURM_CONF``), and ``partition`` the partition to submit to."""
    with store.connect() as conn:
        name = name or get_meta(conn, "executor", "local") or "local"
        plane = get_meta(conn, "plane_id") or "local"
        kill_wait = float(get_meta(conn, "kill_wait_s", "10") or 10)
    root = jobs_root(cfg, store)
    if name == "local":
        return LocalExecutor(root, plane=plane, kill_wait_s=kill_wait)
    if name == "slurm":
        from gigafactory.control.executors.slurm import SlurmExecutor

        if isolating():
            root.mkdir(parents=True, exist_ok=True)
            closed = reachable_by_all(root)
            if closed is not None:
                raise ConfigError(
                    f"the slurm executor runs jobs as the tenants' own accounts, which must reach the jobs directory "
                    f"{root}, but {closed} is closed to them; start with --jobs-dir on a directory every node and "
                    f"user can reach (the cluster's shared file system)"
                )
        return SlurmExecutor(root, plane, conf=conf, partition=partition)
    raise ConfigError(f"executor {name!r}; known: local, slurm")


def make_executors(cfg: ControlConfig, store: Store, sites: list[StoredSite]) -> list[Executor]:
    """One executor per site, as each site's ``executor`` table says (else the store's): ``{kind = "local"}``, or
    ``{kind = "slurm", conf = "/etc/slurm-de/slurm.conf", partition = "gpu"}`` for a cluster of its own. Sites with
    the same settings share one executor: every local site runs its jobs from the same jobs directory, under job ids
    unique to the store."""
    with store.connect() as conn:
        default = get_meta(conn, "executor", "local") or "local"
    shared: dict[tuple[str, str | None, str | None], Executor] = {}
    out = []
    for site in sites:
        kind = str(site.executor.get("kind", default))
        conf, part = site.executor.get("conf"), site.executor.get("partition")
        key = (kind, str(conf) if conf else None, str(part) if part else None)
        if key not in shared:
            shared[key] = make_executor(cfg, store, kind, conf=key[1], partition=key[2])
        out.append(shared[key])
    return out


def containment(cfg: ControlConfig, store: Store) -> str:
    """How the store's executor contains jobs on this host, in words."""
    executor = make_executor(cfg, store)
    return str(getattr(executor, "containment", "as the Slurm cluster's cgroup.conf configures it"))


def _die_with_parent() -> None:
    """Ask for SIGTERM when the process that started us dies, and leave now if it already has."""
    parent = os.environ.get("GIGAFACTORY_PARENT_PID")
    if not parent:
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != int(parent):
        raise SystemExit("gigafactory daemon: serve is gone; not starting")


def run_daemon(cfg: ControlConfig, *, poll_s: float = 0.2, stop: Callable[[], bool] = lambda: False) -> None:
    """The daemon process: take the store's lease, then loop until ``stop()`` or SIGTERM, SIGINT or SIGHUP."""
    _die_with_parent()
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: stopping.set())
    store = cfg.open()
    with store.connect() as conn:
        profile = get_meta(conn, "profile", DEFAULTS["profile"]) or DEFAULTS["profile"]
    with Lease.acquire(store, "daemon") as lease:
        with store.connect() as conn:
            sites = load_sites(conn)
        daemon = Daemon(store, make_executors(cfg, store, sites), profile=profile, lease=lease)
        try:
            daemon.run(poll_s=poll_s, stop=lambda: stopping.is_set() or stop())
        except LeaseLostError as exc:
            raise ConfigError(f"the daemon stops: {exc}") from exc


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
        if self.cfg.jobs_dir is not None:
            cmd += ["--jobs-dir", str(self.cfg.jobs_dir)]
        return cmd

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "GIGAFACTORY_DB"}
        env["GIGAFACTORY_PARENT_PID"] = str(os.getpid())
        if self.cfg.db:
            env["GIGAFACTORY_DB"] = self.cfg.db  # not on the command line, which every user may read
        return env

    def start(self) -> None:
        self._spawn()
        self._thread.start()

    def _spawn(self) -> None:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "ab") as out:
            self.proc = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=self.environment())  # fmt: skip

    def _watch(self) -> None:
        while not self._stop.wait(0.5):
            if self.proc is not None and self.proc.poll() is not None:
                log.warning(
                    "the daemon exited with %s; starting it again (see %s)", self.proc.returncode, self.log_file
                )
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
    store = cfg.open()
    with Lease.acquire(store, "serve"):
        app = create_app(cfg, store)
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
        if threading.current_thread() is threading.main_thread():
            # SIGHUP (the terminal went away) ends serve as cleanly as Ctrl-C does.
            signal.signal(signal.SIGHUP, lambda *_: setattr(server, "should_exit", True))
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
