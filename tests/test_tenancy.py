"""Tenancy and preemption in the engine: fair-share, quota, reclaim, LAS with preemption, rounds."""

from __future__ import annotations

import math
import random
from dataclasses import replace

import pytest

from conftest import make_job
from gigafactory.core import (
    Action,
    JobFinished,
    JobId,
    JobInterrupted,
    JobState,
    JobSubmitted,
    StartJob,
    StopJob,
    StopReason,
    Tenant,
    TenantTree,
    Tick,
    Wake,
    build_site,
)
from gigafactory.core.progress import Checkpointing
from gigafactory.engine import Engine


def started(actions: list[Action]) -> list[int]:
    return [a.job_id for a in actions if isinstance(a, StartJob)]


def test_fair_share_serves_the_tenant_furthest_below_its_share() -> None:
    tree = TenantTree([Tenant("a", 1), Tenant("b", 1)])
    e = Engine(build_site("uniform:nodes=1,gpus=4"), "fair-share+none+first-fit", tenants=tree, validate=True)
    # Tenant a fills the node for an hour and builds up usage.
    e.handle([JobSubmitted(0, make_job(1, 4, est=3600, tenant="a"))])
    # Both tenants queue work; a submitted first, but b has used nothing.
    e.handle(
        [JobSubmitted(10, make_job(2, 4, est=60, tenant="a")), JobSubmitted(20, make_job(3, 4, est=60, tenant="b"))]
    )
    assert started(e.handle([JobFinished(3600, JobId(1), 1)])) == [3]
    assert e.usage_gpu_s("a") > e.usage_gpu_s("b")


def test_fair_share_follows_the_tree() -> None:
    # eu (share 3) holds de and fr; industry (1) is alone. Ranking starts at the top of the tree: eu before
    # industry, then fr (unused) before de inside eu.
    tree = TenantTree(
        [Tenant("eu", 3), Tenant("industry", 1), Tenant("de", 1, parent="eu"), Tenant("fr", 1, parent="eu")]
    )
    e = Engine(build_site("uniform:nodes=3,gpus=4"), "fair-share+none+first-fit", tenants=tree, validate=True)
    e.handle(
        [
            JobSubmitted(0, make_job(1, 4, est=1000, tenant="de")),
            JobSubmitted(0, make_job(2, 4, est=1000, tenant="industry")),
        ]
    )
    # One node is left. eu (share 3/4) and industry (1/4) have used the same: eu is further below its share.
    acts = e.handle(
        [
            JobSubmitted(500, make_job(3, 4, est=10, tenant="industry")),
            JobSubmitted(500, make_job(4, 4, est=10, tenant="fr")),
        ]
    )
    assert started(acts) == [4]


def test_quota_passes_over_a_tenant_at_its_limit_without_blocking_others() -> None:
    tree = TenantTree([Tenant("a", limit=4), Tenant("b")])
    e = Engine(build_site("uniform:nodes=2,gpus=4"), "fifo+quota+none+first-fit", tenants=tree, validate=True)
    acts = e.handle(
        [
            JobSubmitted(0, make_job(1, 4, tenant="a")),
            JobSubmitted(0, make_job(2, 4, tenant="a")),  # would take a to 8 GPUs: over its limit
            JobSubmitted(0, make_job(3, 4, tenant="b")),
        ]
    )
    assert started(acts) == [1, 3]
    assert e.state_of(2) is JobState.PENDING
    assert e.stats.over_quota >= 1


