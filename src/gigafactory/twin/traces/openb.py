"""The Alibaba GPU cluster trace v2023 ("openb"), as used by the FGD paper (USENIX ATC'23).

* Node lists (``openb_node_list_*.csv``): ``sn, cpu_milli, memory_mib, gpu, model``. Every node becomes its own
  NVLink domain in one pod; nodes are ordered by ``sn`` (the order the FGD simulator ranks them in).
* Pod lists (``openb_pod_list_*.csv``): ``name, cpu_milli, memory_mib, num_gpu, gpu_milli`` and optionally
  ``gpu_spec, qos, pod_phase, creation_time, deletion_time, scheduled_time`` (ignored). ``gpu_milli < 1000``
  with ``num_gpu == 1`` is a GPU-sharing pod; ``gpu_spec`` lists the allowed GPU models, separated by ``|``.
* Recorded arrival orders (``fgd-orders/<trace>_seed<S>_arrivals.csv.gz``: ``seq, name, cpu_milli,
  memory_mib, num_gpu, gpu_milli, gpu_spec, cum_gpu_milli``) and node tie-break ranks
  (``..._noderank.csv.gz``: ``sn, tiebreak_rank, sim_name``) of the published runs.

Pods become :class:`PodList` columns; a pod's *type* (what fragmentation is measured against) is
``(cpu_milli, gpu_milli, num_gpu, gpu_spec)``, memory left out, as in the paper.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from gigafactory.core.errors import TraceError
from gigafactory.core.jobs import JobRequest
from gigafactory.core.topology import Topology
from gigafactory.twin.traces.table import as_int, as_str, read_table

__all__ = ["PodList", "read_arrivals", "read_node_ranks", "read_nodes", "read_pods", "spec_models"]

NODE_COLUMNS = {"sn": as_str, "cpu_milli": as_int, "memory_mib": as_int, "gpu": as_int, "model": as_str}
POD_COLUMNS = {"name": as_str, "cpu_milli": as_int, "memory_mib": as_int, "num_gpu": as_int, "gpu_milli": as_int}
POD_OPTIONAL = {"gpu_spec": as_str}
POD_IGNORED = ("qos", "pod_phase", "creation_time", "deletion_time", "scheduled_time")
CPU_ONLY_MODEL = "CPU"


def spec_models(spec: str) -> tuple[str, ...] | None:
    """``"V100M16|V100M32"`` → ``("V100M16", "V100M32")``; empty or NaN → ``None`` (any model)."""
    spec = spec.strip()
    if not spec or spec.lower() == "nan":
        return None
    parts = tuple(sorted({p for p in spec.split("|") if p}))
    return parts or None


def read_nodes(path: str | Path, *, ranks: dict[str, int] | None = None) -> Topology:
    """The cluster of a node list. ``ranks`` (sn → tie-break rank) replaces the default rank (sn order)."""

    def check(row: dict[str, object]) -> str | None:
        for key in ("cpu_milli", "memory_mib", "gpu"):
            if int(row[key]) < 0:  # type: ignore[call-overload]
                return f"{key} must not be negative"
        if int(row["gpu"]) > 64:  # type: ignore[call-overload]
            return "gpu must be at most 64"
        return None

    table = read_table(path, NODE_COLUMNS, validate=check)
    if not len(table):
        raise TraceError(str(path), "no nodes")
    names = table.columns["sn"]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise TraceError(str(path), f"node {dup!r} appears twice", column="sn")
    order = sorted(range(len(names)), key=lambda i: names[i])
    gpus = [table.columns["gpu"][i] for i in order]
    models_raw = [table.columns["model"][i] or CPU_ONLY_MODEL for i in order]
    models = sorted(set(models_raw))
    model_id = {m: k for k, m in enumerate(models)}
    sorted_names = [names[i] for i in order]
    rank_col: list[int] | None = None
    if ranks is not None:
        missing = [n for n in sorted_names if n not in ranks]
        if missing:
            raise TraceError(str(path), f"node {missing[0]!r} has no tie-break rank in the rank file")
        rank_col = [ranks[n] for n in sorted_names]
    n = len(order)
    return Topology.from_columns(
        Path(path).stem,
        models=models,
        node_model=[model_id[m] for m in models_raw],
        node_gpus=gpus,
        node_cpu=[table.columns["cpu_milli"][i] for i in order],
        node_mem=[table.columns["memory_mib"][i] for i in order],
        node_domain=np.arange(n),
        node_pod=np.zeros(n, np.int64),
        node_names=sorted_names,
        node_rank=rank_col,
    )


@dataclass(frozen=True, eq=False)
class PodList:
    """Pods in arrival order, as columns, with their requests."""

    source: str
    names: tuple[str, ...]
    cpu: npt.NDArray[np.int64]
    mem: npt.NDArray[np.int64]
    num_gpu: npt.NDArray[np.int64]
    gpu_milli: npt.NDArray[np.int64]  # per GPU, clipped to 1000; 0 for CPU-only pods
    spec: tuple[str, ...]  # gpu_spec as written ('' = any)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def total_milli(self) -> npt.NDArray[np.int64]:
        return self.num_gpu * self.gpu_milli

    def request(self, i: int) -> JobRequest:
        g = int(self.num_gpu[i])
        if g == 0:
            return JobRequest(gpus=0, cpu_milli=int(self.cpu[i]), mem_mib=int(self.mem[i]))
        return JobRequest(
            gpus=g,
            gpu_milli=int(self.gpu_milli[i]),
            cpu_milli=int(self.cpu[i]),
            mem_mib=int(self.mem[i]),
            models=spec_models(self.spec[i]),
        )

    def pod_type(self, i: int) -> tuple[int, int, int, str]:
        return (int(self.cpu[i]), int(self.gpu_milli[i]), int(self.num_gpu[i]), self.spec[i])

    def take(self, order: npt.NDArray[np.int64] | list[int]) -> PodList:
        idx = np.asarray(order, dtype=np.int64)
        return PodList(
            self.source,
            tuple(self.names[i] for i in idx),
            self.cpu[idx],
            self.mem[idx],
            self.num_gpu[idx],
            self.gpu_milli[idx],
            tuple(self.spec[i] for i in idx),
        )


def _check_pod(row: dict[str, object]) -> str | None:
    cpu, mem, g, milli = (int(row[k]) for k in ("cpu_milli", "memory_mib", "num_gpu", "gpu_milli"))  # type: ignore[call-overload]
    if cpu < 0 or mem < 0:
        return "cpu_milli and memory_mib must not be negative"
    if g < 0:
        return "num_gpu must not be negative"
    if g == 0 and cpu == 0:
        return "a pod must ask for a GPU or some CPU"
    if g > 0 and milli <= 0:
        return "a GPU pod needs gpu_milli above 0"
    if g > 1 and min(milli, 1000) < 1000:
        return f"num_gpu={g} with gpu_milli={milli}: only a one-GPU pod may share a GPU"
    return None


def _pods(table_columns: dict[str, list[object]], source: str) -> PodList:
    cols = table_columns
    num_gpu = np.asarray(cols["num_gpu"], dtype=np.int64)
    milli = np.minimum(np.asarray(cols["gpu_milli"], dtype=np.int64), 1000)
    milli[num_gpu == 0] = 0
    spec = tuple(str(s) if s is not None else "" for s in cols.get("gpu_spec", [""] * len(num_gpu)))
    spec = tuple("" if s.lower() == "nan" else s for s in spec)
    return PodList(
        source,
        tuple(str(n) for n in cols["name"]),
        np.asarray(cols["cpu_milli"], dtype=np.int64),
        np.asarray(cols["memory_mib"], dtype=np.int64),
        num_gpu,
        milli,
        spec,
    )


def read_pods(path: str | Path, *, skip_bad_rows: bool = False) -> PodList:
    """A pod list, in file order. Pod names must be unique."""
    table = read_table(
        path, POD_COLUMNS, POD_OPTIONAL, allowed_extra=POD_IGNORED, skip_bad_rows=skip_bad_rows, validate=_check_pod
    )
    names = table.columns["name"]
    if len(set(names)) != len(names):
        seen: set[str] = set()
        for name, line in zip(names, table.lines, strict=True):
            if name in seen:
                raise TraceError(str(path), f"pod {name!r} appears twice", line=line, column="name")
            seen.add(name)
    return _pods(table.columns, str(path))


def read_arrivals(path: str | Path) -> PodList:
    """A recorded arrival order (``seq`` ascending)."""
    table = read_table(
        path,
        {"seq": as_int, **POD_COLUMNS},
        {"gpu_spec": as_str, "cum_gpu_milli": as_int},
        validate=_check_pod,
    )
    seq = table.columns["seq"]
    if seq != list(range(len(seq))):
        bad = next(i for i, s in enumerate(seq) if s != i)
        raise TraceError(str(path), f"seq {seq[bad]} is out of order (expected {bad})", line=table.lines[bad])
    return _pods(table.columns, str(path))


def read_node_ranks(path: str | Path) -> dict[str, int]:
    table = read_table(path, {"sn": as_str, "tiebreak_rank": as_int}, {"sim_name": as_str})
    ranks = dict(zip(table.columns["sn"], table.columns["tiebreak_rank"], strict=True))
    if len(ranks) != len(table):
        raise TraceError(str(path), "a node appears twice", column="sn")
    return ranks
