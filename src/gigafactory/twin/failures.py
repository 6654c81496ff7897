"""Hardware and software failures: what breaks, how often, and how long it takes to repair.

A :class:`FailureModel` is a set of component classes, each a Poisson process with a rate per GPU-hour (or per
node-day) over the whole site, and a repair time; plus optional whole-domain failures (a GB200 NVL72 rack's
NVLink backplane takes all 18 of its nodes down for 8–24 h) and optional hot spares per pod.

A failure lands on one node, chosen in proportion to its GPUs (for per-GPU rates) or uniformly (per-node
rates). A node that is already down does not fail again. A class with zero repair time (a software bug) kills
the jobs on the node and leaves the node up.

Presets (``--failures``; add ``:rack_per_day=R,rack_repair_h=8-24,spares=K`` for whole-rack failures and hot
spares):

* ``none``;
* ``llama3``: Llama 3 405B's 419 unexpected interruptions in 54 days on 16,384 H100s (Meta 2024, Table 5),
  grouped by component class: 1.97e-5 per GPU-hour in all;
* ``rsc1``: Meta's RSC-1 cluster, 6.50 failures per 1,000 node-days (Kokolis et al., HPCA 2025);
* ``FILE.toml``: your own, e.g.::

      name = "my-site"
      spares_per_pod = 1
      [[class]]
      name = "gpu"
      per_gpu_hour = 1.2e-5
      repair_h = 6
      [[class]]
      name = "node"
      per_node_day = 0.002
      repair_h = 4
      [domain]
      per_domain_day = 0.001
      repair_h = [8, 24]

Repair times are log-normal around ``repair_h`` (sigma 0.5), or uniform over ``[low, high]`` when a pair is given.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gigafactory.core.errors import ConfigError
from gigafactory.core.spec import Param, bind_params, parse_spec
from gigafactory.core.topology import Topology

__all__ = ["FAILURE_PRESETS", "FailureClass", "FailureModel", "FailureStream", "load_failures"]

HOUR = 3600.0
DAY = 86_400.0


@dataclass(frozen=True)
class FailureClass:
    name: str
    per_gpu_hour: float = 0.0
    per_node_day: float = 0.0
    repair_h: float | tuple[float, float] = 4.0

    def site_rate_per_s(self, topo: Topology) -> float:
        return self.per_gpu_hour * topo.num_gpus / HOUR + self.per_node_day * topo.num_nodes / DAY

    def repair_s(self, rng: np.random.Generator) -> float:
        if isinstance(self.repair_h, tuple):
            lo, hi = self.repair_h
            return float(rng.uniform(lo, hi)) * HOUR
        if self.repair_h <= 0:
            return 0.0
        return float(self.repair_h * math.exp(0.5 * rng.standard_normal())) * HOUR


@dataclass(frozen=True)
class FailureModel:
    name: str
    classes: tuple[FailureClass, ...] = ()
    domain: FailureClass | None = None  # whole NVLink domains (racks); per_node_day is read per domain-day
    spares_per_pod: int = 0

    @property
    def enabled(self) -> bool:
        return bool(self.classes) or self.domain is not None

    def node_rate_per_s(self, topo: Topology, gpus_per_node: int) -> float:
        """Failure rate of one node of ``gpus_per_node`` GPUs (for Young-Daly), domain failures included."""
        rate = sum(c.per_gpu_hour * gpus_per_node / HOUR + c.per_node_day / DAY for c in self.classes)
        if self.domain is not None:
            rate += self.domain.per_node_day / DAY  # a node shares its domain's failures
        return rate

    def stream(self, topo: Topology, seed: int) -> FailureStream:
        return FailureStream(self, topo, seed)


@dataclass(frozen=True)
class Failure:
    time: float
    nodes: tuple[int, ...]
    kind: str
    repair_s: float


@dataclass
class FailureStream:
    """Failures in time order, drawn lazily: one merged Poisson process over every class and the domains."""

    model: FailureModel
    topo: Topology
    seed: int
    _rng: np.random.Generator = field(init=False)
    _rates: np.ndarray = field(init=False)
    _kinds: list[FailureClass] = field(init=False)
    _weights: dict[str, np.ndarray] = field(init=False)
    _multi_domains: np.ndarray = field(init=False)
    _t: float = 0.0

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng([self.seed, 0xFA11])
        topo = self.topo
        kinds = list(self.model.classes)
        rates = [c.site_rate_per_s(topo) for c in kinds]
        sizes = np.diff(topo.domain_start)
        self._multi_domains = np.flatnonzero(sizes > 1)
        if self.model.domain is not None and self._multi_domains.size:
            kinds.append(self.model.domain)
            rates.append(self.model.domain.per_node_day * self._multi_domains.size / DAY)
        self._kinds = kinds
        self._rates = np.asarray(rates, dtype=np.float64)
        gpus = topo.node_gpus.astype(np.float64)
        self._weights = {
            "gpu": gpus / gpus.sum() if gpus.sum() else np.full(topo.num_nodes, 1 / topo.num_nodes),
            "node": np.full(topo.num_nodes, 1 / topo.num_nodes),
        }

    def __iter__(self) -> Iterator[Failure]:
        total = float(self._rates.sum())
        if total <= 0:
            return
        rng = self._rng
        probs = self._rates / total
        topo = self.topo
        cdfs = {key: _cdf(w) for key, w in self._weights.items()}  # rng.choice(n, p=w) made them at every draw
        while True:
            self._t += float(rng.exponential(1.0 / total))
            k = int(rng.choice(len(self._kinds), p=probs)) if len(self._kinds) > 1 else 0
            kind = self._kinds[k]
            if kind is self.model.domain:
                d = int(self._multi_domains[rng.integers(self._multi_domains.size)])
                nodes = tuple(range(int(topo.domain_start[d]), int(topo.domain_start[d + 1])))
                yield Failure(self._t, nodes, f"{kind.name} (whole domain)", kind.repair_s(rng))
                continue
            node = _draw(rng, cdfs["gpu" if kind.per_gpu_hour > 0 else "node"])
            yield Failure(self._t, (node,), kind.name, kind.repair_s(rng))


def _cdf(p: np.ndarray) -> np.ndarray:
    """The cumulative distribution ``Generator.choice(n, p=p)`` draws from."""
    cdf = p.cumsum()
    cdf /= cdf[-1]
    return cdf


def _draw(rng: np.random.Generator, cdf: np.ndarray) -> int:
    """``rng.choice(len(cdf), p=p)`` for ``cdf = _cdf(p)``: the same one uniform draw, the same index."""
    return int(cdf.searchsorted(rng.random(), side="right"))


# Llama 3 405B, Table 5 (419 unexpected interruptions, 54 days, 16,384 GPUs), grouped by component class.
_LLAMA_GPU_HOURS = 16_384 * 54 * 24
LLAMA3 = FailureModel(
    "llama3",
    (
        # faulty GPU 148, SRAM 19, GPU system processor 17, thermal/sensor 6, silent data corruption 6
        FailureClass("gpu", per_gpu_hour=196 / _LLAMA_GPU_HOURS, repair_h=6.0),
        # HBM3 72, system memory 2
        FailureClass("memory", per_gpu_hour=74 / _LLAMA_GPU_HOURS, repair_h=6.0),
        # network switch or cable 35, NIC 7, NCCL watchdog 7
        FailureClass("network", per_gpu_hour=49 / _LLAMA_GPU_HOURS, repair_h=2.0),
        # host maintenance 32, SSD 3, power supply 3, chassis, IO board, dependency, CPU 2 each
        FailureClass("host", per_gpu_hour=46 / _LLAMA_GPU_HOURS, repair_h=4.0),
        # software bug 54: the job dies, the node stays up
        FailureClass("software", per_gpu_hour=54 / _LLAMA_GPU_HOURS, repair_h=0.0),
    ),
)
RSC1 = FailureModel("rsc1", (FailureClass("node", per_node_day=6.50 / 1000, repair_h=4.0),))
FAILURE_PRESETS = {"none": FailureModel("none"), "llama3": LLAMA3, "rsc1": RSC1}


def _class_from(path: Path, raw: dict[str, Any], where: str) -> FailureClass:
    allowed = {"name", "per_gpu_hour", "per_node_day", "per_domain_day", "repair_h"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(f"{path}: {where} has unknown key {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}")
    name = raw.get("name", where)
    rates = {}
    for key in ("per_gpu_hour", "per_node_day", "per_domain_day"):
        v = raw.get(key, 0.0)
        if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0 or not math.isfinite(v):
            raise ConfigError(f"{path}: {where} {key} = {v!r} must be a number of at least 0")
        rates[key] = float(v)
    repair = raw.get("repair_h", 4.0)
    if isinstance(repair, list):
        if len(repair) != 2 or not all(isinstance(x, (int, float)) and x >= 0 for x in repair) or repair[0] > repair[1]:
            raise ConfigError(f"{path}: {where} repair_h = {repair!r} must be [low, high] hours")
        repair_h: float | tuple[float, float] = (float(repair[0]), float(repair[1]))
    elif isinstance(repair, (int, float)) and not isinstance(repair, bool) and repair >= 0:
        repair_h = float(repair)
    else:
        raise ConfigError(f"{path}: {where} repair_h = {repair!r} must be hours (at least 0) or [low, high]")
    return FailureClass(str(name), rates["per_gpu_hour"], rates["per_node_day"] + rates["per_domain_day"], repair_h)


SPEC_PARAMS = {
    "rack_per_day": Param(float, 0.0, minimum=0.0, help="whole-domain (rack) failures per domain-day"),
    "rack_repair_h": Param(str, "8-24", help="rack repair time in hours, low-high"),
    "spares": Param(int, 0, minimum=0, help="hot spare nodes per pod"),
}


def load_failures(spec: str) -> FailureModel:
    """``none``, ``llama3``, ``rsc1`` (each optionally ``:rack_per_day=R,rack_repair_h=8-24,spares=K``), or the
    path of a TOML file."""
    if not spec.endswith(".toml"):
        parsed = parse_spec(spec, what="failure model")
        if parsed.name not in FAILURE_PRESETS:
            raise ConfigError(
                f"unknown failure model {parsed.name!r}; known: {', '.join(FAILURE_PRESETS)}, or a FILE.toml"
            )
        model = FAILURE_PRESETS[parsed.name]
        if not parsed.params:
            return model
        opts = bind_params(f"failure model {parsed.name}", SPEC_PARAMS, parsed.params)
        lo, dash, hi = str(opts["rack_repair_h"]).partition("-")
        try:
            repair = (float(lo), float(hi if dash else lo))
        except ValueError:
            raise ConfigError(
                f"failure model: rack_repair_h={opts['rack_repair_h']!r} must be hours like 8-24"
            ) from None
        if repair[0] < 0 or repair[1] < repair[0]:
            raise ConfigError(f"failure model: rack_repair_h={opts['rack_repair_h']!r} must be low-high hours")
        domain = (
            FailureClass("rack", per_node_day=opts["rack_per_day"], repair_h=repair) if opts["rack_per_day"] else None
        )
        return FailureModel(str(parsed), model.classes, domain or model.domain, opts["spares"])
    path = Path(spec)
    if path.suffix != ".toml":
        raise ConfigError(f"unknown failure model {spec!r}; known: {', '.join(FAILURE_PRESETS)}, or a FILE.toml")
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the failure model ({exc.strerror})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    allowed = {"name", "class", "domain", "spares_per_pod"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigError(f"{path}: unknown key {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}")
    classes_raw = data.get("class", [])
    if not isinstance(classes_raw, list) or not all(isinstance(c, dict) for c in classes_raw):
        raise ConfigError(f"{path}: [[class]] must be a list of tables")
    classes = tuple(_class_from(path, c, f"class {i + 1}") for i, c in enumerate(classes_raw))
    domain = None
    if "domain" in data:
        if not isinstance(data["domain"], dict):
            raise ConfigError(f"{path}: [domain] must be a table")
        domain = _class_from(path, {"name": "domain", **data["domain"]}, "domain")
    spares = data.get("spares_per_pod", 0)
    if not isinstance(spares, int) or isinstance(spares, bool) or spares < 0:
        raise ConfigError(f"{path}: spares_per_pod = {spares!r} must be a whole number of at least 0")
    return FailureModel(str(data.get("name", path.stem)), classes, domain, spares)
