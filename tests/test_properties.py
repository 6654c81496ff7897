"""Hypothesis property tests: invariants hold for random workloads under every policy.

The first tests run the twin over order × backfill × place. The driven tests at the end (``Driver``) draw a profile
over all six extension points (order, admit, backfill, preempt, place, cycle) with tenant trees, awards, cancels,
node failures and drains, and check the engine after every call to ``handle``. Budgets are sized with ``budget``:
``pytest --hypothesis-profile=thorough`` runs ten times as many examples.
"""

from __future__ import annotations

import heapq
import itertools
import math
import re
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from gigafactory.core import (
    Action,
    Code,
    Event,
    Job,
    JobCancelled,
    JobFailed,
    JobFinished,
    JobId,
    JobInterrupted,
    JobRequest,
    JobState,
    JobSubmitted,
    Locality,
    NodeDrained,
    NodeFailed,
    NodeRepaired,
    NodeResumed,
    Placement,
    RejectJob,
    StartJob,
    StopJob,
    StopReason,
    Tenant,
    TenantTree,
    Tick,
    Wake,
    build_site,
)
from gigafactory.core.actions import SignalJob
from gigafactory.core.awards import LEFT_EPS_GPU_S, Award
from gigafactory.core.events import AwardChanged
from gigafactory.engine import Engine
from gigafactory.policy import BACKFILL, ORDER, PLACE
from gigafactory.twin import Simulation, Workload


