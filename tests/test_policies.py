"""Placement, order and backfill policies, table-driven; and profiles."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from conftest import make_job
from gigafactory.core import Capacity, ConfigError, Locality, Placement, build_site
from gigafactory.policy import PLACE, PlaceContext, parse_profile, profile_from_table
from gigafactory.policy.place.common import cover


def _fill(cap: Capacity, node: int, gpus: int) -> None:
    """Take ``gpus`` whole GPUs on ``node``."""
    topo = cap.topo
    start = int(topo.gpu_start[node])
    free = [start + i for i, f in enumerate(cap.gpu_free[start : start + int(topo.node_gpus[node])]) if f == 1000]
    cap.allocate(Placement((node,), (tuple(free[:gpus]),), 1000, (0,), (0,)))


def _place(policy: str, cap: Capacity, job_gpus: int, **kw: Any) -> Placement:
    placer = PLACE.get(policy).build()
    result = placer.place(make_job(1, job_gpus, **kw), cap, PlaceContext(np.random.default_rng(0)))
    assert isinstance(result, Placement), result
    return result


@pytest.fixture
def nvl() -> Capacity:
    """Two pods of two NVL72 racks (nodes 0-17, 18-35 | 36-53, 54-71); some nodes partly used."""
    cap = Capacity(build_site("gb200-nvl72:racks=4,pod_racks=2"))
    _fill(cap, 5, 3)  # rack 0: node 5 has 1 free
    _fill(cap, 20, 2)  # rack 1: node 20 has 2 free
    for n in range(36, 50):  # rack 2 mostly full: 4 whole nodes left (50..53)
        _fill(cap, n, 4)
    return cap


@pytest.mark.parametrize(
    ("policy", "gpus", "node"),
    [
        ("first-fit", 1, 0),  # the lowest-numbered node with room
        ("best-fit", 1, 5),  # the node left with the fewest free GPUs
        ("best-fit", 2, 20),
        ("packing", 1, 50),  # the fullest domain (rack 2, 16 free), then its fullest node
        ("topology", 1, 50),  # fullest pod first (pod 1), then fullest domain (rack 2), then node
        ("topology", 4, 50),
    ],
)
def test_single_node_choice(nvl: Capacity, policy: str, gpus: int, node: int) -> None:
    pl = _place(policy, nvl, gpus)
    assert pl.nodes == (node,)
    assert len(pl.node_gpus[0]) == gpus


def test_whole_gpus_are_the_lowest_free_indices(nvl: Capacity) -> None:
    pl = _place("best-fit", nvl, 2)  # node 20: GPUs 80, 81 taken
    assert pl.node_gpus == ((82, 83),)


def test_random_is_seeded() -> None:
    cap = Capacity(build_site("uniform:nodes=50,gpus=8"))
    placer = PLACE.get("random").build()

    def pick(seed: int) -> tuple[int, ...]:
        result = placer.place(make_job(1, 1), cap, PlaceContext(np.random.default_rng(seed)))
        assert isinstance(result, Placement), result
        return result.nodes

    assert pick(3) == pick(3)
    assert len({pick(seed) for seed in range(20)}) > 5


@pytest.mark.parametrize("policy", ["first-fit", "best-fit", "packing", "topology", "random"])
def test_every_policy_keeps_a_domain_gang_in_one_rack(nvl: Capacity, policy: str) -> None:
    pl = _place(policy, nvl, 16, locality=Locality.DOMAIN)
    domains = {int(nvl.topo.node_domain[n]) for n in pl.nodes}
    assert len(domains) == 1
    assert pl.num_gpus == 16
    assert all(len(g) == 4 for g in pl.node_gpus)


def test_topology_prefers_the_smallest_unit_that_holds_the_gang(nvl: Capacity) -> None:
    # 16 GPUs fit in rack 2 (4 whole nodes left): topology takes exactly that rack, the fullest one.
    pl = _place("topology", nvl, 16)
    assert {int(nvl.topo.node_domain[n]) for n in pl.nodes} == {2}
    # 80 GPUs (20 nodes) fit in no rack; pod 1 (the fuller pod that still holds them) does, in its two racks.
    pl = _place("topology", nvl, 80)
    assert {int(nvl.topo.node_pod[n]) for n in pl.nodes} == {1}
    assert len({int(nvl.topo.node_domain[n]) for n in pl.nodes}) == 2


def test_gang_remainder_goes_to_a_partly_used_node_nearby(nvl: Capacity) -> None:
    pl = _place("topology", nvl, 6, locality=Locality.DOMAIN)  # one whole node + 2 GPUs
    assert pl.num_gpus == 6
    assert len(pl.nodes) == 2
    assert {int(nvl.topo.node_domain[n]) for n in pl.nodes} == {int(nvl.topo.node_domain[pl.nodes[0]])}


def test_gang_spreads_cpu_and_memory_over_its_nodes() -> None:
    cap = Capacity(build_site("uniform:nodes=4,gpus=8"))
    pl = _place("first-fit", cap, 20, cpu=20_000, mem=2_000)
    assert pl.nodes == (0, 1, 2)
    assert pl.cpu == (8000, 8000, 4000)
    assert pl.mem == (800, 800, 400)


def test_non_gang_jobs_scatter_over_free_gpus() -> None:
    cap = Capacity(build_site("uniform:nodes=3,gpus=4"))
    _fill(cap, 0, 2)
    _fill(cap, 1, 3)
    pl = _place("best-fit", cap, 7, gang=False)
    assert pl.num_gpus == 7
    assert pl.nodes[:2] == (1, 0)  # the fullest nodes first


def test_non_gang_jobs_keep_their_locality() -> None:
    """Found by test_every_extension_point_keeps_the_invariants_event_by_event: the scatter placement took free GPUs
    in any pod, though JobRequest keeps all of a job's GPUs in one and Engine.never_fits holds it to one."""
    cap = Capacity(build_site("uniform:nodes=3,gpus=2,pod_nodes=2"))  # pods: nodes 0 and 1 | node 2
    _fill(cap, 0, 2)
    placer = PLACE.get("first-fit").build()
    job = make_job(1, 3, locality=Locality.POD, gang=False)
    # No pod has 3 free GPUs (pod 0 has node 1's two, pod 1 node 2's two): the job must wait.
    result = placer.place(job, cap, PlaceContext(np.random.default_rng(0)))
    assert not isinstance(result, Placement), result
    # Two GPUs fit in either pod; the tightest that holds them is taken, whole.
    pl = placer.place(make_job(2, 2, locality=Locality.POD, gang=False), cap, PlaceContext(np.random.default_rng(0)))
    assert isinstance(pl, Placement) and pl.num_gpus == 2
    assert len({cap.topo.node_pod[n] for n in pl.nodes}) == 1


