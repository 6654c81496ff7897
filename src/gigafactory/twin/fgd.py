"""The FGD experiment (Weng et al., USENIX ATC'23), replayed on the project's own engine.

The Alibaba openb cluster (1,213 GPU nodes, 6,212 GPUs) is filled with pods in a fixed order until the GPU
requests reach 130% of its capacity. Pods never leave; a pod that fits nowhere fails and is dropped. After every
pod the GPU allocation and the fragmentation are recorded; the headline figure is the allocation ratio when
100% and 130% of the capacity has arrived, averaged over seeds. The method is ../shared/docs/fgd-experiment.md.

Each pod is submitted to a real :class:`~gigafactory.engine.Engine` as an ``immediate`` job under the profile
``fifo+none+<policy>``: the same engine, placement policies and capacity model as every other run.

Arrival orders come from the published runs (``--orders``) or, without them, are derived here from the seed:
sort by name, shuffle, tune to 1.3x (resample or drop), and draw the node tie-break ranks, all with numpy's
seeded generator (Go's ``math/rand`` stream is not reproduced; see the method document, §3.3).

A workload is a pod list in the data directory (``default``, ``gpushare40``) or a member of one of the paper's
families generated from the default trace with the run's seed (``family:multigpu=0.3``, :mod:`.fgd_family`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from gigafactory.core.errors import ConfigError
from gigafactory.core.events import JobSubmitted
from gigafactory.core.jobs import Job, JobId, JobRequest
from gigafactory.core.topology import Topology
from gigafactory.engine.engine import Engine
from gigafactory.policy.backfill.none import NoBackfill
from gigafactory.policy.base import PLACE
from gigafactory.policy.order.fifo import Fifo
from gigafactory.policy.place.fgd import NodeCounts
from gigafactory.policy.place.fragmentation import FragModel, PodType, TargetWorkload
from gigafactory.policy.profile import Profile
from gigafactory.twin.fgd_family import generate, is_family, parse_family
from gigafactory.twin.traces.openb import PodList, read_arrivals, read_node_ranks, read_nodes, read_pods

__all__ = [
    "COLUMNS",
    "PUBLISHED_NAMES",
    "FgdResult",
    "bucket",
    "check_workload",
    "derive_order",
    "fgd_policies",
    "run_fgd",
    "workload_file",
]

TUNE = 1.3
COLUMNS = tuple(range(131))
NODE_FILE = "openb_node_list_gpu_node.csv"
BASE_WORKLOAD = "default"  # the trace the families are generated from
PUBLISHED_NAMES = {
    "random": "01-Random",
    "dot-product": "02-DotProd",
    "gpu-clustering": "03-GpuClustering",
    "gpu-packing": "04-GpuPacking",
    "fgd-best-fit": "05-BestFit",
    "fgd": "06-FGD",
}


def fgd_policies(spec: str) -> list[str]:
    """``all`` → every registered placement policy; otherwise a comma-separated list of names, checked."""
    if spec.strip() == "all":
        return PLACE.names()
    names = [p.strip() for p in spec.split(",") if p.strip()]
    if not names:
        raise ConfigError("no placement policy given")
    for name in names:
        PLACE.get(name)
    return names


def workload_file(data: Path, name: str) -> Path:
    """``default`` or ``openb_pod_list_default`` → ``DATA/openb_pod_list_default.csv``; lists what exists."""
    stem = name if name.startswith("openb_pod_list_") else f"openb_pod_list_{name}"
    path = data / f"{stem}.csv"
    if not path.is_file():
        known = sorted(p.stem.removeprefix("openb_pod_list_") for p in data.glob("openb_pod_list_*.csv"))
        raise ConfigError(
            f"unknown workload {name!r} in {data}; known: {', '.join(known) or '(none)'}, "
            "or a member of a workload family: family:KIND=LEVEL (KIND gpushare, multigpu, gpuspec or cpu)"
        )
    return path


def check_workload(data: Path, name: str, *, orders: Path | None = None) -> str:
    """The workload's name in results (a file's stem, or a family member's canonical spelling); checks that it
    can be run: the file exists, or the family spec is valid and the default trace exists."""
    if is_family(name):
        family = parse_family(name)
        if orders is not None:
            raise ConfigError(f"workload {name!r}: generated workloads have no recorded orders; leave out --orders")
        workload_file(data, BASE_WORKLOAD)
        return family.name
    return workload_file(data, name).stem


def load_workload(data: Path, name: str, seed: int, topo: Topology) -> tuple[str, PodList]:
    """``(name in results, pods)``: the file's pods, or the family member generated for ``seed``."""
    if is_family(name):
        family = parse_family(name)
        base = read_pods(workload_file(data, BASE_WORKLOAD))
        return family.name, generate(base, family, seed, topo)
    path = workload_file(data, name)
    return path.stem, read_pods(path)


