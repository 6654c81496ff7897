"""Where a control plane keeps its things, and setting one up.

A control plane lives in a **data directory** (default ``~/.gigafactory``, or ``$GIGAFACTORY_HOME``). It belongs to
the control plane alone (mode 0700) and holds the SQLite store (unless ``--db`` names a PostgreSQL server), the
first admin token, the leases, and by default the jobs' directories (``jobs/``). Relative paths are made absolute
at once, so nothing depends on the directory a command was started from.

The jobs' directories live elsewhere when the tenants' uids must reach them by path (their ``$HOME``,
``$TMPDIR`` and cwd are in them) and the data directory, 0700, is in their way. Run as root, a control plane's
jobs go by default to ``/var/spool/gigafactory/<plane id>`` (``$GIGAFACTORY_SPOOL`` to move it), as Slurm's go to
``/var/spool/slurmd``; unprivileged, to ``DATA/jobs``. ``--jobs-dir`` chooses; the Slurm executor needs one that
the tenants' accounts can reach on every node, such as a directory on the cluster's shared file system.

:func:`init_control` makes a store ready: migrated, holding the site, the executor's name, the policy profile, the
jobs directory and an admin token. Those are chosen at the first start and kept: a later start need not repeat
them, and may not change them.
"""

from __future__ import annotations

import os
import secrets
import stat
from dataclasses import dataclass, replace
from pathlib import Path

from sqlalchemy import Engine as Store
from sqlalchemy import select
from sqlalchemy.engine import Connection

from gigafactory.control.home import default_data_dir
from gigafactory.control.identity import isolating
from gigafactory.control.store import accounts
from gigafactory.control.store.db import default_url, get_meta, open_store, set_meta
from gigafactory.control.store.schema import tenants as tenants_table
from gigafactory.control.store.schema import tokens
from gigafactory.control.store.site import load_site, load_sites, save_site, set_node_state
from gigafactory.core.errors import ConfigError
from gigafactory.core.presets import build_site
from gigafactory.core.tenants import Tenant
from gigafactory.core.topology import Topology
from gigafactory.network.model import SLURM_PRESET, Network, load_network
from gigafactory.policy.profile import parse_profile

__all__ = [
    "DEFAULTS",
    "EXECUTORS",
    "ControlConfig",
    "default_data_dir",
    "init_control",
    "jobs_root",
    "reachable_by_all",
    "read_network",
    "remove_control",
    "spool_dir",
    "write_secret",
]

EXECUTORS = ("local", "slurm")
# What a first start chooses when it is not told.
DEFAULTS = {"site": "hgx-h100:nodes=4", "executor": "local", "profile": "fifo+easy+best-fit+award"}


@dataclass(frozen=True)
class ControlConfig:
    data_dir: Path
    db: str | None = None  # a URL; None: SQLite in data_dir
    jobs_dir: Path | None = None  # None: as recorded at the first start (default data_dir/jobs)

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(os.path.abspath(self.data_dir)))
        if self.jobs_dir is not None:
            object.__setattr__(self, "jobs_dir", Path(os.path.abspath(self.jobs_dir)))

    @property
    def url(self) -> str:
        return self.db or default_url(self.data_dir)

    @property
    def admin_token_file(self) -> Path:
        return self.data_dir / "admin.token"

    def open(self) -> Store:
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.data_dir.stat().st_uid == os.geteuid():
            self.data_dir.chmod(0o700)  # the store, the tokens and the leases are the control plane's alone
        return open_store(self.url)


def spool_dir() -> Path:
    """Where a control plane run as root keeps its jobs' directories unless told otherwise."""
    return Path(os.environ.get("GIGAFACTORY_SPOOL") or "/var/spool/gigafactory")


def remove_control(cfg: ControlConfig) -> None:
    """Take down a control plane made by the demo, whose jobs have all been stopped: its jobs' directories in the
    spool, its data directory, and its claims on dynamic uids."""
    import shutil

    from gigafactory.control.identity import UidRegistry

    db = cfg.data_dir / "gigafactory.db"
    if not db.exists():
        return
    store = open_store(default_url(cfg.data_dir), migrate=False)
    try:
        with store.connect() as conn:
            jobs, plane = get_meta(conn, "jobs_dir"), get_meta(conn, "plane_id")
    except Exception:
        jobs = plane = None
    finally:
        store.dispose()
    if jobs and plane and Path(jobs) == spool_dir() / plane:
        shutil.rmtree(jobs, ignore_errors=True)
    shutil.rmtree(cfg.data_dir)
    if plane and isolating():
        UidRegistry(plane, cfg.data_dir).release()


def jobs_root(cfg: ControlConfig, store: Store) -> Path:
    with store.connect() as conn:
        recorded = get_meta(conn, "jobs_dir")
    return Path(recorded) if recorded else cfg.data_dir / "jobs"


def reachable_by_all(path: Path) -> Path | None:
    """The first directory on the way to ``path`` that other users may not pass through, or None."""
    for part in [*reversed(path.parents), path]:
        try:
            mode = part.stat().st_mode
        except FileNotFoundError:
            return None
        if not mode & stat.S_IXOTH:
            return part
    return None


