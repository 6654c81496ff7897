"""The store on SQLite and PostgreSQL: migrations, site, tokens, tenants, jobs."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select, text

from gigafactory.control.config import ControlConfig, init_control
from gigafactory.control.store import accounts
from gigafactory.control.store import jobs as jobstore
from gigafactory.control.store.db import get_meta
from gigafactory.control.store.schema import metadata, tokens
from gigafactory.control.store.site import load_site
from gigafactory.core.errors import ConfigError
from gigafactory.core.presets import build_site
from gigafactory.core.tenants import Tenant

from .conftest import TENANTS, make_plane


@pytest.fixture
def plane(tmp_path: Path, db_url: str | None):
    p = make_plane(tmp_path / "gf", db_url, site="gb200-nvl72:racks=4")
    yield p
    p.store.dispose()


def test_migrations_build_exactly_the_schema(plane) -> None:
    with plane.store.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
        assert diff == []
        assert conn.execute(text("select version_num from alembic_version")).scalar() == "0007"


def test_site_round_trips(plane) -> None:
    want = build_site("gb200-nvl72:racks=4")
    with plane.store.connect() as conn:
        site = load_site(conn)
    assert site is not None
    spec, topo = site
    assert spec == "gb200-nvl72:racks=4"
    assert list(topo.node_names) == list(want.node_names)
    assert (topo.node_gpus == want.node_gpus).all() and (topo.node_domain == want.node_domain).all()
    assert topo.num_gpus == 4 * 72


def test_tokens_are_stored_hashed_and_resolve(plane) -> None:
    secret = plane.tokens["lab-a"]
    with plane.store.connect() as conn:
        stored = [r.token_hash for r in conn.execute(select(tokens))]
        assert secret not in stored and accounts.hash_token(secret) in stored
        p = accounts.lookup_token(conn, secret)
        assert p is not None and (p.role, p.tenant) == ("tenant", "lab-a")
        assert accounts.lookup_token(conn, secret + "x") is None
    with plane.store.begin() as conn:
        tid = next(r.id for r in conn.execute(select(tokens).where(tokens.c.tenant == "lab-a")))
        assert accounts.revoke_token(conn, tid)
    with plane.store.connect() as conn:
        assert accounts.lookup_token(conn, secret) is None


def test_tenant_tree_round_trips_and_is_checked(plane) -> None:
    with plane.store.begin() as conn:
        accounts.put_tenant(conn, Tenant("eu", share=3.0), capacity_gpus=288)
        accounts.put_tenant(conn, Tenant("lab-eu", share=1.0, parent="eu", guarantee=72, limit=144), capacity_gpus=288)
    with plane.store.connect() as conn:
        tree = accounts.load_tree(conn)
    assert tree is not None
    assert {t.name for t in TENANTS} | {"eu", "lab-eu"} <= set(tree.names())
    assert tree["lab-eu"].parent == "eu" and tree["lab-eu"].guarantee == 72
    with pytest.raises(ConfigError, match="ghost"), plane.store.begin() as conn:
        accounts.put_tenant(conn, Tenant("x", parent="ghost"), capacity_gpus=288)


def test_jobs_insert_in_order_and_filter(plane) -> None:
    rows = [
        {"tenant": "lab-a" if i % 3 else "uni-c", "name": f"j{i}", "command": ["true"], "gpus": 4} for i in range(50)
    ]
    with plane.store.begin() as conn:
        ids = jobstore.insert_jobs(conn, rows)
    assert ids == sorted(ids) and len(set(ids)) == 50
    with plane.store.connect() as conn:
        assert [r.name for r in jobstore.submitted(conn, 5)] == ["j0", "j1", "j2", "j3", "j4"]
        mine = jobstore.list_jobs(conn, tenant="uni-c", limit=100)
        assert {r.tenant for r in mine} == {"uni-c"} and len(mine) == 17
        assert jobstore.count_by_state(conn) == {"submitted": 50}
        row = jobstore.get_job(conn, ids[0])
        assert row is not None
        assert (row.command, row.gpus, row.gpu_milli, row.state, row.attempt) == (["true"], 4, 1000, "submitted", 0)


def test_a_store_keeps_its_executor_and_profile(tmp_path: Path) -> None:
    cfg = ControlConfig(tmp_path / "gf")
    init_control(cfg, site="uniform:nodes=2,gpus=8", executor="local", profile="fifo+easy+best-fit").dispose()
    with pytest.raises(ConfigError, match="cannot switch"):
        init_control(cfg, executor="local", profile="sjf+easy+best-fit")
    with pytest.raises(ConfigError, match="executor 'k8s'"):
        init_control(cfg, executor="k8s")
    with pytest.raises(ConfigError, match="already holds site 'uniform:nodes=2,gpus=8'"):
        init_control(cfg, site="hgx-h100:nodes=4")
    # A restart need not repeat its set-up: what the first start chose stands.
    store = init_control(cfg)
    with store.connect() as conn:
        site = load_site(conn)
        assert site is not None
        assert site[0] == "uniform:nodes=2,gpus=8"
        assert get_meta(conn, "profile") == "fifo+easy+best-fit" and get_meta(conn, "executor") == "local"
    store.dispose()


def test_relative_data_directories_are_made_absolute_and_private(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = ControlConfig(Path("rel") / "gf")
    assert cfg.data_dir == tmp_path / "rel" / "gf"
    init_control(cfg).dispose()
    assert (tmp_path / "rel" / "gf").stat().st_mode & 0o777 == 0o700


def test_an_older_store_is_migrated_with_its_data(tmp_path: Path, db_url: str | None) -> None:
    from gigafactory.control.store.db import open_store, upgrade

    url = db_url or f"sqlite:///{tmp_path / 'old.db'}"
    store = open_store(url, migrate=False)
    upgrade(store, "0001")
    with store.begin() as conn:
        conn.execute(text(
            "insert into jobs (tenant, name, command, env, gpus, gpu_milli, cpu_milli, mem_mib, locality, priority, "
            "ckpt_write_s, state, attempt, submitted_at, reason, log_dir) values ('a', 'old', '[\"true\"]', '{}', 2, "
            "1000, 0, 0, 'any', 0, 0, 'completed', 1, 1.0, '', '')"
        ))  # fmt: skip
    upgrade(store)
    with store.connect() as conn:
        row = jobstore.get_job(conn, 1)
        assert row is not None
        assert (row.name, row.gpus, row.state, row.client_key) == ("old", 2, "completed", None)
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    store.dispose()


def test_submission_keys_make_retries_safe(plane) -> None:
    job = {"tenant": "lab-a", "command": ["true"], "gpus": 1}
    with plane.store.begin() as conn:
        first = jobstore.insert_jobs(conn, [{**job, "client_key": "k1"}, {**job, "client_key": "k2"}, job])
    with plane.store.begin() as conn:
        again = jobstore.insert_jobs(
            conn,
            [{**job, "client_key": "k2"}, {**job, "client_key": "k3"}, {**job, "client_key": "k3"},
             {**job, "tenant": "uni-c", "client_key": "k1"}, {**job, "client_key": "k1"}],
        )  # fmt: skip
    assert again[0] == first[1] and again[4] == first[0]  # seen before: the same jobs
    assert again[1] == again[2] and again[1] > max(first)  # repeated within one call: one new job
    assert again[3] not in first  # another tenant's key is its own
    with plane.store.connect() as conn:
        assert jobstore.count_by_state(conn) == {"submitted": 5}


def test_one_daemon_lease_per_store_and_every_write_fenced(tmp_path: Path, db_url: str | None) -> None:
    """A second lease on one store is refused, naming the holder; a daemon whose lease was taken over writes
    nothing more."""
    from gigafactory.control.daemon import Daemon
    from gigafactory.control.lease import Lease, LeaseHeldError, LeaseLostError
    from gigafactory.control.serve import make_executor
    from gigafactory.control.store.db import bump_meta

    plane = make_plane(tmp_path / "gf", db_url)
    try:
        with Lease.acquire(plane.store, "daemon") as lease:
            with pytest.raises(LeaseHeldError, match=r"already has a daemon: gigafactory daemon pid \d+ on "):
                Lease.acquire(plane.store, "daemon")
            Lease.acquire(plane.store, "serve").release()  # another name: another lock
            d = Daemon(plane.store, make_executor(plane.cfg, plane.store), lease=lease)
            d.step()
            with plane.store.begin() as conn:
                bump_meta(conn, "daemon_epoch")  # as a daemon that took the store over would
                (jid,) = jobstore.insert_jobs(conn, [{"tenant": "lab-a", "command": ["true"], "gpus": 1}])
            with pytest.raises(LeaseLostError):
                d.step()
            with plane.store.connect() as conn:
                row = jobstore.get_job(conn, jid)
            assert row is not None
            assert row.state == "submitted"  # the fenced step wrote nothing
        Lease.acquire(plane.store, "daemon").release()  # released with its holder
    finally:
        plane.store.dispose()  # also when it fails: no connection left for a later test to trip on


def test_a_single_site_store_upgrades_to_networks_with_nothing_lost(tmp_path: Path, db_url: str | None) -> None:
    """A store of the single-site era (0003): after the upgrade every job that left 'submitted', and every usage
    record, belongs to its one site; submitted jobs wait to be routed; nothing else changed."""
    from gigafactory.control.store.db import open_store, upgrade

    url = db_url or f"sqlite:///{tmp_path / 'old.db'}"
    store = open_store(url, migrate=False)
    upgrade(store, "0003")
    with store.begin() as conn:
        conn.execute(text("insert into sites (id, name, spec, created_at) values (1, 'hgx-h100:nodes=4', "
                          "'hgx-h100:nodes=4', 0)"))  # fmt: skip
        for k, state in enumerate(["completed", "running", "pending", "submitted"], start=1):
            conn.execute(text(
                "insert into jobs (id, tenant, name, command, env, gpus, gpu_milli, cpu_milli, mem_mib, locality, "
                "priority, ckpt_write_s, state, attempt, submitted_at, reason, log_dir) values "
                f"({k}, 'a', 'j{k}', '[\"true\"]', '{{}}', 1, 1000, 0, 0, 'any', 0, 0, '{state}', 1, 1.0, '', '')"
            ))  # fmt: skip
        conn.execute(text("insert into usage (job_id, attempt, tenant, gpus, started_at, ended_at, gpu_seconds) "
                          "values (1, 1, 'a', 1, 1, 11, 10)"))  # fmt: skip
    upgrade(store)
    with store.connect() as conn:
        query = text("select id, name, state, site, sites, countries, reroute from jobs")
        rows = {r.id: r for r in conn.execute(query)}
        assert {k: (r.name, r.state) for k, r in rows.items()} == {
            1: ("j1", "completed"),
            2: ("j2", "running"),
            3: ("j3", "pending"),
            4: ("j4", "submitted"),
        }
        assert [rows[k].site for k in (1, 2, 3, 4)] == ["hgx-h100:nodes=4"] * 3 + [None]
        assert all(r.sites is None and r.countries is None and not r.reroute for r in rows.values())
        u = conn.execute(text("select job_id, gpu_seconds, site from usage")).one()
        assert (u.job_id, u.gpu_seconds, u.site) == (1, 10, "hgx-h100:nodes=4")
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    store.dispose()
