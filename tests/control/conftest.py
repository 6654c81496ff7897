"""Fixtures for the control plane: real stores (SQLite, and PostgreSQL when one is up), real executors, and a
real server on loopback."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine as Store
from sqlalchemy import create_engine, text

from gigafactory.control.config import ControlConfig, init_control
from gigafactory.control.daemon import Daemon
from gigafactory.control.serve import make_executor
from gigafactory.control.store import accounts
from gigafactory.core.tenants import Tenant

# `.ci/run` starts a PostgreSQL server and sets GIGAFACTORY_REQUIRE_PG=1, so there the PostgreSQL cases must run.
PG_URL = os.environ.get("GIGAFACTORY_PG_URL", "postgresql+psycopg://gf:gf@127.0.0.1:5432/postgres")
TENANTS = [Tenant("lab-a", share=2.0), Tenant("startup-b", share=1.0), Tenant("uni-c", share=1.0)]
SITE = "uniform:nodes=4,gpus=8"


@pytest.fixture(scope="session", autouse=True)
def _host_paths() -> Iterator[None]:
    """Run as root, control planes keep their jobs in a spool (/var/spool/gigafactory) and claim dynamic uids in a
    host-wide registry (/var/lib/gigafactory/uids): here, the session's own, so that tests leave nothing on the
    host. The spool sits under /tmp, where the tenants' uids can reach it (pytest's own directories are private)."""
    import shutil
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="gf-host-", dir="/tmp"))
    base.chmod(0o755)
    (base / "spool").mkdir(mode=0o755)
    old = {k: os.environ.get(k) for k in ("GIGAFACTORY_SPOOL", "GIGAFACTORY_UID_REGISTRY")}
    os.environ["GIGAFACTORY_SPOOL"] = str(base / "spool")
    os.environ["GIGAFACTORY_UID_REGISTRY"] = str(base / "uids")
    yield
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    shutil.rmtree(base, ignore_errors=True)


def _pg_reachable() -> bool:
    try:
        eng = create_engine(PG_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 2})
        with eng.connect() as conn:
            conn.execute(text("select 1"))
        eng.dispose()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[Store]:
    if not _pg_reachable():
        if os.environ.get("GIGAFACTORY_REQUIRE_PG") == "1":
            pytest.fail(f"PostgreSQL is required here but not reachable at {PG_URL}")
        pytest.skip(f"no PostgreSQL at {PG_URL} (set GIGAFACTORY_PG_URL)")
    eng = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    yield eng
    eng.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | None]:
    """None (SQLite in the data directory), or the URL of a fresh PostgreSQL database dropped afterwards."""
    if request.param == "sqlite":
        yield None
        return
    admin: Store = request.getfixturevalue("pg_admin")
    name = f"gf_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield PG_URL.rsplit("/", 1)[0] + "/" + name
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@dataclass
class Plane:
    """A control plane set up in a temporary data directory."""

    cfg: ControlConfig
    store: Store
    admin_token: str
    tokens: dict[str, str]  # tenant -> token

    def daemon(self, **kw: Any) -> Daemon:
        return Daemon(self.store, make_executor(self.cfg, self.store), **kw)

    @property
    def jobs(self) -> Path:
        """Where the attempts' directories are."""
        from gigafactory.control.config import jobs_root

        return jobs_root(self.cfg, self.store)


def make_plane(data_dir: Path, db: str | None = None, site: str | None = SITE, **kw: Any) -> Plane:
    cfg = ControlConfig(data_dir, db)
    store = init_control(cfg, site=site, tenants=TENANTS, kill_wait_s=kw.pop("kill_wait_s", 2), **kw)
    tokens = {}
    with store.begin() as conn:
        for t in TENANTS:
            tokens[t.name] = accounts.create_token(conn, role="tenant", tenant=t.name, name="test")[1]
    return Plane(cfg, store, cfg.admin_token_file.read_text().strip(), tokens)


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[Plane]:
    p = make_plane(tmp_path / "gf")
    yield p
    p.store.dispose()


def run_until(daemon: Daemon, done: Callable[[], bool], timeout: float = 30.0, poll: float = 0.02) -> None:
    """Step the daemon until ``done()``; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"not done after {timeout} s")
        s = daemon.step()
        if not (s.submitted or s.events or s.reports or s.actions):
            time.sleep(poll)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    plane: Plane
    url: str


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    """The real API on a loopback port, with a daemon (local executor) stepping in a thread beside it."""
    yield from _serve(tmp_path, daemon=True)


@pytest.fixture
def live_api(tmp_path: Path) -> Iterator[LiveServer]:
    """The real API on a loopback port with no daemon: what is submitted is stored, never run."""
    yield from _serve(tmp_path, daemon=False)


@pytest.fixture
def live_network(tmp_path: Path) -> Iterator[LiveServer]:
    """The real API and a daemon serving two sites, de-1 (DE) and fr-1 (FR), of two 8-GPU nodes each."""
    from gigafactory.network import Network, SiteSpec

    net = Network(
        "pair",
        (
            SiteSpec("de-1", "uniform:nodes=2,gpus=8", "DE", 235.9, 381.0, 1.3),
            SiteSpec("fr-1", "uniform:nodes=2,gpus=8", "FR", 178.5, 56.0, 1.3),
        ),
    )
    yield from _serve(tmp_path, daemon=True, site=None, network=net)


def _serve(tmp_path: Path, *, daemon: bool, **plane: Any) -> Iterator[LiveServer]:
    import uvicorn

    from gigafactory.control.api.app import create_app

    p = make_plane(tmp_path / "gf", **plane)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(p.cfg, p.store), host="127.0.0.1", port=port, log_level="error"))
    stop = threading.Event()
    threads = [threading.Thread(target=server.run, daemon=True)]
    if daemon:
        d = p.daemon(forecast_every_s=0.5)
        threads.append(threading.Thread(target=lambda: d.run(poll_s=0.05, stop=stop.is_set), daemon=True))
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield LiveServer(p, f"http://127.0.0.1:{port}")
    server.should_exit = True
    stop.set()
    for t in threads:
        t.join(15)
    p.store.dispose()