def test_reclaim_takes_back_guaranteed_gpus_from_the_borrower_that_loses_least() -> None:
    tree = TenantTree([Tenant("owner", guarantee=8), Tenant("borrower")])
    e = Engine(build_site("uniform:nodes=3,gpus=4"), "fifo+reclaim+none+first-fit", tenants=tree, validate=True)
    hourly = Checkpointing(interval_s=3600, write_s=10)
    borrow = [replace(make_job(i, 4, tenant="borrower"), checkpoint=hourly) for i in (1, 2, 3)]
    e.handle([JobSubmitted(0, borrow[0])])
    e.handle([JobSubmitted(1800, borrow[1]), JobSubmitted(1800, borrow[2])])  # later: less unsaved work
    acts = e.handle([JobSubmitted(3000, make_job(4, 4, tenant="owner"))])
    stops = [a for a in acts if isinstance(a, StopJob)]
    assert len(stops) == 1 and stops[0].reason is StopReason.PREEMPTED and not stops[0].graceful
    assert stops[0].job_id in (2, 3)  # 1200 s unsaved, against 3000 s for job 1
    assert started(acts) == [4]
    # The owner is at its guarantee now: it may not reclaim more.
    acts = e.handle([JobSubmitted(3100, make_job(5, 4, tenant="owner"))])
    assert not [a for a in acts if isinstance(a, StopJob)]


def test_las_with_preemption_stops_a_demoted_job_for_a_new_one() -> None:
    e = Engine(
        build_site("uniform:nodes=1,gpus=4"), "las:queues=2,threshold_gpu_h=1+greedy+preempt+first-fit", validate=True
    )
    e.handle([JobSubmitted(0, make_job(1, 4, est=10_000))])
    # After 1,800 s it has 2 GPU-hours: demoted. A newcomer in the first queue preempts it, gracefully.
    acts = e.handle([JobSubmitted(1800, make_job(2, 4, est=100))])
    stops = [a for a in acts if isinstance(a, StopJob)]
    assert [s.job_id for s in stops] == [1] and stops[0].graceful
    assert started(acts) == [2]
    assert e.job(1).attained_s == 4 * 1800
    # A job in the same (first) queue never preempts an earlier one.
    e2 = Engine(build_site("uniform:nodes=1,gpus=4"), "las:queues=2+greedy+preempt+first-fit", validate=True)
    e2.handle([JobSubmitted(0, make_job(1, 4, est=10_000))])
    assert e2.handle([JobSubmitted(60, make_job(2, 4, est=100))]) == []


def test_rounds_schedule_only_on_ticks() -> None:
    e = Engine(build_site("uniform:nodes=1,gpus=4"), "fifo+rounds:interval=60+first-fit", validate=True)
    acts = e.handle([JobSubmitted(10, make_job(1, 1))])
    assert acts == [Wake(60.0)]
    assert started(e.handle([Tick(60.0)])) == [1]
    acts = e.handle([JobSubmitted(61, make_job(2, 1)), JobSubmitted(62, make_job(3, 1))])
    assert acts == [Wake(120.0)]
    assert started(e.handle([Tick(120.0)])) == [2, 3]


def test_tenant_trees_are_checked_against_the_site() -> None:

    from gigafactory.core import ConfigError

    with pytest.raises(ConfigError, match="guarantees under the site add up to 12 GPUs, above its 8"):
        Engine(
            build_site("uniform:nodes=1,gpus=8"),
            tenants=TenantTree([Tenant("a", guarantee=6), Tenant("b", guarantee=6)]),
        )


def test_reclaim_never_pushes_a_borrower_below_its_guarantee_by_stopping_several_of_its_jobs() -> None:
    # The borrower holds 8 GPUs, 4 above its guarantee, in three jobs; each alone may be stopped, but not all three.
    tree = TenantTree([Tenant("owner", guarantee=8), Tenant("borrower", guarantee=4), Tenant("c")])
    e = Engine(build_site("uniform:nodes=2,gpus=8"), "fifo+reclaim+none+first-fit", tenants=tree, validate=True)
    e.handle([JobSubmitted(0, make_job(1, 8, tenant="c"))])
    e.handle([JobSubmitted(100, make_job(i, g, tenant="borrower")) for i, g in ((2, 2), (3, 2), (4, 4))])
    acts = e.handle([JobSubmitted(200, make_job(5, 8, tenant="owner"))])
    # The borrower's jobs lose the least work, but only c can give up a node and keep its guarantee.
    assert [(type(a), a.job_id) for a in acts if isinstance(a, StartJob | StopJob)] == [(StopJob, 1), (StartJob, 5)]
    assert e.tenant_gpus("borrower") == 8


