"""Hypothesis property tests: invariants hold for random workloads under every policy."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gigafactory.core import build_site
from gigafactory.policy import BACKFILL, ORDER, PLACE
from gigafactory.twin import Simulation, Workload

SITES = [
    "uniform:nodes=3,gpus=4",
    "uniform:nodes=5,gpus=8",
    "uniform:nodes=2,gpus=1",
    "gb200-nvl72:racks=2,pod_racks=1",
]


@st.composite
def workloads(draw: st.DrawFn, exact: bool = False) -> tuple[str, Workload]:
    site = draw(st.sampled_from(SITES))
    topo = build_site(site)
    n = draw(st.integers(1, 40))
    total = topo.num_gpus
    rows = []
    t = 0.0
    for _ in range(n):
        t += draw(st.sampled_from([0.0, 0.0, 1.0, 5.0, 30.0]))
        kind = draw(st.sampled_from(["small", "small", "big", "frac", "cpu"]))
        if kind == "frac":
            gpus, milli = 1, draw(st.integers(1, 999))
        elif kind == "cpu":
            gpus, milli = 0, 1000
        elif kind == "big":
            gpus, milli = draw(st.integers(1, total)), 1000
        else:
            gpus, milli = draw(st.integers(1, min(8, total))), 1000
        runtime = float(draw(st.integers(1, 200)))
        est = runtime if exact else draw(st.sampled_from([math.nan, runtime, runtime * 2, runtime * 10]))
        outcome = 0 if exact else draw(st.sampled_from([0, 0, 0, 1, 2]))
        locality = 0 if exact else draw(st.sampled_from([0, 0, 0, 1, 2]))
        rows.append((t, gpus, milli, 1000 if kind == "cpu" else 0, runtime, est, outcome, locality))
    cols = list(zip(*rows, strict=True))
    wl = Workload.build(
        "prop",
        {
            "submit_s": cols[0],
            "gpus": cols[1],
            "gpu_milli": cols[2],
            "cpu_milli": cols[3],
            "runtime_s": cols[4],
            "estimate_s": cols[5],
            "outcome": cols[6],
            "locality": cols[7],
        },
    )
    return site, wl


profiles = st.builds(
    lambda o, b, p: f"{o}+{b}+{p}",
    st.sampled_from(ORDER.names()),
    st.sampled_from(BACKFILL.names()),
    st.sampled_from(PLACE.names()),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=workloads(), profile=profiles, seed=st.integers(0, 3))
def test_invariants_hold_and_every_job_ends(case: tuple[str, Workload], profile: str, seed: int) -> None:
    site, wl = case
    sim = Simulation(build_site(site), wl, profile, seed=seed, validate=True)
    result = sim.run()
    s = result.summary
    assert s["unfinished"] == 0
    assert s["completed"] + s["failed"] + s["cancelled"] + s["rejected"] == len(wl)
    assert 0.0 <= s["utilisation"] <= 1.0 + 1e-9
    counts = result.engine.counts()
    assert sum(counts.values()) == len(wl)
    starts = result.metrics.first_start
    ran = ~np.isnan(starts)
    assert (starts[ran] >= wl.submit_s[ran]).all()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=workloads(exact=True), place=st.sampled_from(PLACE.names()), seed=st.integers(0, 3))
def test_easy_backfill_never_delays_the_head_past_its_reservation(
    case: tuple[str, Workload], place: str, seed: int
) -> None:
    """With exact estimates, a job reserved for at time T starts at T or earlier, whatever was backfilled."""
    site, wl = case
    sim = Simulation(build_site(site), wl, f"fifo+easy+{place}", seed=seed, validate=True)
    engine = sim.engine
    promised: dict[int, float] = {}
    handle = engine.handle

    def watching(events):  # type: ignore[no-untyped-def]
        actions = handle(events)
        res = engine.reservation
        if res is not None and math.isfinite(res.start_s):
            promised.setdefault(res.job_id, res.start_s)
        return actions

    engine.handle = watching  # type: ignore[method-assign]
    result = sim.run()
    event("made a reservation" if promised else "no reservation needed")
    for job, t in promised.items():
        assert result.metrics.first_start[job] <= t + 1e-6, (job, t)


@settings(max_examples=40, deadline=None)
@given(case=workloads(), profile=profiles, seed=st.integers(0, 2))
def test_same_seed_same_outcome(case: tuple[str, Workload], profile: str, seed: int) -> None:
    site, wl = case
    a = Simulation(build_site(site), wl, profile, seed=seed).run()
    b = Simulation(build_site(site), wl, profile, seed=seed).run()
    assert np.array_equal(a.metrics.first_start, b.metrics.first_start, equal_nan=True)
    assert np.array_equal(a.metrics.end, b.metrics.end, equal_nan=True)


@settings(max_examples=80, deadline=None)
@given(
    policy=st.sampled_from(["best-fit", "packing", "topology"]),
    fill=st.lists(st.integers(0, 4), min_size=36, max_size=36),
    gpus=st.integers(1, 4),
    excluded=st.lists(st.integers(0, 35), max_size=6),
)
def test_quick_node_choice_equals_the_full_scan(policy: str, fill: list[int], gpus: int, excluded: list[int]) -> None:
    """The aggregate-based quick path picks exactly the node the full scan over every node picks."""
    from gigafactory.core import Capacity, JobRequest, Placement
    from gigafactory.policy.place.common import single_node_candidates

    cap = Capacity(build_site("gb200-nvl72:racks=2,pod_racks=1"))
    for n, taken in enumerate(fill):
        if taken:
            cap.allocate(Placement((n,), (cap.topo.node_gpu_ids[n][:taken],), 1000, (0,), (0,)))
    placer = PLACE.get(policy).build()
    req = JobRequest(gpus=gpus)
    exclude = np.zeros(36, np.bool_)
    exclude[excluded] = True
    for mask in (None, exclude):
        quick = placer.quick_node(req, cap, mask)
        cand = single_node_candidates(req, cap, mask)
        if cand.size == 0:
            assert quick is None
            continue
        full = placer.choose_node(req, cap, cand, np.random.default_rng(0))
        assert quick in (None, full)  # None only sends the request down the full path
        if mask is None:
            assert quick == full


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    site=st.sampled_from(SITES[:3]),
    profile=st.sampled_from(["fifo+easy+first-fit", "las:queues=2,threshold_gpu_h=0.01+easy+preempt+best-fit",
                             "fair-share+greedy+reclaim+packing", "sjf+greedy+preempt+first-fit"]),
    script=st.lists(st.tuples(st.sampled_from(["submit", "submit", "cancel", "fail-node", "repair", "wait"]),
                              st.integers(0, 50), st.integers(1, 8)), min_size=1, max_size=60),
)  # fmt: skip
def test_stopped_attempts_never_overlap_the_next_user_of_their_gpus(site: str, profile: str, script: list) -> None:  # type: ignore[type-arg]
    """With ``hold_stopped`` (the control plane's engine), a stopped attempt keeps its GPUs until the driver says
    it ended, so live attempts (running or stopping) never share a GPU and a job's attempts never overlap."""
    from conftest import make_job
    from gigafactory.core import (
        JobCancelled,
        JobFinished,
        JobId,
        JobInterrupted,
        JobSubmitted,
        NodeFailed,
        NodeRepaired,
        StartJob,
        StopJob,
        Tenant,
        TenantTree,
        Tick,
    )  # fmt: skip
    from gigafactory.engine import Engine

    topo = build_site(site)
    tenants = TenantTree([Tenant("a", 2.0), Tenant("b", 1.0)])
    e = Engine(topo, profile, tenants=tenants, validate=True, hold_stopped=True)
    live: dict[tuple[int, int], tuple[int, ...]] = {}  # (job, attempt) -> GPUs, while its "processes" run
    stopping: list[tuple[int, int]] = []
    t, next_id = 0.0, 1

    def apply(actions: list[object]) -> None:
        for a in actions:
            if isinstance(a, StartJob):
                assert all(j != a.job_id for j, _ in live), f"job {a.job_id} started while an attempt lives"
                gpus = tuple(g for gs in a.placement.node_gpus for g in gs)
                if a.placement.gpu_milli == 1000:
                    taken = {g for k, gs in live.items() for g in gs if k[0] in whole}
                    assert taken.isdisjoint(gpus), "a GPU was handed out while a live attempt used it"
                    whole.add(a.job_id)
                live[(a.job_id, a.attempt)] = gpus
            elif isinstance(a, StopJob):
                stopping.append((a.job_id, a.attempt))

    whole: set[int] = set()
    for kind, x, n in script:
        t += 1.0
        if kind == "submit":
            apply(e.handle([JobSubmitted(t, make_job(next_id, min(n, topo.num_gpus), est=float(x + 1),
                                                     tenant="ab"[next_id % 2]))]))  # fmt: skip
            next_id += 1
        elif kind == "cancel" and next_id > 1:
            apply(e.handle([JobCancelled(t, JobId(1 + x % (next_id - 1)))]))
        elif kind == "fail-node":
            apply(e.handle([NodeFailed(t, x % topo.num_nodes)]))
        elif kind == "repair":
            apply(e.handle([NodeRepaired(t, x % topo.num_nodes)]))
        elif stopping:  # one stopped attempt's processes are gone at last
            job, attempt = stopping.pop(x % len(stopping))
            live.pop((job, attempt), None)
            apply(e.handle([JobInterrupted(t, JobId(job), attempt)]))
        else:  # the running attempt that was started first finishes
            running = [k for k in live if k[0] in e and e.placement_of(*k) is not None and k not in stopping]
            if running:
                job, attempt = running[0]
                live.pop((job, attempt))
                apply(e.handle([JobFinished(t, JobId(job), attempt)]))
            else:
                apply(e.handle([Tick(t)]))
    assert set(e.held()) == {j for j, _ in stopping}
