"""A network of sites: each a topology preset somewhere in the EU, with its electricity price, carbon intensity,
PUE and power cap.

Defined in TOML (``network_from_toml``) or by a preset (``eu-2030``; :mod:`gigafactory.network.presets`)::

    name = "two-sites"
    route = "earliest-start"            # the default route policy (optional)

    [[site]]
    name = "de-1"
    preset = "hgx-h100:nodes=16"        # any site preset (``gigafactory sites``)
    country = "DE"                      # ISO 3166-1 alpha-2 code of an EU member state
    price_eur_mwh = 160                 # electricity, EUR per MWh
    carbon_g_kwh = 380                  # gCO2e per kWh of electricity
    pue = 1.2                           # power usage effectiveness, >= 1
    power_cap_mw = 2.5                  # optional: the facility's grid connection, MW

Every value is checked before anything is built, and errors name the site, the key and what is allowed.
Pure: text in, values out; reading the file is the caller's.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from gigafactory.core.errors import ConfigError
from gigafactory.core.hardware import system_watts
from gigafactory.core.presets import build_site
from gigafactory.core.topology import Topology

__all__ = ["EU_MEMBER_STATES", "Network", "SiteSpec", "load_network", "network_from_table", "network_from_toml"]

EU_MEMBER_STATES = {
    "AT": "Austria", "BE": "Belgium", "BG": "Bulgaria", "HR": "Croatia", "CY": "Cyprus", "CZ": "Czechia",
    "DK": "Denmark", "EE": "Estonia", "FI": "Finland", "FR": "France", "DE": "Germany", "GR": "Greece",
    "HU": "Hungary", "IE": "Ireland", "IT": "Italy", "LV": "Latvia", "LT": "Lithuania", "LU": "Luxembourg",
    "MT": "Malta", "NL": "Netherlands", "PL": "Poland", "PT": "Portugal", "RO": "Romania", "SK": "Slovakia",
    "SI": "Slovenia", "ES": "Spain", "SE": "Sweden",
}  # fmt: skip

_SITE_KEYS = {"name", "preset", "country", "price_eur_mwh", "carbon_g_kwh", "pue", "power_cap_mw", "executor", "source"}
_NET_KEYS = {"name", "route", "site"}
MAX_SITES = 64
SLURM_PRESET = "slurm"  # a Slurm site's "preset": its nodes are read from its cluster
EXECUTOR_KINDS = ("local", "slurm")


@dataclass(frozen=True)
class SiteSpec:
    name: str
    preset: str
    country: str
    price_eur_mwh: float
    carbon_g_kwh: float
    pue: float
    power_cap_mw: float | None = None
    source: str = ""  # where the figures come from
    executor: Mapping[str, Any] = field(default_factory=dict)  # the control plane's, e.g. {kind = "slurm"}

    @cached_property
    def topology(self) -> Topology:
        if self.preset == SLURM_PRESET:
            raise ConfigError(
                f"site {self.name} is a Slurm cluster without a preset: its nodes are known once the control plane "
                "reads them; give it a preset to simulate it"
            )
        return build_site(self.preset)

    def on(self, topo: Topology) -> SiteSpec:
        """This site on a topology given, not built from ``preset`` (the control plane's, read from its store or
        its Slurm cluster)."""
        self.__dict__["topology"] = topo  # fills the cached property
        return self

    def full_power_mw(self) -> float:
        """Facility power with every GPU busy: Σ system power per GPU × PUE."""
        topo = self.topology
        watts = sum(float(topo.node_gpus[topo.node_model == m].sum()) * system_watts(name)
                    for m, name in enumerate(topo.models))  # fmt: skip
        return watts * self.pue / 1e6

    def powered_nodes(self) -> int:
        """How many nodes (in order) the power cap lets run at full load; all of them without a cap."""
        topo = self.topology
        if self.power_cap_mw is None or self.full_power_mw() <= self.power_cap_mw:
            return topo.num_nodes
        per_node = [
            float(topo.node_gpus[n]) * system_watts(topo.models[int(topo.node_model[n])]) * self.pue / 1e6
            for n in range(topo.num_nodes)
        ]
        total, k = 0.0, 0
        while k < len(per_node) and total + per_node[k] <= self.power_cap_mw:
            total += per_node[k]
            k += 1
        return k


@dataclass(frozen=True)
class Network:
    name: str
    sites: tuple[SiteSpec, ...]
    route: str = "earliest-start"

    def __post_init__(self) -> None:
        if not self.sites:
            raise ConfigError(f"network {self.name!r} has no sites; give at least one [[site]]")
        seen: dict[str, int] = {}
        for k, s in enumerate(self.sites):
            if s.name in seen:
                raise ConfigError(
                    f"network {self.name!r}: sites {seen[s.name] + 1} and {k + 1} share the name {s.name!r}"
                )
            seen[s.name] = k

    def site(self, name: str) -> SiteSpec:
        for s in self.sites:
            if s.name == name:
                return s
        raise ConfigError(f"unknown site {name!r}; the network has {', '.join(s.name for s in self.sites)}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.sites)

    @property
    def num_gpus(self) -> int:
        return sum(s.topology.num_gpus for s in self.sites)

    @cached_property
    def topology(self) -> Topology:
        """Every site's nodes side by side, as one topology: what a workload for the whole network is drawn on."""
        topos = [s.topology for s in self.sites]
        models = tuple(dict.fromkeys(m for t in topos for m in t.models))
        cols: dict[str, list[np.ndarray]] = {k: [] for k in ("model", "gpus", "cpu", "mem", "domain", "pod")}
        domains = pods = 0
        for t in topos:
            remap = np.array([models.index(m) for m in t.models], np.int64)
            cols["model"].append(remap[t.node_model])
            cols["gpus"].append(t.node_gpus)
            cols["cpu"].append(t.node_cpu)
            cols["mem"].append(t.node_mem)
            cols["domain"].append(t.node_domain + domains)
            cols["pod"].append(t.node_pod + pods)
            domains += int(t.node_domain[-1]) + 1
            pods += int(t.node_pod[-1]) + 1
        return Topology.from_columns(
            self.name,
            models=models,
            node_model=np.concatenate(cols["model"]),
            node_gpus=np.concatenate(cols["gpus"]),
            node_cpu=np.concatenate(cols["cpu"]),
            node_mem=np.concatenate(cols["mem"]),
            node_domain=np.concatenate(cols["domain"]),
            node_pod=np.concatenate(cols["pod"]),
            node_names=tuple(f"{s.name}/{n}" for s, t in zip(self.sites, topos, strict=True) for n in t.node_names),
        )

    @property
    def largest_site_gpus(self) -> int:
        return max(s.topology.num_gpus for s in self.sites)