def budget(examples: int) -> settings:
    """``examples`` examples under the default Hypothesis profile, scaled with the profile loaded:
    ``pytest --hypothesis-profile=thorough`` (tests/conftest.py) runs ten times as many."""
    scale = settings().max_examples / 100  # settings() holds the loaded profile's; Hypothesis' own default is 100
    return settings(
        max_examples=max(1, round(examples * scale)),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


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
        room = {1: topo.node_pod, 2: topo.node_domain}.get(locality)
        if room is not None and gpus > int(np.bincount(room, weights=topo.node_gpus).max()):
            locality = 0  # a workload job no pod or domain could hold is refused up front (check_fits), not run
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


@budget(40)
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


@budget(40)
@given(case=workloads(exact=True), place=st.sampled_from(PLACE.names()), seed=st.integers(0, 3))
def test_easy_backfill_never_delays_the_head_past_its_reservation(
    case: tuple[str, Workload], place: str, seed: int
) -> None:
    """With exact estimates, a job reserved for at time T starts at T or earlier, whatever was backfilled."""
    site, wl = case
    sim = Simulation(build_site(site), wl, f"fifo+easy+{place}", seed=seed, validate=True)
    promised: dict[int, float] = {}

    class Watching(Engine):  # (the compiled engine's methods cannot be replaced on an instance)
        def handle(self, events):
            actions = super().handle(events)
            res = self.reservation
            if res is not None and math.isfinite(res.start_s):
                promised.setdefault(res.job_id, res.start_s)
            return actions

    sim.engine = Watching(sim.topo, sim.profile, seed=seed, validate=True)
    result = sim.run()
    event("made a reservation" if promised else "no reservation needed")
    for job, t in promised.items():
        assert result.metrics.first_start[job] <= t + 1e-6, (job, t)


@budget(20)
@given(case=workloads(), profile=profiles, seed=st.integers(0, 2))
def test_same_seed_same_outcome(case: tuple[str, Workload], profile: str, seed: int) -> None:
    site, wl = case
    a = Simulation(build_site(site), wl, profile, seed=seed).run()
    b = Simulation(build_site(site), wl, profile, seed=seed).run()
    assert np.array_equal(a.metrics.first_start, b.metrics.first_start, equal_nan=True)
    assert np.array_equal(a.metrics.end, b.metrics.end, equal_nan=True)


@budget(80)
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


@budget(80)
@given(
    site=st.sampled_from(SITES[:3]),
    profile=st.sampled_from(["fifo+easy+first-fit", "las:queues=2,threshold_gpu_h=0.01+easy+preempt+best-fit",
                             "fair-share+greedy+reclaim+packing", "sjf+greedy+preempt+first-fit"]),
    script=st.lists(st.tuples(st.sampled_from(["submit", "submit", "cancel", "fail-node", "repair", "wait"]),
                              st.integers(0, 50), st.integers(1, 8)), min_size=1, max_size=60),
)  # fmt: skip
def test_stopped_attempts_never_overlap_the_next_user_of_their_gpus(
    site: str, profile: str, script: list[tuple[str, int, int]]
) -> None:
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

    def apply(actions: list[Action]) -> None:
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


# ---- all six extension points, driven event by event ---------------------------------------------------------
#
# A small driver plays the part of the twin and of the control plane at once: it submits jobs, ends their attempts
# when their work is done, cancels, fails and drains nodes, grants awards, and answers Wake with Tick. It keeps its
# own account of every job and of every attempt whose processes may still run, and after every call to
# ``Engine.handle`` checks that account against the actions and the engine (the engine checks its own invariants
# after every event with ``validate=True``).

ORDERS = ["fifo", "priority", "sjf", "las", "las:queues=2,threshold_gpu_h=0.005", "fair-share:half_life_h=0.02"]
ADMITS = ["admit-all", "quota", "award", "award-safe-quota"]  # the last two get their parameters below
BACKFILLS = ["none", "easy", "easy:depth=2", "greedy"]
PREEMPTS = ["no-preempt", "preempt", "preempt:graceful=false", "reclaim"]
PLACES = ["first-fit", "best-fit", "topology", "packing", "gpu-packing", "fgd", "dot-product", "random"]
CYCLES = ["on-events", "rounds:interval=7", "rounds:interval=30"]
DRIVEN_SITES = [
    "uniform:nodes=2,gpus=4",
    "uniform:nodes=3,gpus=2,cpu=4,pod_nodes=2",
    "hgx-h100:nodes=3,pod_nodes=2",
    "gb200-nvl72:racks=1,pod_racks=1",
]
AWARD_TENANT = {1: "a", 2: "b", 3: "c", 4: "a"}
EPS = 1e-6


@dataclass(frozen=True)
class Scenario:
    """Everything one run is made of. ``events`` are the outside world's, in time order; the driver adds attempt
    ends, the reports of stopped attempts and ticks."""

    site: str
    profile: str
    tenants: tuple[Tenant, ...]
    seed: int
    hold_stopped: bool
    stop_delay_s: float  # how long a stopped attempt's processes take to die (with hold_stopped)
    events: tuple[Event, ...]
    runtime_s: dict[int, float]  # work each job needs, in seconds of uninterrupted run
    fails: frozenset[int]  # jobs whose attempts end with a non-zero exit code

    @property
    def tree(self) -> TenantTree:
        return TenantTree(self.tenants)


@st.composite
def tenant_trees(draw: st.DrawFn, gpus: int, per_node: int, borrower: str = "") -> tuple[Tenant, ...]:
    """Three leaves a, b, c, flat or with a and b under ``org``, with guarantees and limits that fit the site; the
    ``borrower`` has no guarantee."""
    nested = draw(st.booleans())
    sizes = st.sampled_from([None, 0, 1, per_node, gpus // 2, gpus])
    out = []
    if nested:
        out.append(Tenant("org", draw(st.sampled_from([1.0, 2.0])), limit=draw(sizes)))
    left = gpus
    for name in ("a", "b", "c"):
        guarantee, limit = draw(st.sampled_from([None, 1, per_node, gpus // 2, gpus])), draw(sizes)
        if name == borrower or (
            guarantee is not None and (guarantee > left or (limit is not None and guarantee > limit))
        ):
            guarantee = None
        left -= guarantee or 0
        parent = "org" if nested and name != "c" else "root"
        out.append(Tenant(name, draw(st.sampled_from([1.0, 3.0])), parent, guarantee, limit))
    return tuple(out)


def _profile(order: str, admit: str, backfill: str, preempt: str, place: str, cycle: str, pool: str) -> str:
    if admit == "award":
        admit = f"award:grace_s=20,pool={pool}"
    elif admit == "award-safe-quota":
        admit = f"award:grace_s=0,pool={pool},safe=true,quota=true"
    if order == "las":
        # LAS that kills (not suspends) need not end: under continuous LAS on rounds each round the job with the
        # least service kills the running one, which loses its work; with two queues and a tiny threshold, a case
        # under hold_stopped did not settle either (found 2026-12-02, not yet understood: see the issue note).
        preempt = preempt.replace("graceful=false", "graceful=true")
    return "+".join([order, admit, backfill, preempt, place, cycle])


@st.composite
def scenarios(draw: st.DrawFn, contended: bool = False) -> Scenario:
    """A scenario over every extension point. ``contended``: one that makes preemption work. A preemption policy,
    and tenant c, which has no guarantee, fills the site with long jobs before a and b come."""
    site = draw(st.sampled_from(DRIVEN_SITES))
    topo = build_site(site)
    total, per_node = topo.num_gpus, topo.max_gpus_per_node
    tenants = draw(tenant_trees(total, per_node, "c" if contended else ""))
    pool = "org" if any(t.name == "org" for t in tenants) else "a"
    # Under contention: orders in which a later job may rank first, so that it may preempt.
    orders = ORDERS[1:5] if contended else ORDERS
    preempts = PREEMPTS[1:] if contended else PREEMPTS
    profile = draw(
        st.builds(
            _profile,
            *(st.sampled_from(names) for names in (orders, ADMITS, BACKFILLS, preempts, PLACES, CYCLES)),
            st.just(pool),
        )
    )
    events: list[Event] = []
    runtime: dict[int, float] = {}
    fails: set[int] = set()
    t = 0.0
    n = draw(st.integers(4 if contended else 1, 24))
    first = "c" if contended else draw(st.sampled_from(["a", "b", "c"]))  # who submits most of the first half
    later = ["a", "b"] if contended else ["a", "b", "c"]  # and the rest
    for i in range(1, n + 1):
        t += draw(st.sampled_from([0.0, 0.0, 1.0, 3.0, 10.0, 40.0]))
        hog = contended and i <= n // 2
        kind = draw(st.sampled_from(["node", "big"] if hog else ["small", "small", "node", "big", "frac", "cpu"]))
        gpus, milli, cpu = {
            "small": (draw(st.integers(1, min(4, per_node))), 1000, 0),
            "node": (per_node, 1000, 0),
            "big": (draw(st.integers(per_node if hog else 1, total if hog else total + 1)), 1000, 0),
            "frac": (1, draw(st.integers(1, 999)), 0),
            "cpu": (0, 1000, draw(st.sampled_from([1000, 4000, 100_000]))),
        }[kind]
        if gpus and draw(st.integers(0, 3)) == 0:
            cpu = draw(st.sampled_from([1000, 3000]))
        gang = gpus <= 1 or draw(st.integers(0, 4)) > 0
        locality = Locality.ANY if gpus <= 1 else draw(st.sampled_from([Locality.ANY] * 3 + list(Locality)))
        work = float(draw(st.integers(30 if hog else 1, 60)))
        estimate = draw(st.sampled_from([None, work, work, work * 3, work / 2]))
        award = draw(st.sampled_from([None, None, None, 1, 2, 4]))
        job = Job(
            JobId(i),
            JobRequest(gpus=gpus, gpu_milli=milli, cpu_milli=cpu, locality=locality, gang=gang),
            submit_s=t,
            tenant=first if hog or (i <= n // 2 and draw(st.booleans())) else draw(st.sampled_from(later)),
            estimate_s=estimate,
            priority=draw(st.integers(0, 3)),
            immediate=draw(st.integers(0, 9)) == 0,
            award=award,
        )
        events.append(JobSubmitted(t, job))
        runtime[i] = work
        if draw(st.integers(0, 5)) == 0:
            fails.add(i)
    horizon = t + 60.0
    times = st.integers(0, int(horizon))
    for _ in range(draw(st.integers(0, 6))):
        at, who = draw(times), draw(st.integers(1, n))
        events.append(JobCancelled(float(at), JobId(who)))
    down_until: dict[tuple[str, int], float] = {}
    nodes = st.integers(0, topo.num_nodes - 1)
    outages = st.lists(st.tuples(times, st.sampled_from(["fail", "drain"]), nodes, st.integers(0, 80)), max_size=5)
    for at, kind, node, lasts in sorted(draw(outages)):
        if down_until.get((kind, node), -1.0) >= at:
            continue  # already down (or drained): the failure is part of that one
        down_until[(kind, node)] = at + lasts
        if kind == "fail":
            events += [NodeFailed(float(at), node), NodeRepaired(float(at + lasts), node)]
        else:
            events += [NodeDrained(float(at), node), NodeResumed(float(at + lasts), node)]
    if "award" in profile:
        hours: dict[int, float] = {}
        grants = st.tuples(
            times,
            st.sampled_from(sorted(AWARD_TENANT)),
            st.sampled_from([0.0, 0.002, 0.01, 0.1]),  # GPU-hours added
            st.sampled_from([-math.inf, 0.0, 30.0, 100.0]),  # valid from
            st.sampled_from([math.inf, 20.0, 200.0]),  # for this long
        )
        for at, award_id, more, start, valid_s in sorted(draw(st.lists(grants, max_size=6))):
            hours[award_id] = hours.get(award_id, 0.0) + more  # an award is only ever topped up here
            end = math.inf if math.isinf(valid_s) else max(start, 0.0) + valid_s
            events.append(AwardChanged(float(at), Award(award_id, AWARD_TENANT[award_id], hours[award_id], start, end)))
    events.sort(key=lambda e: e.time)  # stable: same-time events keep the order they were drawn in
    return Scenario(
        site=site,
        profile=profile,
        tenants=tenants,
        seed=draw(st.integers(0, 3)),
        # Reclaim with held attempts can start and stop one job for ever (test_a_reclaimed_job_does_not_take_back_...).
        hold_stopped="+reclaim+" not in profile and draw(st.booleans()),
        stop_delay_s=float(draw(st.sampled_from([0, 2, 15]))),
        events=tuple(events),
        runtime_s=runtime,
        fails=frozenset(fails),
    )


class Driver:
    """Plays a scenario against one engine and checks every call's actions against its own account."""

    MAX_CALLS = 4000

    def __init__(self, sc: Scenario) -> None:
        self.sc = sc
        self.topo = build_site(sc.site)
        self.tree = sc.tree
        self.engine = Engine(
            self.topo, sc.profile, tenants=self.tree, seed=sc.seed, validate=True, hold_stopped=sc.hold_stopped
        )
        profile = self.engine.profile
        self.profile = profile
        self.grace = profile.admit.award_grace_s
        self.quota = profile.admit.name == "quota" or getattr(profile.admit, "quota", False)
        self.safe = getattr(profile.admit, "safe", False)
        self.calls: list[tuple[list[Event], list[Action]]] = []
        self.heap: list[tuple[float, int, Event]] = [(e.time, i, e) for i, e in enumerate(sc.events)]
        heapq.heapify(self.heap)
        self.seq = len(sc.events)
        self.ticks: set[float] = set()
        self.jobs: dict[int, Job] = {}
        self.state: dict[int, JobState] = {}
        self.attempt: dict[int, int] = {}  # each job's latest attempt
        self.since: dict[int, float] = {}  # when its running attempt started
        self.left: dict[int, float] = {}  # work left when it started
        self.live: dict[tuple[int, int], Placement] = {}  # attempts whose processes may still run
        self.signalled: dict[tuple[int, int], float] = {}  # attempts told to checkpoint: when they are stopped
        self.node_up = np.ones(self.topo.num_nodes, np.bool_)
        self.node_open = np.ones(self.topo.num_nodes, np.bool_)
        self.max_rate: dict[int, float] = {}  # the most GPUs that charged each award at once
        # Once nothing runs and only ticks are left, the run is over a little after the last thing that happened:
        # two rounds and an award's grace later, and after every award's window has opened and closed.
        windows = [x for e in sc.events if isinstance(e, AwardChanged) for x in (e.award.start_s, e.award.end_s)]
        self.settle_s = 2 * profile.cycle.round_s + (self.grace or 0.0) + 1.0
        self.busy_until = max((x for x in windows if math.isfinite(x)), default=0.0) + self.settle_s

    def push(self, t: float, ev: Event) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, ev))

    def run(self) -> None:
        while self.heap:
            t = self.heap[0][0]
            quiet = not self.live and all(isinstance(e, Tick) for _, _, e in self.heap)
            if quiet and t > self.busy_until:
                break  # only ticks are left and nothing runs: the rest would change nothing
            batch = []
            while self.heap and self.heap[0][0] == t:
                batch.append(heapq.heappop(self.heap)[2])
            self.ticks.discard(t)
            self.step(t, batch)
            assert len(self.calls) < self.MAX_CALLS, "the run did not settle"

    # ---- one call ---------------------------------------------------------------------------------------------
    def step(self, t: float, batch: list[Event]) -> None:
        expected_stops: set[tuple[int, int]] = set()  # attempts the events must make the engine stop
        submitted: set[int] = set()
        gone: set[tuple[int, int]] = set()  # attempts whose end this batch reports (perhaps after their stop)
        for ev in batch:
            if isinstance(ev, JobSubmitted):
                self.jobs[ev.job.id] = ev.job
                # One that could never run here is rejected at once, before the events after it.
                never = self.engine.never_fits(ev.job) is not None
                self.state[ev.job.id] = JobState.REJECTED if never else JobState.PENDING
                self.attempt[ev.job.id] = 0
                self.left[ev.job.id] = self.sc.runtime_s[ev.job.id]
                submitted.add(ev.job.id)
            elif isinstance(ev, JobCancelled):
                if self.state.get(ev.job_id) is JobState.PENDING:
                    self.state[ev.job_id] = JobState.CANCELLED
                elif self.state.get(ev.job_id) is JobState.RUNNING:
                    expected_stops.add((ev.job_id, self.attempt[ev.job_id]))
                    self.state[ev.job_id] = JobState.CANCELLED
            elif isinstance(ev, (JobFinished, JobFailed, JobInterrupted)):
                self.live.pop((ev.job_id, ev.attempt), None)  # the attempt's processes are gone
                gone.add((ev.job_id, ev.attempt))
                if self.state[ev.job_id] is JobState.RUNNING and self.attempt[ev.job_id] == ev.attempt:
                    self.state[ev.job_id] = JobState.COMPLETED if isinstance(ev, JobFinished) else JobState.FAILED
            elif isinstance(ev, NodeFailed):
                self.node_up[ev.node] = False
                for jid, state in self.state.items():
                    pl = self.live.get((jid, self.attempt[jid]))
                    if state is JobState.RUNNING and pl is not None and ev.node in pl.nodes:
                        expected_stops.add((jid, self.attempt[jid]))
                        self.state[jid] = JobState.PENDING
            elif isinstance(ev, NodeRepaired):
                self.node_up[ev.node] = True
            elif isinstance(ev, NodeDrained):
                self.node_open[ev.node] = False
            elif isinstance(ev, NodeResumed):
                self.node_open[ev.node] = True
        actions = self.engine.handle(batch)
        self.calls.append((batch, actions))
        if not all(isinstance(x, (Tick, Wake)) for x in [*batch, *actions]):
            self.busy_until = max(self.busy_until, t + self.settle_s)
        stopped = self.check_actions(t, actions, expected_stops, submitted, gone)
        self.check_state(t, actions, stopped)

    def check_actions(
        self,
        t: float,
        actions: list[Action],
        expected_stops: set[tuple[int, int]],
        submitted: set[int],
        gone: set[tuple[int, int]],
    ) -> dict[int, StopReason]:
        eng = self.engine
        stopped: dict[int, StopReason] = {}
        for a in actions:
            assert a.time == t or isinstance(a, Wake)
            if isinstance(a, StartJob):
                job = self.jobs[a.job_id]
                assert self.state[a.job_id] is JobState.PENDING, f"job {a.job_id} started while {self.state[a.job_id]}"
                # A job preempted in a pass waits for the next one (see Engine._schedule).
                assert stopped.get(a.job_id) is not StopReason.PREEMPTED, f"job {a.job_id} preempted and restarted"
                assert a.attempt == self.attempt[a.job_id] + 1
                assert not [k for k in self.live if k[0] == a.job_id], f"job {a.job_id}: two live attempts"
                self.check_placement(job, a.placement)
                self.check_funded(t, job)
                self.state[a.job_id] = JobState.RUNNING
                self.attempt[a.job_id] = a.attempt
                self.since[a.job_id] = t
                self.live[(a.job_id, a.attempt)] = a.placement
                end = JobFailed(t + self.left[a.job_id], a.job_id, a.attempt) if a.job_id in self.sc.fails else None
                self.push(t + self.left[a.job_id], end or JobFinished(t + self.left[a.job_id], a.job_id, a.attempt))
            elif isinstance(a, StopJob):
                key = (a.job_id, a.attempt)
                assert self.attempt[a.job_id] == a.attempt and (key in self.live or key in gone), f"not running: {a}"
                stopped[a.job_id] = a.reason
                if a.reason in (StopReason.CANCELLED, StopReason.NODE_FAILED):
                    assert key in expected_stops, f"{a} without a cancel or a failed node"
                    expected_stops.discard(key)
                    assert a.requeue is (a.reason is StopReason.NODE_FAILED)
                else:
                    assert self.state[a.job_id] is JobState.RUNNING, a
                    assert a.requeue, a
                    self.state[a.job_id] = JobState.PENDING
                if a.reason is StopReason.PREEMPTED:
                    assert self.profile.preempt.name != "no-preempt", a
                    assert a.graceful is self.profile.preempt.graceful
                if a.reason is StopReason.AWARD:
                    assert self.grace is not None and a.graceful, a
                    assert self.signalled.get(key, math.inf) <= t + EPS, f"{a} before its checkpoint signal's grace"
                # A graceful stop keeps the work done; a kill loses it (these jobs write no checkpoints).
                ran = t - self.since[a.job_id]
                self.left[a.job_id] = self.left[a.job_id] - ran if a.graceful else self.sc.runtime_s[a.job_id]
                if self.sc.hold_stopped and key not in gone:
                    self.push(t + self.sc.stop_delay_s, JobInterrupted(t + self.sc.stop_delay_s, a.job_id, a.attempt))
                else:
                    self.live.pop(key, None)
            elif isinstance(a, SignalJob):
                assert self.grace is not None and self.state[a.job_id] is JobState.RUNNING
                assert a.stop_s == pytest.approx(t + self.grace)
                self.signalled.setdefault((a.job_id, a.attempt), a.stop_s)
            elif isinstance(a, RejectJob):
                assert a.job_id in submitted, a
                if a.status.code is Code.UNRESOLVABLE:
                    assert self.state[a.job_id] is JobState.REJECTED, a
                else:  # one that asked to start at once or not at all, and did not start
                    assert self.jobs[a.job_id].immediate and self.state[a.job_id] is JobState.PENDING, a
                    self.state[a.job_id] = JobState.REJECTED
                submitted.discard(a.job_id)
            elif isinstance(a, Wake):
                assert a.time >= t
                if a.time not in self.ticks:
                    self.ticks.add(a.time)
                    self.push(a.time, Tick(a.time))
        assert not expected_stops, f"attempts not stopped: {expected_stops}"
        assert not [j for j in submitted if eng.never_fits(self.jobs[j]) is not None], "a job that never fits was kept"
        return stopped

    def check_placement(self, job: Job, pl: Placement) -> None:
        """The placement is what the job asked for, on nodes that are up and open."""
        req, topo = job.request, self.topo
        assert pl.num_gpus == req.gpus, (job, pl)
        if req.gpus:
            assert pl.gpu_milli == req.gpu_milli, (job, pl)
        assert len(set(pl.nodes)) == len(pl.nodes) and len(pl.nodes) >= 1
        for n, gpus in zip(pl.nodes, pl.node_gpus, strict=True):
            assert self.node_up[n] and self.node_open[n], f"job {job.id} placed on node {n}, which is down or drained"
            assert all(topo.gpu_node[g] == n for g in gpus)
        assert sum(pl.cpu) >= req.cpu_milli and sum(pl.mem) >= req.mem_mib
        if req.locality is Locality.DOMAIN:
            assert len({int(topo.node_domain[n]) for n in pl.nodes}) == 1, (job, pl)
        elif req.locality is Locality.POD:
            assert len({int(topo.node_pod[n]) for n in pl.nodes}) == 1, (job, pl)

    def check_funded(self, t: float, job: Job) -> None:
        """Under ``award``, a job starts only on an award that can pay (or, without any, outside the pool)."""
        if self.grace is None:
            return
        book = self.engine.awards
        award = self.engine.job(job.id).award
        if award is None:
            assert not book.of_tenant(job.tenant), f"job {job.id} started charging no award though its tenant has some"
            assert getattr(self.profile.admit, "pool", "") not in self.tree.path(job.tenant), f"job {job.id} unfunded"
            return
        assert book[award].tenant == job.tenant and book[award].valid_at(t)
        assert book.left_gpu_s(award, t) > LEFT_EPS_GPU_S, f"job {job.id} started on used-up award {award}"
        if self.safe and job.estimate_s is not None:
            assert book.left_gpu_s(award, t) >= job.request.gpu_equivalent * job.estimate_s - EPS

    def check_state(self, t: float, actions: list[Action], stopped: dict[int, StopReason]) -> None:
        eng, topo = self.engine, self.topo
        # Every job is in exactly the state its actions and events put it in.
        for jid, state in self.state.items():
            assert eng.state_of(jid) is state, f"job {jid}: engine says {eng.state_of(jid)}, the actions say {state}"
        assert eng.counts() == {s: sum(v is s for v in self.state.values()) for s in JobState}
        running = sorted(j for j, s in self.state.items() if s is JobState.RUNNING)
        assert eng.running() == running
        for jid in running:
            assert eng.placement_of(jid, self.attempt[jid]) == self.live[(jid, self.attempt[jid])]
        # No GPU, CPU or memory is used beyond its capacity by the attempts that may still run.
        milli = np.zeros(topo.num_gpus, np.int64)
        cpu = np.zeros(topo.num_nodes, np.int64)
        mem = np.zeros(topo.num_nodes, np.int64)
        for pl in self.live.values():
            for n, gpus, c, m in zip(pl.nodes, pl.node_gpus, pl.cpu, pl.mem, strict=True):
                milli[list(gpus)] += pl.gpu_milli
                cpu[n] += c
                mem[n] += m
        assert (milli <= 1000).all(), "a GPU is oversubscribed"
        assert (cpu <= topo.node_cpu).all() and (mem <= topo.node_mem).all(), "a node's CPU or memory is oversubscribed"
        # Quotas: no account holds more GPUs than its limit.
        if self.quota:
            for name in self.tree.names():
                limit = self.tree[name].limit
                held = sum(eng.tenant_gpus(leaf) for leaf in self.tree.leaves() if name in self.tree.path(leaf))
                assert limit is None or held <= limit + EPS, f"{name} holds {held} GPUs over its limit {limit}"
        # Preemption: each victim ranked below the job it made room for (preempt), or was borrowed (reclaim).
        for jid, reason in stopped.items():
            if reason is StopReason.PREEMPTED:
                self.check_victim(jid, stopped)
        # Awards: never used beyond their hours by more than the grace allows.
        if self.grace is not None:
            book = eng.awards
            for award in book.charging():
                rate = sum(self.jobs[j].request.gpu_equivalent for j in book.jobs_on(award))
                self.max_rate[award] = max(self.max_rate.get(award, 0.0), rate)
            for a in book.awards():
                over = book.used_gpu_s(a.id, t) - a.gpu_s
                allowed = self.max_rate.get(a.id, 0.0) * self.grace
                assert over <= allowed + EPS * max(1.0, a.gpu_s), f"award {a.id} overrun by {over} GPU-s"

    def check_victim(self, victim: int, stopped: dict[int, StopReason]) -> None:
        eng = self.engine
        why = eng.story(victim)[-1].reason
        match = re.match(r"preempted for job (\d+) \((\S+)\)", why)
        assert match is not None, why
        winner = eng.job(int(match[1]))
        loser = eng.job(victim)
        if self.profile.preempt.name == "preempt":
            order = self.profile.order
            assert not order.grouped
            assert (*order.key(loser.job, loser.attained_s), victim) > winner.key, f"job {victim} ranked above"
        else:
            tenant = loser.job.tenant
            assert tenant != winner.job.tenant
            if not any(self.jobs[j].tenant == tenant and r is StopReason.AWARD for j, r in stopped.items()):
                owed = self.tree[tenant].guarantee or 0
                held = eng.tenant_gpus(tenant)
                assert held >= owed - EPS, f"reclaim left {tenant} with {held} GPUs, below its guarantee {owed}"

    # ---- when it is over --------------------------------------------------------------------------------------
    def check_drained(self) -> None:
        """Nothing runs, every node is back: each job has ended, or waits for a reason the admit policy gave."""
        eng = self.engine
        assert self.node_up.all() and self.node_open.all()
        assert not self.live and eng.running() == [] and eng.held() == {}
        for jid, job in self.jobs.items():
            state = eng.state_of(jid)
            if state.terminal:
                continue
            assert state is JobState.PENDING
            why = eng.job(jid).wait_reason
            assert why, f"job {jid} waits with nothing running and no reason"
            if self.grace is None:  # quota: only a job larger than a limit above it can wait for ever
                limits = [self.tree[a].limit for a in self.tree.path(job.tenant)]
                assert any(lim is not None and job.request.gpu_equivalent > lim + EPS for lim in limits), why
        for jid in self.jobs:
            story = eng.story(jid)
            assert story[0].old is None and story[-1].new is eng.state_of(jid)
            assert all(a.new is b.old for a, b in itertools.pairwise(story)), f"job {jid}: broken story"

    def replay(self) -> None:
        """The same events give the same actions, call by call."""
        sc = self.sc
        twin = Engine(self.topo, sc.profile, tenants=sc.tree, seed=sc.seed, hold_stopped=sc.hold_stopped)
        for batch, actions in self.calls:
            assert twin.handle(batch) == actions


def play(sc: Scenario) -> None:
    event(sc.profile.split("+")[3])
    note(repr(sc))
    driver = Driver(sc)
    driver.run()
    stops = {a.reason.value for _, actions in driver.calls for a in actions if isinstance(a, StopJob)}
    for reason in sorted(stops):
        event(f"stopped: {reason}")
    driver.check_drained()
    if sc.seed == 0:
        driver.replay()


@budget(60)
@given(sc=scenarios())
def test_every_extension_point_keeps_the_invariants_event_by_event(sc: Scenario) -> None:
    """Random sites, tenant trees, jobs, cancels, node failures and drains, awards, and a profile drawn over all six
    extension points: the engine's invariants hold after every event, the actions agree with the engine's state,
    and the run ends with every job ended or waiting for a reason its admit policy gives."""
    play(sc)


@budget(40)
@given(sc=scenarios(contended=True))
def test_preemption_keeps_the_invariants_when_one_tenant_has_taken_the_site(sc: Scenario) -> None:
    """The same, with a preemption policy, and a tenant without a guarantee that holds the site when others come."""
    play(sc)
