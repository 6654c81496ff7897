"""Experiments: site + workload + policy profile + seeds, from a TOML file or from flags.

An experiment file::

    site = "gb200-nvl72:racks=1389"
    workload = "llm:load=0.85,tenants=10"
    days = 30
    seeds = [1, 2, 3]            # or: seed = 1
    policy = "fifo+easy+topology" # or a [policy] table: order = "fifo", backfill = {name = "easy", depth = 50}
    out = "out/my-experiment"    # optional; the command line's --out wins

or, for a network of sites instead of one site::

    network = "eu-2030"          # a preset, or a network TOML file
    route = "earliest-start"     # optional: the network's own by default
    residency = 0.2              # optional: the share of jobs kept in their tenant's home country

and ``window = "2:14"`` sets the steady-state window (days after the first submission) instead of finding it.

Every value is checked before anything runs, and errors name the file, the key and what is allowed.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from gigafactory.core.errors import ConfigError
from gigafactory.core.presets import build_site
from gigafactory.core.spec import Spec, parse_spec
from gigafactory.core.tenants import TenantTree
from gigafactory.network import Network, load_network
from gigafactory.policy.profile import Profile, parse_profile, parse_route, profile_from_table
from gigafactory.twin.failures import load_failures
from gigafactory.twin.network_sim import NetworkResult, NetworkSimulation, Restriction
from gigafactory.twin.programme import parse_programme, programme_awards
from gigafactory.twin.sim import Progress, SimResult, Simulation
from gigafactory.twin.tenants_file import load_tenants, tenants_from_table
from gigafactory.twin.windows import parse_window
from gigafactory.twin.workloads import load_workload

__all__ = ["Experiment", "home_countries", "load_experiment", "read_network", "run_network", "run_one"]

_KEYS = {
    "site", "workload", "policy", "days", "seed", "seeds", "out", "validate", "name", "failures", "horizon_days",
    "tenants", "tenant", "network", "route", "residency", "programme", "window",
}  # fmt: skip


@dataclass(frozen=True)
class Experiment:
    site: str = "gb200-nvl72:racks=1389"
    workload: str = "llm"
    policy: str | Mapping[str, Any] = "default"
    days: float = 30.0
    seeds: tuple[int, ...] = (1,)
    out: str | None = None
    validate: bool = False
    name: str = ""
    failures: str = "none"
    horizon_days: float | None = None  # stop the clock here; None: run until every job has ended
    skip_bad_rows: bool = False
    tenants: str | None = None  # a tenant TOML file; None: the workload's own tenants
    tenant_table: tuple[Any, ...] | None = None  # [[tenant]] tables written in the experiment file itself
    network: str | None = None  # a network preset or TOML file: then ``site`` is unused
    route: str | None = None  # the route policy; None: the network's own
    residency: float = 0.0  # share of jobs that may run only in their tenant's home country
    programme: str | None = None  # an access programme's calls and awards (twin/programme.py), e.g. "calls=4"
    window: str | None = None  # the steady-state window, "FROM:TO" in days; None: found (twin/windows.py)
    extra: dict[str, Any] = field(default_factory=dict)

    def profile(self) -> Profile:
        if isinstance(self.policy, str):
            return parse_profile(self.policy)
        return profile_from_table(self.policy)

    def check(self) -> None:
        """Validate everything that can be validated without running: a bad value fails before any work."""
        if not self.days > 0:
            raise ConfigError(f"days={self.days} must be greater than 0")
        if not self.seeds:
            raise ConfigError("seeds must list at least one seed")
        for s in self.seeds:
            if s < 0:
                raise ConfigError(f"seed={s} must not be negative")
        if len(set(self.seeds)) != len(self.seeds):
            dup = next(s for s in self.seeds if self.seeds.count(s) > 1)
            raise ConfigError(f"seed {dup} is given twice; each seed is one run")
        if self.horizon_days is not None and not self.horizon_days > 0:
            raise ConfigError(f"horizon_days={self.horizon_days} must be greater than 0")
        self.profile()
        self.window_days()
        if not 0.0 <= self.residency <= 1.0:
            raise ConfigError(f"residency={self.residency} must be a share between 0 and 1")
        if self.network is not None:
            net = read_network(self.network)
            parse_route(self.route or net.route)
            gpus = net.largest_site_gpus
        else:
            if self.route is not None or self.residency:
                raise ConfigError("route and residency apply to a network: give --network too")
            gpus = build_site(self.site).num_gpus
        load_failures(self.failures)
        if self.programme is not None:
            if self.network is not None:
                raise ConfigError("programme: the twin replays an access programme on one site, not a network")
            parse_programme(self.programme, self.days)
        tree = self.tenant_tree()
        if tree is not None:
            tree.check_capacity(gpus)

    def window_days(self) -> tuple[float, float] | None:
        if self.window is None:
            return None
        a, b = parse_window(self.window)
        if self.horizon_days is not None and b > self.horizon_days:
            raise ConfigError(f"window {self.window!r} ends after the horizon, day {self.horizon_days:g}")
        return a, b

    def tenant_tree(self) -> TenantTree | None:
        if self.tenant_table is not None:
            return tenants_from_table(list(self.tenant_table), "[[tenant]]")
        if self.tenants is not None:
            return load_tenants(self.tenants)
        return None

    def with_overrides(self, **values: Any) -> Experiment:
        return replace(self, **{k: v for k, v in values.items() if v is not None})


def load_experiment(path: Path) -> Experiment:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the experiment file ({exc.strerror})") from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    section = data.get("experiment", data)
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: [experiment] must be a table")
    unknown = sorted(set(section) - _KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown key {unknown[0]!r}; allowed: {', '.join(sorted(_KEYS))}")

    def get(key: str, kind: type | tuple[type, ...]) -> Any:
        value = section.get(key)
        if value is not None and not isinstance(value, kind):
            nouns = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false",
                     "list": "a list", "dict": "a table"}  # fmt: skip
            kinds = [kind] if isinstance(kind, type) else list(kind)
            if float in kinds and int in kinds:
                kinds.remove(int)  # a number, whole or not
            names = " or ".join(nouns.get(k.__name__, k.__name__) for k in kinds)
            raise ConfigError(f"{path}: {key} = {value!r} must be {names}")
        return value

    seeds: tuple[int, ...] | None = None
    if "seeds" in section and "seed" in section:
        raise ConfigError(f"{path}: give either seed or seeds, not both")
    if "network" in section and "site" in section:
        raise ConfigError(f"{path}: give either site or network, not both (a network's sites come with it)")
    if (v := get("seeds", list)) is not None:
        if not all(isinstance(s, int) and not isinstance(s, bool) for s in v):
            raise ConfigError(f"{path}: seeds must be a list of whole numbers")
        seeds = tuple(v)
    elif (v := get("seed", int)) is not None:
        seeds = (v,)
    days = get("days", (int, float))
    horizon = get("horizon_days", (int, float))
    table = section.get("tenant")
    exp = Experiment().with_overrides(
        tenants=get("tenants", str),
        tenant_table=tuple(table) if isinstance(table, list) else (None if table is None else table),
        failures=get("failures", str),
        horizon_days=None if horizon is None else float(horizon),
        site=get("site", str),
        workload=get("workload", str),
        policy=get("policy", (str, dict)),
        days=None if days is None else float(days),
        seeds=seeds,
        out=get("out", str),
        validate=get("validate", bool),
        name=get("name", str),
        network=get("network", str),
        route=get("route", str),
        residency=None if (r := get("residency", (int, float))) is None else float(r),
        programme=get("programme", str),
        window=get("window", str),
    )
    try:
        exp.check()
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    return exp


def run_one(exp: Experiment, seed: int, *, progress: Progress | None = None, keep_log: bool = False) -> SimResult:
    topo = build_site(exp.site)
    workload, tenants = load_workload(exp.workload, topo, days=exp.days, seed=seed, skip_bad_rows=exp.skip_bad_rows)
    tree = exp.tenant_tree()
    if tree is not None:
        missing = sorted(set(workload.tenants) - set(tree.leaves()))
        if missing:
            leaves = ", ".join(tree.leaves())
            raise ConfigError(
                f"the workload's tenant {missing[0]!r} is not a leaf of the tenant tree; leaves: {leaves}"
            )
        tenants = tree
    sim = Simulation(
        topo,
        workload,
        exp.profile(),
        seed=seed,
        tenants=tenants,
        failures=load_failures(exp.failures),
        horizon_s=None if exp.horizon_days is None else exp.horizon_days * 86_400.0,
        validate=exp.validate,
        keep_log=keep_log,
        progress=progress,
        labels={"experiment": exp.name} if exp.name else None,
        awards=programme_awards(exp.programme, workload, exp.days) if exp.programme is not None else None,
        window_days=exp.window_days(),
    )
    result = sim.run()
    result.summary["days"] = exp.days
    result.summary["skipped_rows"] = workload.skipped_rows
    return result


def read_network(spec: str) -> Network:
    """A network preset by name, or a network TOML file by path."""
    return load_network(spec, lambda path: Path(path).read_text(encoding="utf-8"))


def home_countries(net: Network, tenants: tuple[str, ...], largest_job: int) -> dict[str, str]:
    """Each tenant's home country, for ``residency``: round-robin over the countries of the sites that can hold
    the workload's largest job (so a restricted job can always run somewhere), in the network's order."""
    big = [s.country for s in net.sites if s.topology.num_gpus >= largest_job] or [net.sites[0].country]
    homes = list(dict.fromkeys(big))
    return {t: homes[k % len(homes)] for k, t in enumerate(tenants)}


def run_network(exp: Experiment, seed: int, *, progress: Progress | None = None) -> NetworkResult:
    """Run ``exp`` on its network: one workload for the whole network, routed job by job."""
    assert exp.network is not None
    net = read_network(exp.network)
    spec = parse_spec(exp.workload, what="workload")
    if spec.name == "llm" and "max_gpus" not in spec.params:
        # Size classes follow the largest site, not the sum of the network: no job is sized for a site that
        # does not exist.
        spec = Spec(spec.name, {**spec.params, "max_gpus": str(max(1, net.largest_site_gpus // 6))})
    workload, tenants = load_workload(spec, net.topology, days=exp.days, seed=seed, skip_bad_rows=exp.skip_bad_rows)
    tree = exp.tenant_tree()
    if tree is not None:
        tenants = tree
    restrictions: list[Restriction | None] | None = None
    if exp.residency > 0:
        homes = home_countries(net, workload.tenants, int(workload.gpus.max()) if len(workload) else 1)
        rng = np.random.default_rng([seed, 0x5E5])
        pick = rng.random(len(workload)) < exp.residency
        names = workload.tenants
        restrictions = [
            (None, (homes[names[int(k)]],)) if p else None
            for p, k in zip(pick.tolist(), workload.tenant.tolist(), strict=True)
        ]
    sim = NetworkSimulation(
        net,
        workload,
        exp.profile(),
        exp.route,
        seed=seed,
        tenants=tenants,
        failures=load_failures(exp.failures),
        restrictions=restrictions,
        horizon_s=None if exp.horizon_days is None else exp.horizon_days * 86_400.0,
        validate=exp.validate,
        progress=progress,
    )
    result = sim.run()
    result.summary["days"] = exp.days
    result.summary["residency"] = exp.residency
    if exp.name:
        result.summary["experiment"] = exp.name
    return result