def _number(where: str, key: str, value: object, *, minimum: float, inclusive: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{where}: {key} = {value!r} must be a number")
    if value < minimum or (not inclusive and value == minimum):
        bound = f"at least {minimum:g}" if inclusive else f"greater than {minimum:g}"
        raise ConfigError(f"{where}: {key} = {value!r} must be {bound}")
    return float(value)


def site_from_table(table: Mapping[str, Any], where: str) -> SiteSpec:
    unknown = sorted(set(table) - _SITE_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(sorted(_SITE_KEYS))}")
    executor = table.get("executor", {})
    if not isinstance(executor, Mapping):
        raise ConfigError(f'{where}: executor must be a table, e.g. {{ kind = "local" }}')
    slurm = executor.get("kind") == "slurm"  # its nodes come from the cluster: no preset needed
    for key in ("name", "preset", "country", "price_eur_mwh", "carbon_g_kwh", "pue"):
        if key not in table and not (key == "preset" and slurm):
            raise ConfigError(f"{where}: {key} is missing")
    name = table["name"]
    if not isinstance(name, str) or not name or len(name) > 64 or not all(c.isalnum() or c in "-_." for c in name):
        raise ConfigError(f"{where}: name = {name!r} must be 1-64 letters, digits, '-', '_' or '.'")
    where = f"{where} ({name})"
    country = table["country"]
    if not isinstance(country, str) or country.upper() not in EU_MEMBER_STATES:
        raise ConfigError(f"{where}: country = {country!r} is not an EU member state; give its ISO code, e.g. DE")
    preset = table.get("preset", SLURM_PRESET)
    if not isinstance(preset, str):
        raise ConfigError(f"{where}: preset = {preset!r} must be a site preset string, e.g. hgx-h100:nodes=16")
    kind = executor.get("kind", "local")
    if kind not in EXECUTOR_KINDS:
        raise ConfigError(f"{where}: executor kind = {kind!r}; known: {', '.join(EXECUTOR_KINDS)}")
    if slurm and not isinstance(executor.get("conf", ""), str):
        raise ConfigError(f"{where}: executor.conf must be the path of the cluster's slurm.conf")
    cap = table.get("power_cap_mw")
    spec = SiteSpec(
        name=name,
        preset=preset,
        country=country.upper(),
        price_eur_mwh=_number(where, "price_eur_mwh", table["price_eur_mwh"], minimum=0.0),
        carbon_g_kwh=_number(where, "carbon_g_kwh", table["carbon_g_kwh"], minimum=0.0),
        pue=_number(where, "pue", table["pue"], minimum=1.0),
        power_cap_mw=None if cap is None else _number(where, "power_cap_mw", cap, minimum=0.0, inclusive=False),
        source=str(table.get("source", "")),
        executor=dict(executor),
    )
    if preset == SLURM_PRESET:
        return spec  # its nodes are read from its cluster when the control plane first starts
    try:
        spec.topology  # noqa: B018  (build it now: a bad preset fails here, naming the site)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    if spec.powered_nodes() == 0:
        raise ConfigError(f"{where}: power_cap_mw = {cap} cannot run even one node at full load")
    return spec


def network_from_table(data: Mapping[str, Any], where: str = "network") -> Network:
    unknown = sorted(set(data) - _NET_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(sorted(_NET_KEYS))}")
    sites = data.get("site", [])
    if not isinstance(sites, list) or not all(isinstance(s, Mapping) for s in sites):
        raise ConfigError(f"{where}: sites are [[site]] tables (an array of tables named site)")
    if not sites:
        raise ConfigError(f"{where}: the network is empty; give at least one [[site]] table")
    if len(sites) > MAX_SITES:
        raise ConfigError(f"{where}: {len(sites)} sites is more than {MAX_SITES}")
    name = data.get("name", "network")
    if not isinstance(name, str):
        raise ConfigError(f"{where}: name = {name!r} must be a string")
    route = data.get("route", "earliest-start")
    if not isinstance(route, str):
        raise ConfigError(f"{where}: route = {route!r} must be a route policy, e.g. earliest-start")
    from gigafactory.policy.profile import parse_route

    try:
        parse_route(route)
    except ConfigError as exc:
        raise ConfigError(f"{where}: route: {exc}") from exc
    names = [s.get("name") for s in sites]
    for k, n in enumerate(names):
        if n in names[:k]:
            raise ConfigError(f"{where}: sites {names.index(n) + 1} and {k + 1} share the name {n!r}")
    specs = tuple(site_from_table(s, f"{where}: site {k + 1}") for k, s in enumerate(sites))
    try:
        return Network(name, specs, route)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def network_from_toml(text: str, where: str) -> Network:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc}") from exc
    return network_from_table(data, where)


def load_network(spec: str, read: Callable[[str], str]) -> Network:
    """A network preset by name, or a network TOML file by path, read with ``read`` (the caller's I/O: this module
    does none). ``read`` raises OSError or UnicodeDecodeError for a file it cannot read."""
    from gigafactory.network.presets import NETWORK_PRESETS, network_preset

    if spec in NETWORK_PRESETS:
        return network_preset(spec)
    if not spec.endswith(".toml"):
        presets = ", ".join(NETWORK_PRESETS.names())
        raise ConfigError(f"unknown network {spec!r}: give a preset ({presets}) or a .toml file")
    try:
        text = read(spec)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{spec}: cannot read the network file ({getattr(exc, 'strerror', None) or exc})") from exc
    return network_from_toml(text, spec)