def init_control(
    cfg: ControlConfig,
    *,
    site: str | None = None,
    executor: str | None = None,
    profile: str | None = None,
    tenants: list[Tenant] | None = None,
    topology: Topology | None = None,
    kill_wait_s: float | None = None,
    network: Network | None = None,
) -> Store:
    """Open (and on first use set up) the store. Returns it; the first admin token is in ``cfg.admin_token_file``.

    ``site``, ``executor`` and ``profile`` are set at the first start (None: :data:`DEFAULTS`); later, None keeps
    what the store has, and anything else must agree with it. ``topology`` overrides ``site`` (the Slurm executor
    reads the site from the cluster). ``kill_wait_s`` (how long a stopped job has between SIGTERM and SIGKILL, like
    Slurm's ``KillWait``) may be changed at any start.

    ``network`` serves several sites (``serve --network FILE.toml``): each is saved at the first start with its
    country, energy figures and executor; a later start may name the same network again (or nothing), not another.
    """
    if kill_wait_s is not None and not 0 <= kill_wait_s <= 3600:
        raise ConfigError(f"--kill-wait {kill_wait_s:g}: between 0 and 3600 seconds")
    if executor is not None and executor not in EXECUTORS:
        raise ConfigError(f"--executor {executor!r}; known: {', '.join(EXECUTORS)}")
    if profile is not None:
        parse_profile(profile)  # a bad profile is an error now, not when the daemon starts
    if network is not None and site is not None:
        raise ConfigError("give either --site or --network, not both")
    store = cfg.open()
    with store.begin() as conn:
        stored = load_site(conn)
        if network is not None:
            _save_network(conn, network, executor or get_meta(conn, "executor") or DEFAULTS["executor"])
        elif stored is None:
            if topology is None and (executor or get_meta(conn, "executor")) == "slurm":
                from gigafactory.control.executors.slurm import site_from_slurm

                topology = site_from_slurm()
                site = site or f"slurm:{topology.name}"
            spec = site or DEFAULTS["site"]
            save_site(conn, topology if topology is not None else build_site(spec), spec)
        elif site is not None and get_meta(conn, "network") is not None:
            names = ", ".join(x.name for x in load_sites(conn))
            raise ConfigError(
                f"this store already holds site 'a network of {len(names.split(', '))} sites' ({names}); "
                "start it without --site"
            )
        elif site is not None and site != stored[0]:
            raise ConfigError(f"this store already holds site {stored[0]!r}; it cannot become {site!r}")
        if get_meta(conn, "plane_id") is None:
            # Names this control plane's work where others may see it (Slurm job names on a shared cluster).
            set_meta(conn, "plane_id", secrets.token_hex(3))
        jobs = str(cfg.jobs_dir) if cfg.jobs_dir is not None else None
        if jobs is None and get_meta(conn, "jobs_dir") is None and isolating():
            jobs = str(spool_dir() / str(get_meta(conn, "plane_id")))  # where the tenants' uids can reach them
        for key, value in (("executor", executor), ("profile", profile), ("jobs_dir", jobs)):
            have = get_meta(conn, key)
            if have is None:
                if value is not None or key in DEFAULTS:
                    set_meta(conn, key, value or DEFAULTS[key])
            elif value is not None and have != value:
                raise ConfigError(f"this store runs with {key} {have!r}; it cannot switch to {value!r}")
        if kill_wait_s is not None:
            set_meta(conn, "kill_wait_s", f"{kill_wait_s:g}")
        capacity = sum(x.topology.num_gpus for x in load_sites(conn))
        uids = accounts.registry(conn, cfg.data_dir)
        for t in tenants or ():
            if conn.execute(select(tenants_table.c.name).where(tenants_table.c.name == t.name)).first() is None:
                accounts.put_tenant(conn, t, capacity_gpus=capacity, uids=uids)
        accounts.assign_uids(conn, uids)
        has_admin = conn.execute(select(tokens.c.id).where(tokens.c.role == "admin")).first() is not None
        if not has_admin or not cfg.admin_token_file.exists():
            _, secret = accounts.create_token(conn, role="admin", tenant=None, name="first admin")
            write_secret(cfg.admin_token_file, secret)
    return store


def _save_network(conn: Connection, network: Network, executor: str) -> None:
    """Save the network's sites, or check that the store holds exactly these."""
    held = {x.name: x for x in load_sites(conn)}
    if held and set(held) != set(network.names):
        raise ConfigError(
            f"this store serves {', '.join(held)}; the network file names {', '.join(network.names)}: "
            "a network's sites are fixed at its first start"
        )
    for spec in network.sites:
        kind = spec.executor.get("kind", executor)
        if kind not in EXECUTORS:
            raise ConfigError(f"site {spec.name}: executor kind {kind!r}; known: {', '.join(EXECUTORS)}")
        if spec.name in held:
            want = SLURM_PRESET if kind == "slurm" else spec.preset
            if held[spec.name].spec != want:
                raise ConfigError(f"this store's site {spec.name!r} is {held[spec.name].spec!r}; it cannot become "
                                  f"{want!r}")  # fmt: skip
            continue
        if kind == "slurm":
            # A Slurm site's nodes are the cluster's, by the names Slurm knows them by.
            from gigafactory.control.executors.slurm import site_from_slurm

            conf = spec.executor.get("conf")
            spec = replace(spec, preset=SLURM_PRESET).on(site_from_slurm(spec.name, conf=str(conf) if conf else None))
        site_id = save_site(conn, spec.topology, spec.preset, spec)
        for node in range(spec.powered_nodes(), spec.topology.num_nodes):
            set_node_state(conn, site_id, node, "drained", "power cap")  # more than the grid connection feeds
    set_meta(conn, "network", network.name)
    set_meta(conn, "route", network.route)


def read_network(spec: str) -> Network:
    """A network preset by name, or a network TOML file by path (``serve --network``)."""
    return load_network(spec, lambda path: Path(path).read_text(encoding="utf-8"))


def write_secret(path: Path, secret: str) -> None:
    """Write a token readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    tmp.replace(path)
