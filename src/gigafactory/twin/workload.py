"""``Workload``: a columnar table of jobs, the one thing every trace reader and generator produces.

One row per job, sorted by submission time (stably, so equal times keep their input order). Columns:

========== ======== ==========================================================================
column     dtype    meaning
========== ======== ==========================================================================
submit_s   float64  submission time, seconds from the start of the workload
gpus       int64    GPUs (1 for a fractional request, 0 for a CPU-only task)
gpu_milli  int64    milli-GPU per GPU (1000 = whole GPUs)
cpu_milli  int64    CPU for the whole job, milli-cores
mem_mib    int64    memory for the whole job, MiB
runtime_s  float64  run time until the job ends by itself (with ``outcome``), if never interrupted
estimate_s float64  the user's run-time estimate (limit) used by backfill; NaN = none given
outcome    int8     how it ends by itself: 0 completed, 1 failed, 2 cancelled by its user
tenant     int32    index into ``tenants``
priority   int32    larger is more urgent (used by the ``priority`` order)
locality   int8     0 anywhere, 1 one pod, 2 one NVLink domain
model_set  int16    index into ``model_sets``; -1 = any GPU model
gang       int8     1: all GPUs placed together as a gang (the default); 0: any free GPUs will do
ckpt_s     float64  work between checkpoints; NaN = never checkpoints; -1 = Young-Daly for its size
ckpt_write float64  wall seconds one checkpoint write takes
restart_s  float64  wall seconds every start (and restart) takes before work resumes
========== ======== ==========================================================================

``runtime_s`` is the job's *work*: with no interruption, no checkpoints and no restart cost, its run time.

The row index is the job id in a simulation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from gigafactory.core.errors import ConfigError
from gigafactory.core.jobs import Job, JobId, JobRequest, Locality
from gigafactory.core.progress import NO_CHECKPOINTS, Checkpointing, daly_interval
from gigafactory.core.topology import Topology

if TYPE_CHECKING:
    from gigafactory.twin.failures import FailureModel

__all__ = ["CANCELLED", "COMPLETED", "FAILED", "LOCALITIES", "YOUNG_DALY", "Workload"]

COMPLETED, FAILED, CANCELLED = 0, 1, 2
LOCALITIES = (Locality.ANY, Locality.POD, Locality.DOMAIN)

_COLUMNS: dict[str, type] = {
    "submit_s": np.float64,
    "gpus": np.int64,
    "gpu_milli": np.int64,
    "cpu_milli": np.int64,
    "mem_mib": np.int64,
    "runtime_s": np.float64,
    "estimate_s": np.float64,
    "outcome": np.int8,
    "tenant": np.int32,
    "priority": np.int32,
    "locality": np.int8,
    "model_set": np.int16,
    "gang": np.int8,
    "ckpt_s": np.float64,
    "ckpt_write": np.float64,
    "restart_s": np.float64,
}
YOUNG_DALY = -1.0


@dataclass(frozen=True, eq=False)
class Workload:
    name: str
    submit_s: npt.NDArray[np.float64]
    gpus: npt.NDArray[np.int64]
    gpu_milli: npt.NDArray[np.int64]
    cpu_milli: npt.NDArray[np.int64]
    mem_mib: npt.NDArray[np.int64]
    runtime_s: npt.NDArray[np.float64]
    estimate_s: npt.NDArray[np.float64]
    outcome: npt.NDArray[np.int8]
    tenant: npt.NDArray[np.int32]
    priority: npt.NDArray[np.int32]
    locality: npt.NDArray[np.int8]
    model_set: npt.NDArray[np.int16]
    gang: npt.NDArray[np.int8]
    ckpt_s: npt.NDArray[np.float64]
    ckpt_write: npt.NDArray[np.float64]
    restart_s: npt.NDArray[np.float64]
    tenants: tuple[str, ...] = ("default",)
    model_sets: tuple[tuple[str, ...], ...] = ()
    skipped_rows: int = 0  # malformed trace rows left out (with --skip-bad-rows)
    # The offered load a generator was asked for (None for a trace): the sampled jobs' own load differs by chance.
    target_load: float | None = None
    # What decides ``outcome`` (which jobs fail or are cancelled by themselves), said in the summary beside the counts.
    outcome_model: str = "the trace's own outcomes"
    _requests: dict[tuple[int, ...], JobRequest] = field(default_factory=dict, repr=False)
    # Per job, what :meth:`job` reads, as Python objects (built on first use: numpy scalars cost per element read).
    _rows: dict[str, list[Any]] = field(default_factory=dict, repr=False)

    @classmethod
    def build(
        cls,
        name: str,
        columns: Mapping[str, Sequence[float] | np.ndarray],
        *,
        tenants: Sequence[str] = ("default",),
        model_sets: Sequence[Sequence[str]] = (),
        skipped_rows: int = 0,
        target_load: float | None = None,
        outcome_model: str = "the trace's own outcomes",
    ) -> Workload:
        """Build from columns; missing optional columns take defaults. Rows are sorted by ``submit_s``."""
        for required in ("submit_s", "gpus", "runtime_s"):
            if required not in columns:
                raise ConfigError(f"workload {name!r} lacks column {required!r}")
        unknown = set(columns) - set(_COLUMNS)
        if unknown:
            raise ConfigError(f"workload {name!r}: unknown columns {sorted(unknown)}")
        n = len(columns["submit_s"])
        defaults: dict[str, float] = {
            "gpu_milli": 1000,
            "cpu_milli": 0,
            "mem_mib": 0,
            "estimate_s": np.nan,
            "outcome": COMPLETED,
            "tenant": 0,
            "priority": 0,
            "locality": 0,
            "model_set": -1,
            "gang": 1,
            "ckpt_s": np.nan,
            "ckpt_write": 0.0,
            "restart_s": 0.0,
        }
        cols: dict[str, Any] = {}
        for key, dtype in _COLUMNS.items():
            arr: np.ndarray
            if key in columns:
                arr = np.asarray(columns[key], dtype=dtype)
                if arr.shape != (n,):
                    raise ConfigError(f"workload {name!r}: column {key!r} has {arr.shape[0]} rows, expected {n}")
            else:
                arr = np.full(n, defaults[key], dtype=dtype)
            cols[key] = arr
        order = np.argsort(cols["submit_s"], kind="stable")
        if not np.array_equal(order, np.arange(n)):
            cols = {k: v[order] for k, v in cols.items()}
        for arr in cols.values():
            arr.setflags(write=False)
        wl = cls(
            name=name,
            tenants=tuple(tenants),
            model_sets=tuple(tuple(sorted(set(m))) for m in model_sets),
            skipped_rows=skipped_rows,
            target_load=target_load,
            outcome_model=outcome_model,
            **cols,
        )
        wl._check()
        return wl

    def _check(self) -> None:
        def bad(mask: np.ndarray, what: str) -> None:
            if mask.any():
                i = int(np.flatnonzero(mask)[0])
                raise ConfigError(f"workload {self.name!r}: job {i} {what}")

        bad(~np.isfinite(self.submit_s), "has a submission time that is not a number")
        bad(self.gpus < 0, "asks for a negative number of GPUs")
        bad((self.gpus == 0) & (self.cpu_milli <= 0), "asks for no GPU and no CPU")
        bad(
            (self.gpus > 0) & ((self.gpu_milli < 1) | (self.gpu_milli > 1000)),
            "has gpu_milli outside 1..1000",
        )
        bad((self.gpus > 1) & (self.gpu_milli != 1000), "shares a GPU but asks for more than one")
        bad(~(self.runtime_s > 0), "has a run time that is not positive")
        bad(~((self.ckpt_s > 0) | (self.ckpt_s == YOUNG_DALY) | np.isnan(self.ckpt_s)), "has a bad checkpoint interval")
        bad(~(self.ckpt_write >= 0), "has a negative checkpoint write time")
        bad(~(self.restart_s >= 0), "has a negative restart time")
        bad((self.ckpt_s == YOUNG_DALY) & ~(self.ckpt_write > 0), "uses young-daly without a checkpoint write time")
        bad(self.estimate_s <= 0, "has an estimate that is not positive")
        bad((self.outcome < 0) | (self.outcome > 2), "has an unknown outcome code")
        bad((self.tenant < 0) | (self.tenant >= len(self.tenants)), "names a tenant outside the tenant list")
        bad((self.locality < 0) | (self.locality > 2), "has an unknown locality code")
        bad((self.model_set < -1) | (self.model_set >= len(self.model_sets)), "names an unknown GPU model set")

    # ---- access -------------------------------------------------------------------------------------------
    def subset(self, idx: np.ndarray, name: str | None = None) -> Workload:
        """The jobs ``idx`` (in submission order) as a workload of their own, with the same tenants and models."""
        idx = np.sort(np.asarray(idx, dtype=np.int64))
        return Workload.build(
            name or self.name,
            {key: getattr(self, key)[idx] for key in _COLUMNS},
            tenants=self.tenants,
            model_sets=self.model_sets,
        )

    def __len__(self) -> int:
        return int(self.submit_s.shape[0])

    def request(self, i: int) -> JobRequest:
        """The request of job ``i``; identical requests share one object (and one engine cache entry)."""
        req: JobRequest = self._per_job()["request"][i]
        return req

    def _per_job(self) -> dict[str, list[Any]]:
        rows = self._rows
        if not rows:
            keys = zip(
                *(getattr(self, c).tolist() for c in ("gpus", "gpu_milli", "cpu_milli", "mem_mib", "model_set")),
                *(getattr(self, c).tolist() for c in ("locality", "gang")),
                strict=True,
            )
            rows["request"] = [self._intern(key) for key in keys]
            rows["submit_s"] = self.submit_s.tolist()
            rows["estimate_s"] = [None if math.isnan(e) else e for e in self.estimate_s.tolist()]
            rows["tenant"] = [self.tenants[t] for t in self.tenant.tolist()]
            rows["priority"] = self.priority.tolist()
        return rows

    def _intern(self, key: tuple[int, ...]) -> JobRequest:
        req = self._requests.get(key)
        if req is None:
            gpus, milli, cpu, mem, ms = key[:5]
            req = JobRequest(
                gpus=gpus,
                gpu_milli=milli if gpus else 1000,
                cpu_milli=cpu,
                mem_mib=mem,
                models=None if ms < 0 else self.model_sets[ms],
                locality=LOCALITIES[key[5]],
                gang=bool(key[6]),
            )
            self._requests[key] = req
        return req

    def job(
        self,
        i: int,
        checkpoint: Checkpointing = NO_CHECKPOINTS,
        sites: tuple[str, ...] | None = None,
        countries: tuple[str, ...] | None = None,
    ) -> Job:
        """Job ``i``; ``sites`` and ``countries``: where in a network it may run (None: anywhere)."""
        rows = self._per_job()
        return Job(
            id=JobId(i),
            request=rows["request"][i],
            submit_s=rows["submit_s"][i],
            tenant=rows["tenant"][i],
            estimate_s=rows["estimate_s"][i],
            priority=rows["priority"][i],
            checkpoint=checkpoint,
            sites=sites,
            countries=countries,
        )

    def checkpointing(self, failures: FailureModel | None, topo: Topology) -> list[Checkpointing]:
        """Per job, how it checkpoints; Young-Daly intervals from the failure rate its nodes see."""
        cache: dict[tuple[float | None, float, float], Checkpointing] = {}
        out = []
        per_node = max(topo.max_gpus_per_node, 1)
        for interval, write, restart, gpus in zip(
            self.ckpt_s.tolist(), self.ckpt_write.tolist(), self.restart_s.tolist(), self.gpus.tolist(), strict=True
        ):
            if interval == YOUNG_DALY:
                nodes = max(1, -(-gpus // per_node))
                rate = 0.0 if failures is None else failures.node_rate_per_s(topo, per_node) * nodes
                interval = daly_interval(write, 1.0 / rate) if rate > 0 else math.inf
            finite = interval if math.isfinite(interval) else None  # NaN or inf: it never checkpoints
            key = (finite, write if finite else 0.0, restart)  # (NaN keys would never match: each NaN is its own)
            ck = cache.get(key)
            if ck is None:
                ck = cache[key] = Checkpointing(*key)
            out.append(ck)
        return out

    # ---- summaries ----------------------------------------------------------------------------------------
    @property
    def gpu_equivalent(self) -> npt.NDArray[np.float64]:
        return self.gpus * self.gpu_milli / 1000.0

    def gpu_seconds(self) -> float:
        return float((self.gpu_equivalent * self.runtime_s).sum())

    def span_s(self) -> float:
        return float(self.submit_s[-1] - self.submit_s[0]) if len(self) else 0.0

    def check_fits(self, topo: Topology) -> None:
        """Refuse, with a clear message, a workload whose jobs can never run on ``topo``."""
        by_model = topo.gpus_by_model()
        total = topo.num_gpus
        too_big = self.gpus > total
        if too_big.any():
            i = int(np.flatnonzero(too_big)[0])
            raise ConfigError(
                f"workload {self.name!r}: job {i} asks for {int(self.gpus[i]):,} GPUs; "
                f"the site {topo.name} has {total:,}"
            )
        for code, group, unit in ((1, topo.node_pod, "pod"), (2, topo.node_domain, "NVLink domain")):
            biggest = int(np.bincount(group, weights=topo.node_gpus).max()) if topo.num_nodes else 0
            cramped = (self.locality == code) & (self.gpus > max(biggest, 1))
            if cramped.any():
                i = int(np.flatnonzero(cramped)[0])
                raise ConfigError(
                    f"workload {self.name!r}: job {i} asks for {int(self.gpus[i]):,} GPUs in one {unit}; "
                    f"the largest {unit} of {topo.name} has {biggest:,}"
                )
        for ms, models in enumerate(self.model_sets):
            if (self.model_set == ms).any() and not set(models) & set(by_model):
                raise ConfigError(
                    f"workload {self.name!r}: jobs ask for GPU model {'|'.join(models)}; "
                    f"the site {topo.name} has {', '.join(by_model)}"
                )
