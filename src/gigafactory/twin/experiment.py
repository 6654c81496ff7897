"""Experiments: site + workload + policy profile + seeds, from a TOML file or from flags.

An experiment file::

    site = "gb200-nvl72:racks=1389"
    workload = "llm:load=0.85,tenants=10"
    days = 30
    seeds = [1, 2, 3]            # or: seed = 1
    policy = "fifo+easy+topology" # or a [policy] table: order = "fifo", backfill = {name = "easy", depth = 50}
    out = "out/my-experiment"    # optional; the command line's --out wins

Every value is checked before anything runs, and errors name the file, the key and what is allowed.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from gigafactory.core.errors import ConfigError
from gigafactory.core.presets import build_site
from gigafactory.core.tenants import TenantTree
from gigafactory.policy.profile import Profile, parse_profile, profile_from_table
from gigafactory.twin.failures import load_failures
from gigafactory.twin.sim import Progress, SimResult, Simulation
from gigafactory.twin.tenants_file import load_tenants, tenants_from_table
from gigafactory.twin.workloads import load_workload

__all__ = ["Experiment", "load_experiment", "run_one"]

_KEYS = {
    "site", "workload", "policy", "days", "seed", "seeds", "out", "validate", "name", "failures", "horizon_days",
    "tenants", "tenant",
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
        if self.horizon_days is not None and not self.horizon_days > 0:
            raise ConfigError(f"horizon_days={self.horizon_days} must be greater than 0")
        self.profile()
        topo = build_site(self.site)
        load_failures(self.failures)
        tree = self.tenant_tree()
        if tree is not None:
            tree.check_capacity(topo.num_gpus)

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
            names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise ConfigError(f"{path}: {key} = {value!r} must be a {names}")
        return value

    seeds: tuple[int, ...] | None = None
    if "seeds" in section and "seed" in section:
        raise ConfigError(f"{path}: give either seed or seeds, not both")
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
    )
    try:
        exp.check()
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    return exp


def run_one(exp: Experiment, seed: int, *, progress: Progress | None = None, keep_log: bool = True) -> SimResult:
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
    )
    result = sim.run()
    result.summary["days"] = exp.days
    result.summary["skipped_rows"] = workload.skipped_rows
    return result