def test_fractional_request_best_fits_one_gpu() -> None:
    cap = Capacity(build_site("uniform:nodes=1,gpus=3"))
    cap.allocate(Placement((0,), ((1,),), 700, (0,), (0,)))  # GPU 1 has 300 left
    pl = _place("best-fit", cap, 1, milli=250)
    assert pl.node_gpus == ((1,),)
    assert pl.gpu_milli == 250


def test_exclusion_mask_is_respected() -> None:
    cap = Capacity(build_site("uniform:nodes=3,gpus=8"))
    placer = PLACE.get("first-fit").build()
    exclude = np.array([True, True, False])
    pl = placer.place(make_job(1, 8), cap, PlaceContext(np.random.default_rng(0), exclude))
    assert isinstance(pl, Placement) and pl.nodes == (2,)
    exclude[2] = True
    assert not isinstance(placer.place(make_job(1, 8), cap, PlaceContext(np.random.default_rng(0), exclude)), Placement)


def test_cover_uses_few_groups_and_best_fits_the_last() -> None:
    nodes = np.arange(10)
    groups = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 3])
    rank = np.arange(10)
    taken = cover(nodes, groups, 5, rank)
    # Group 0 (4 nodes) whole, then the 1 left from the smallest group that holds it (group 3).
    assert sorted(taken.tolist()) == [0, 1, 2, 3, 9]