@dataclass
class FgdResult:
    workload: str  # e.g. openb_pod_list_default
    policy: str  # our registry name
    seed: int
    total_gpus: int
    pods: int
    placed: int
    failed: int
    alloc: npt.NDArray[np.float64]  # column k: allocation % when k% of capacity has arrived (NaN if none)
    frag: npt.NDArray[np.float64]  # same bucketing of fragmented GPUs as % of capacity
    frag_ratio: npt.NDArray[np.float64]  # same bucketing of 100 * Frag / Idle
    wall_s: float
    orders: str  # "published" or "derived"
    final_alloc: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def sc_policy(self) -> str:
        return PUBLISHED_NAMES.get(self.policy, self.policy)


def bucket(arrive_ratio: np.ndarray, values: np.ndarray) -> npt.NDArray[np.float64]:
    """Mean of ``values`` over the events of each integer arrive ratio 0..130 (±1 if none), to 2 decimals."""
    out = np.full(len(COLUMNS), np.nan)
    for x in COLUMNS:
        hit = arrive_ratio == x
        if not hit.any():
            hit = (arrive_ratio >= x - 1) & (arrive_ratio <= x + 1)
        if hit.any():
            out[x] = round(float(values[hit].mean()), 2)
    return out


def _round2(values: np.ndarray) -> np.ndarray:
    return np.array([round(float(v), 2) for v in values])


def derive_order(pods: PodList, topo: Topology, seed: int) -> tuple[PodList, npt.NDArray[np.int64]]:
    """Our own arrival order and node ranks for ``seed``: the method of §3 with numpy's generator."""
    rng = np.random.default_rng([seed, 0xFD])
    by_name = np.argsort(np.array(pods.names), kind="stable")
    base = pods.take(by_name)
    order = rng.permutation(len(base))
    shuffled = base.take(order)
    target = TUNE * topo.num_gpus * 1000
    total = float(shuffled.total_milli.sum())
    if total < target:
        extra: list[int] = []
        per_gpu = base.gpu_milli
        totals = base.total_milli
        while True:
            idx = int(rng.integers(len(base)))
            if total + per_gpu[idx] > target:  # the published stop test uses the per-GPU milli
                break
            extra.append(idx)
            total += totals[idx]
        tuned = PodList(
            shuffled.source,
            shuffled.names + tuple(f"{base.names[i]}-tuned-{k}" for k, i in enumerate(extra)),
            np.concatenate([shuffled.cpu, base.cpu[extra]]),
            np.concatenate([shuffled.mem, base.mem[extra]]),
            np.concatenate([shuffled.num_gpu, base.num_gpu[extra]]),
            np.concatenate([shuffled.gpu_milli, base.gpu_milli[extra]]),
            shuffled.spec + tuple(base.spec[i] for i in extra),
        )
    else:
        keep = np.ones(len(shuffled), np.bool_)
        totals = shuffled.total_milli
        alive = list(range(len(shuffled)))
        while total > target:
            pos = int(rng.integers(len(alive)))
            i = alive.pop(pos)
            keep[i] = False
            total -= totals[i]
        tuned = shuffled.take(np.flatnonzero(keep))
    ranks = rng.permutation(topo.num_nodes).astype(np.int64)
    return tuned, ranks