def test_jobs_preempted_in_a_pass_wait_for_the_next_one_and_keep_their_order() -> None:
    tree = TenantTree([Tenant("owner", guarantee=8), Tenant("c")])
    e = Engine(build_site("uniform:nodes=2,gpus=8"), "fifo+reclaim+none+first-fit", tenants=tree, validate=True)
    e.handle([JobSubmitted(0, make_job(i, 4, tenant="c")) for i in (1, 2, 3)])  # node 0 full, node 1 half
    acts = e.handle([JobSubmitted(10, make_job(4, 8, tenant="owner"))])
    # Jobs 1 and 2 make room on node 0. Neither starts again in the same pass (the walk once re-visited job 2 and
    # started it on node 1's free GPUs, ahead of job 1).
    assert [(type(a), getattr(a, "job_id", None)) for a in acts] == [(StopJob, 1), (StopJob, 2), (StartJob, 4)]
    assert started(e.handle([Tick(11)])) == [1]


def test_a_reclaimed_job_does_not_take_back_what_was_reclaimed_while_its_attempt_was_stopping() -> None:
    """Found by test_every_extension_point_keeps_the_invariants_event_by_event: with hold_stopped (the control
    plane's engine) the borrower's job, back in the queue ahead of the owner's, started again on what reclaim had
    freed, and was reclaimed again, every pass for ever. The room a job made is now its own."""
    tree = TenantTree([Tenant("a"), Tenant("c", guarantee=2)])
    site = build_site("uniform:nodes=1,gpus=2")
    e = Engine(site, "fifo+reclaim+none+first-fit", tenants=tree, validate=True, hold_stopped=True)
    acts = e.handle([JobSubmitted(0, make_job(1, 1, tenant="a")), JobSubmitted(0, make_job(2, 2, tenant="c"))])
    assert [(type(a), getattr(a, "job_id", None)) for a in acts] == [(StartJob, 1), (StopJob, 1)]
    for _ in range(3):  # each stopped attempt ends at once
        acts = e.handle([JobInterrupted(1, a.job_id, a.attempt) for a in acts if isinstance(a, StopJob)])
    assert e.state_of(2) is JobState.RUNNING
    assert e.job(1).attempt == 1


def _fair_tree_order(tree: TenantTree, usage: dict[str, float]) -> list[str]:
    """Slurm's Fair Tree, written out plainly: from the root, siblings by share/usage among them (highest first,
    unused first, ties by name), depth first; the leaves in the order met."""
    out: list[str] = []

    def used(name: str) -> float:
        kids = tree.children(name)
        return sum(used(k) for k in kids) if kids else usage.get(name, 0.0)

    def walk(node: str) -> None:
        kids = tree.children(node)
        if not kids:
            out.append(node)
            return
        total_share = sum(tree[k].share for k in kids)
        whole = sum(used(k) for k in kids)

        def level(k: str) -> float:
            u = used(k)
            return math.inf if whole <= 0 or u <= 0 else (tree[k].share / total_share) / (u / whole)

        for k in sorted(kids, key=lambda k: (-level(k), k)):
            walk(k)

    walk("root")
    return out


@pytest.mark.parametrize("seed", range(30))
def test_fair_share_keys_sort_the_leaves_in_fair_tree_order(seed: int) -> None:
    from gigafactory.policy.order.fair_share import _fair_keys

    rng = random.Random(seed)
    tenants = []
    for i in range(rng.randint(2, 14)):
        parent = f"t{rng.randrange(i)}" if i and rng.random() < 0.6 else "root"
        tenants.append(Tenant(f"t{i}", rng.choice([1, 2, 3]), parent=parent))
    tree = TenantTree(tenants)
    leaves = [t.name for t in tenants if not tree.children(t.name)]
    # Usage: some unused, some equal (ties go by name), otherwise spread over orders of magnitude.
    usage = {n: rng.choice([0.0, 5.0, 5.0, rng.uniform(0, 1e6)]) for n in leaves}
    keys = _fair_keys(tree, usage, leaves)
    assert sorted(leaves, key=lambda g: (keys[g], g)) == _fair_tree_order(tree, usage)