def _cover_by_rule(nodes: np.ndarray, groups: np.ndarray, need: int, rank: np.ndarray) -> list[int]:
    """cover's rule, step by step: while no group left holds the remainder, take the largest (lowest id on ties)
    whole; then the lowest-ranked nodes of the smallest group left (lowest id on ties) that holds the rest."""
    left = {int(g): sorted(nodes[groups == g].tolist(), key=lambda n: rank[n]) for g in np.unique(groups)}
    out: list[int] = []
    while need > 0 and left:
        fit = [g for g in sorted(left) if len(left[g]) >= need]
        if fit:
            return out + left[min(fit, key=lambda g: len(left[g]))][:need]
        taken = left.pop(max(sorted(left), key=lambda g: len(left[g])))
        out += taken
        need -= len(taken)
    return out


def test_cover_takes_the_groups_its_rule_names_on_random_sites() -> None:
    rng = np.random.default_rng(11)
    for trial in range(2000):
        n = int(rng.integers(1, 120))
        nodes = np.sort(rng.choice(300, size=n, replace=False)).astype(np.int64)
        groups = rng.integers(0, int(rng.integers(1, 30)), size=n).astype(np.int64)
        rank = rng.permutation(300).astype(np.int64)
        need = int(rng.integers(1, n + 5))
        assert cover(nodes, groups, need, rank).tolist() == _cover_by_rule(nodes, groups, need, rank), trial


def test_order_keys() -> None:
    fifo = parse_profile("fifo").order
    prio = parse_profile("priority").order
    sjf = parse_profile("sjf").order
    a = make_job(1, 8, submit=10, est=100)
    b = make_job(2, 1, submit=20, est=500, priority=5)
    assert fifo.key(a, 0.0) < fifo.key(b, 0.0)
    assert prio.key(b, 0.0) < prio.key(a, 0.0)
    assert sjf.key(b, 0.0) < sjf.key(a, 0.0)  # 500 GPU-seconds < 800
    assert parse_profile("sjf:by=time").order.key(a, 0.0) < parse_profile("sjf:by=time").order.key(b, 0.0)


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("fifo+easy+best-fit", "fifo+easy+best-fit"),
        ("best-fit+easy+fifo", "fifo+easy+best-fit"),
        ("sjf", "sjf+none+best-fit"),
        ("default", "fifo+easy+topology"),
        ("easy:depth=50+random", "fifo+easy:depth=50+random"),
    ],
)
def test_profiles_parse_to_a_canonical_name(text: str, canonical: str) -> None:
    assert str(parse_profile(text)) == canonical


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("fifo+bogus", "unknown policy 'bogus'; known: order: fair-share, fifo, las, priority, sjf; admit: admit-all"),
        ("fifo+easy+topolgy", r"unknown policy 'topolgy' \(did you mean 'topology'\?\); known: order:"),
        ("bogus+fifo+topolgy+sjf", r"unknown policies 'bogus', 'topolgy' \(did you mean 'topology'\?\); known:"),
        ("fifo+sjf", "names two order policies"),
        ("easy:depth=0", "depth='0' must be at least 1"),
        ("easy:width=3", "unknown parameter 'width'; allowed: depth"),
        ("", "empty policy profile"),
    ],
)
def test_bad_profiles_say_what_is_allowed(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_profile(text)


def test_profile_from_a_toml_table() -> None:
    p = profile_from_table({"order": "sjf", "backfill": {"name": "easy", "depth": 7}, "place": "packing"})
    assert str(p) == "sjf+easy:depth=7+packing"
    assert p.backfill.depth == 7
    with pytest.raises(ConfigError, match="unknown place policy 'nope'"):
        profile_from_table({"place": "nope"})
    with pytest.raises(ConfigError, match="unknown key 'admission'"):
        profile_from_table({"admission": "quota"})
    assert str(profile_from_table({"order": "fair-share", "admit": "quota", "preempt": "reclaim"})) == (
        "fair-share+none+best-fit+quota+reclaim"
    )