class _Requests:
    """One shared :class:`JobRequest` per distinct pod shape (the engine caches by request)."""

    def __init__(self, pods: PodList) -> None:
        self._pods = pods
        self._cache: dict[tuple[int, int, int, int, str], JobRequest] = {}

    def __getitem__(self, i: int) -> JobRequest:
        p = self._pods
        key = (int(p.cpu[i]), int(p.mem[i]), int(p.num_gpu[i]), int(p.gpu_milli[i]), p.spec[i])
        req = self._cache.get(key)
        if req is None:
            req = self._cache[key] = p.request(i)
        return req


def run_fgd(
    data: Path,
    workload: str,
    policy: str,
    seed: int,
    *,
    orders: Path | None = None,
    validate: bool = False,
) -> FgdResult:
    t0 = time.perf_counter()
    stem = check_workload(data, workload, orders=orders)
    if orders is not None:
        original = read_pods(workload_file(data, workload))
        arrivals = read_arrivals(orders / f"{stem}_seed{seed}_arrivals.csv.gz")
        ranks = read_node_ranks(orders / f"{stem}_seed{seed}_noderank.csv.gz")
        topo = read_nodes(data / NODE_FILE, ranks=ranks)
        source = "published"
    else:
        topo = read_nodes(data / NODE_FILE)
        stem, original = load_workload(data, workload, seed, topo)
        arrivals, rank_col = derive_order(original, topo, seed)
        topo = topo.with_ranks(rank_col)
        source = "derived"
    target = TargetWorkload.typical(PodType(*original.pod_type(i)) for i in range(len(original)))
    placer = PLACE.get(policy).make(target=target)
    profile = Profile(order=Fifo(), backfill=NoBackfill(), place=placer, text=f"fifo+none+{policy}")
    engine = Engine(topo, profile, seed=seed, keep_log=False, validate=validate)
    cap = engine.cap
    meter = NodeCounts(FragModel(target, topo), topo)
    meter.refresh(cap)
    frag_total = float(meter.f.sum())
    n = len(arrivals)
    requests = _Requests(arrivals)
    milli = arrivals.total_milli
    arrived = np.cumsum(milli)
    used = np.zeros(n)
    frag = np.zeros(n)
    placed = 0
    for i in range(n):
        job = Job(JobId(i), requests[i], submit_s=float(i), immediate=True)
        actions = engine.handle([JobSubmitted(float(i), job)])
        start = actions[0] if actions else None
        if start is not None and hasattr(start, "placement"):
            placed += 1
            touched = np.array(start.placement.nodes, dtype=np.int64)
            old = float(meter.f[touched].sum())
            meter.refresh(cap)
            frag_total += float(meter.f[touched].sum()) - old
        used[i] = cap.used_milli
        frag[i] = frag_total
    total = topo.num_gpus
    arrive_ratio = np.round(arrived / total / 10.0)
    alloc_ratio = _round2(used / total / 10.0)
    idle = total * 1000.0 - used
    frag_pct = 100.0 * frag / 1000.0 / total
    frag_ratio = np.divide(100.0 * frag, idle, out=np.zeros_like(frag), where=idle > 0)
    return FgdResult(
        workload=stem,
        policy=policy,
        seed=seed,
        total_gpus=total,
        pods=n,
        placed=placed,
        failed=n - placed,
        alloc=bucket(arrive_ratio, alloc_ratio),
        frag=bucket(arrive_ratio, frag_pct),
        frag_ratio=bucket(arrive_ratio, frag_ratio),
        wall_s=round(time.perf_counter() - t0, 3),
        orders=source,
        final_alloc=round(float(used[-1]) / total / 10.0, 2) if n else 0.0,
    )


def mean_columns(results: Sequence[FgdResult], column: int) -> float:
    return float(np.nanmean([r.alloc[column] for r in results]))
