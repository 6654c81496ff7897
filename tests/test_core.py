"""The vocabulary: topology, presets, specs, requests, tenants, registries, capacity."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gigafactory.core import (
    Capacity,
    ConfigError,
    InvariantError,
    JobRequest,
    Placement,
    RequestError,
    Tenant,
    TenantTree,
    Topology,
    UnknownNameError,
    build_site,
)
from gigafactory.core.agenda import Agenda
from gigafactory.core.capacity import _CELL_GROUPS
from gigafactory.core.jobs import Job, JobId
from gigafactory.core.registry import Registry
from gigafactory.core.spec import parse_spec


def test_gb200_preset_is_a_100k_gpu_site() -> None:
    topo = build_site("gb200-nvl72:racks=1389")
    assert topo.num_gpus == 100_008
    assert topo.num_nodes == 1389 * 18
    assert topo.num_domains == 1389
    assert topo.num_pods == 174  # 8 racks per pod, rounded up
    assert set(topo.node_gpus.tolist()) == {4}
    # Every rack is one contiguous NVLink domain of 18 nodes.
    assert np.array_equal(np.diff(topo.domain_start), np.full(1389, 18))
    assert topo.node_names[18] == "r0001-n00"


def test_hgx_and_uniform_presets() -> None:
    hgx = build_site("hgx-h100:nodes=64,pod_nodes=32")
    assert (hgx.num_gpus, hgx.num_domains, hgx.num_pods) == (512, 64, 2)
    uni = build_site("uniform:nodes=3,gpus=2,model=A100")
    assert uni.num_gpus == 6
    assert uni.models == ("A100",)
    assert uni.gpus_by_model() == {"A100": 6}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nope", "unknown site preset 'nope'; known: gb200-nvl72, hgx-h100, uniform"),
        ("uniform:nodes=0", "nodes='0' must be at least 1"),
        ("uniform:nodes=-3", "nodes='-3' must be at least 1"),
        ("uniform:nodes=two", "nodes='two' is not a valid int"),
        ("uniform:gpus=4,foo=1", "unknown parameter 'foo'; allowed: cpu, gpus, mem_gib, model, nodes, pod_nodes"),
        ("uniform:model=X100", "unknown GPU model 'X100'"),
        ("gb200-nvl72:racks=1,racks=2", "given twice"),
    ],
)
def test_bad_site_specs_name_the_bad_value(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_site(spec)


def test_spec_parsing_keeps_paths_with_colons() -> None:
    spec = parse_spec("philly:/data/a:b.csv,from=2017-10-01")
    assert spec.name == "philly"
    assert spec.params == {"": "/data/a:b.csv", "from": "2017-10-01"}
    assert str(parse_spec("llm:load=0.5")) == "llm:load=0.5"


def test_topology_rejects_unordered_domains() -> None:
    with pytest.raises(ConfigError, match="ordered by domain"):
        Topology.from_columns(
            "bad", models=("H100",), node_model=[0, 0], node_gpus=[8, 8], node_cpu=[1, 1], node_mem=[1, 1],
            node_domain=[1, 0],
        )  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"gpus": -1}, "must not be negative"),
        ({"gpus": 0}, "at least one GPU or some CPU"),
        ({"gpus": 2, "gpu_milli": 500}, "takes part of one GPU"),
        ({"gpus": 1, "gpu_milli": 0}, "between 1 and 1000"),
        ({"gpus": 1, "gpu_milli": 1500}, "between 1 and 1000"),
        ({"gpus": 1, "models": ()}, "allows no GPU model"),
    ],
)
def test_impossible_requests_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(RequestError, match=message):
        JobRequest(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("estimate", [math.nan, -1.0])
def test_a_job_whose_time_limit_is_not_a_time_is_refused(estimate: float) -> None:
    with pytest.raises(RequestError, match=r"estimate_s=.* must be a number of seconds"):
        Job(JobId(1), JobRequest(gpus=1), 0.0, estimate_s=estimate)
    assert Job(JobId(1), JobRequest(gpus=1), 0.0, estimate_s=math.inf).estimate_s == math.inf  # (no limit)


def test_request_normalises_models_and_measures_itself() -> None:
    req = JobRequest(gpus=1, gpu_milli=250, models=("T4", "A10", "T4"))
    assert req.models == ("A10", "T4")
    assert req.fractional
    assert req.gpu_equivalent == 0.25


def test_tenant_tree_normalises_shares_through_the_hierarchy() -> None:
    tree = TenantTree(
        [
            Tenant("eu", 3),
            Tenant("industry", 1),
            Tenant("de", 1, parent="eu"),
            Tenant("fr", 2, parent="eu"),
        ]
    )
    assert tree.normalised_share("eu") == pytest.approx(0.75)
    assert tree.normalised_share("fr") == pytest.approx(0.5)
    assert tree.normalised_share("de") == pytest.approx(0.25)
    assert tree.leaves() == ["de", "fr", "industry"]
    assert tree.path("fr") == ["eu", "fr"]


@pytest.mark.parametrize(
    ("tenants", "message"),
    [
        ([Tenant("a", 0)], "share=0 must be greater than 0"),
        ([Tenant("a"), Tenant("a")], "defined twice"),
        ([Tenant("a", parent="b")], "parent 'b' is not a tenant"),
        ([Tenant("a", parent="b"), Tenant("b", parent="a")], "cycle"),
        ([Tenant("a", guarantee=10, limit=5)], "above its limit"),
    ],
)
def test_inconsistent_tenant_trees_are_refused(tenants: list[Tenant], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TenantTree(tenants)


def test_guarantees_above_capacity_are_refused() -> None:
    tree = TenantTree([Tenant("a", guarantee=60), Tenant("b", guarantee=50)])
    with pytest.raises(ConfigError, match="add up to 110 GPUs, above its 100"):
        tree.check_capacity(100)


def test_registry_refuses_duplicates_and_lists_known_names() -> None:
    reg: Registry[int] = Registry("thing")
    reg.add("b", 1)
    reg.add("a", 2)
    with pytest.raises(ValueError, match="already registered"):
        reg.add("a", 3)
    with pytest.raises(UnknownNameError, match="unknown thing 'c'; known: a, b"):
        reg.get("c")
    assert list(reg) == ["a", "b"]


def _pl(nodes: tuple[int, ...], gpus: tuple[tuple[int, ...], ...], milli: int = 1000) -> Placement:
    return Placement(nodes, gpus, milli, (0,) * len(nodes), (0,) * len(nodes))


def test_capacity_tracks_allocation_and_release() -> None:
    topo = build_site("gb200-nvl72:racks=2,pod_racks=1")
    cap = Capacity(topo)
    assert cap.domain_whole.tolist() == [72, 72]
    pl = _pl((0, 1), ((0, 1, 2, 3), (4, 5)))
    cap.allocate(pl)
    assert cap.node_whole[:2].tolist() == [0, 2]
    assert cap.domain_whole.tolist() == [66, 72]
    assert cap.pod_whole.tolist() == [66, 72]
    assert cap.hist[0].tolist() == [1, 0, 1, 0, 34]
    assert cap.full[0, 4] == 34
    assert cap.used_milli == 6000
    cap.check([pl])
    epoch = cap.grow_epoch
    cap.release(pl)
    assert cap.grow_epoch == epoch + 1
    assert cap.domain_whole.tolist() == [72, 72]
    cap.check([])


def test_capacity_shares_gpus_by_milli_and_refuses_over_allocation() -> None:
    topo = build_site("uniform:nodes=1,gpus=2")
    cap = Capacity(topo)
    a = _pl((0,), ((0,),), milli=600)
    cap.allocate(a)
    assert cap.node_maxfree[0] == 1000
    assert cap.node_whole[0] == 1
    cap.allocate(_pl((0,), ((1,),), milli=900))
    assert cap.node_maxfree[0] == 400
    with pytest.raises(InvariantError, match="would hold"):
        cap.allocate(_pl((0,), ((0,),), milli=500))


def test_vectorised_path_agrees_with_a_fresh_recount() -> None:
    topo = build_site("gb200-nvl72:racks=3,pod_racks=2")
    cap = Capacity(topo)
    nodes = tuple(range(40))
    big = Placement(nodes, tuple(topo.node_gpu_ids[n] for n in nodes), 1000, (1000,) * 40, (10,) * 40)
    small = _pl((45,), ((180, 181),))
    cap.allocate(big)
    cap.allocate(small)
    cap.check([big, small])
    cap.release(big)
    cap.check([small])
    # Whole GPUs beside a shared one (node 41 keeps 700 milli on one GPU) and a node half taken (49).
    ids = topo.node_gpu_ids
    shared = _pl((41,), ((ids[41][0],),), milli=300)
    nodes = tuple(n for n in range(30, 51) if n != 45)  # node 45 holds the small job
    gpus = tuple(ids[n][1:] if n == 41 else ids[n][:2] if n == 49 else ids[n] for n in nodes)
    gang = Placement(nodes, gpus, 1000, (0,) * 20, (0,) * 20)
    cap.allocate(shared)
    cap.allocate(gang)
    cap.check([small, shared, gang])
    assert (cap.node_whole[41], cap.node_maxfree[41], cap.node_milli[41]) == (0, 700, 700)
    assert (cap.node_whole[49], cap.node_maxfree[49]) == (2, 1000)
    cap.release(gang)
    cap.check([small, shared])


def test_gangs_on_whole_nodes_agree_with_a_fresh_recount_through_marks_and_failures() -> None:
    topo = build_site("gb200-nvl72:racks=3,pod_racks=2")  # 54 nodes of 4 GPUs, domains of 18, pods of 36
    assert topo.largest_group == (18, 36)  # (a gang of more nodes skips that level)
    cap = Capacity(topo)

    def gang(nodes: list[int]) -> Placement:
        cpu = (2000,) * len(nodes)
        return Placement.on_whole_nodes(np.array(nodes), topo.node_gpu_ids, topo.gpu_start, 4, cpu, (64,) * len(nodes))

    a = gang(list(range(5, 25)))  # across two domains
    arrays = a.cpu_mem_arrays  # made with the placement (alike on every node of a gang)
    assert arrays is not None and arrays[0].tolist() == [2000] * 20 and arrays[1].tolist() == [64] * 20
    cap.allocate(a)
    assert a._views.groups is not None  # counted once per placement, by model, domain and pod
    cap.check([a])
    assert cap.domain_full.tolist() == [5, 11, 18] and cap.domain_whole.tolist() == [20, 44, 72]
    cap.mark(np.isin(np.arange(topo.num_nodes), [30, 31]))
    assert cap.marked_full[0, 4] == 2
    b = gang(list(range(26, 40)))  # holds the marked nodes: they move in the marked counts too
    cap.allocate(b)
    assert b._views.groups is not None
    cap.check([a, b])  # recounts every column, the marked ones included
    assert cap.marked_full[0, 4] == 0 and cap.marked_hist[0, 0] == 2
    cap.set_node(6, up=False)  # a node of a fails: its release must leave it out of the pool (the general path)
    cap.release(a)
    cap.check([b])
    cap.set_node(6, up=True)
    cap.release(b)  # back to free, the marked nodes with it
    cap.check([])
    assert cap.marked_full[0, 4] == 2
    cap.mark(np.zeros(topo.num_nodes, np.bool_))
    cap.check([])
    cap.allocate(a)  # the counts made for a's first start serve again
    cap.check([a])
    with pytest.raises(InvariantError, match="over-allocate"):
        cap.allocate(gang(list(range(22, 40))))  # overlaps a: refused before anything changes
    cap.release(a)
    with pytest.raises(InvariantError, match="does not hold"):
        cap.release(a)  # twice: refused before anything changes
    cap.check([])
    assert cap.whole_total == topo.num_gpus and cap.used_nodes == 0


def test_a_gang_over_many_domains_and_pods_moves_their_counts_at_once() -> None:
    """A whole-node gang over more than 32 domains and pods moves their aggregates as vectors (else cell by
    cell): both paths agree with a recount, with marked nodes among the gang's and a second gang beside it."""
    topo = build_site("gb200-nvl72:racks=80,pod_racks=2")  # 1,440 nodes, 80 domains of 18, 40 pods of 36
    cap = Capacity(topo)

    def gang(nodes: list[int]) -> Placement:
        return Placement.on_whole_nodes(np.array(nodes), topo.node_gpu_ids, topo.gpu_start, 4, (0,) * len(nodes),
                                        (0,) * len(nodes))  # fmt: skip

    wide = gang(list(range(0, 1440, 3)))  # every domain and pod, a third of each: as vectors
    # 20 nodes (the gang path, not the node-by-node one) over two domains of one pod: cell by cell
    narrow = gang([n for n in range(1, 30) if n % 3])
    cap.mark(np.isin(np.arange(topo.num_nodes), [3, 6, 7, 700]))
    for pl in (wide, narrow):
        cap.allocate(pl)
    wide_groups, narrow_groups = wide._views.groups, narrow._views.groups
    assert wide_groups is not None and narrow_groups is not None  # both went the whole-node gang path
    assert len(wide_groups[1][0]) == 80 > _CELL_GROUPS and len(wide_groups[2][0]) == 40 > _CELL_GROUPS
    assert len(narrow_groups[1][0]) == 2 and len(narrow_groups[2][0]) == 1
    cap.check([wide, narrow])
    assert cap.domain_whole.tolist()[:3] == [0, 4 * 4, 4 * 12]  # 18, 14 and 6 of 18 nodes taken
    cap.release(wide)
    cap.check([narrow])
    cap.release(narrow)
    cap.check([])
    assert cap.whole_total == topo.num_gpus


def test_drained_and_failed_nodes_leave_the_pool() -> None:
    topo = build_site("uniform:nodes=2,gpus=8")
    cap = Capacity(topo)
    cap.set_node(0, up=False)
    assert cap.free_whole() == 8
    assert cap.avail_whole.tolist() == [0, 8]
    cap.set_node(1, open=False)
    assert cap.free_whole() == 0
    assert not cap.could_fit(JobRequest(gpus=1))
    epoch = cap.grow_epoch
    cap.set_node(0, up=True)
    assert cap.grow_epoch == epoch + 1
    assert cap.could_fit(JobRequest(gpus=8))
    cap.check([])


@pytest.mark.parametrize(
    ("gpus", "fits"),
    [(1, True), (4, True), (6, True), (8, False), (16, False)],
)
def test_could_fit_is_a_necessary_condition(gpus: int, fits: bool) -> None:
    topo = build_site("gb200-nvl72:racks=1")  # 18 nodes × 4
    cap = Capacity(topo)
    for n in range(16):  # leave one whole node and one node with two free GPUs
        cap.allocate(_pl((n,), (topo.node_gpu_ids[n],)))
    cap.allocate(_pl((16,), ((64, 65),)))
    assert cap.could_fit(JobRequest(gpus=gpus)) is fits


def test_the_agenda_gives_an_instants_items_in_the_order_they_were_added_and_nothing_early():
    agenda = Agenda()
    assert agenda.next_time() == float("inf") and not agenda
    agenda.add(20.0, 0, 7, 1)
    agenda.add(10.0, 1, 3)
    agenda.add(20.0, 2, 5, 2, site=1)
    agenda.add(10.0, 0, 9, 4)
    agenda.add(20.0, 1)
    assert agenda.next_time() == 10.0 and len(agenda) == 5
    assert list(agenda.pop_at(10.0)) == [(1, 3, 0, 0), (0, 9, 4, 0)]
    assert list(agenda.pop_at(15.0)) == []  # nothing is due then: nothing is taken
    assert agenda.next_time() == 20.0
    assert list(agenda.pop_at(20.0)) == [(0, 7, 1, 0), (2, 5, 2, 1), (1, -1, 0, 0)]
    assert not agenda


def test_a_capacity_copy_copies_every_attribute_and_shares_no_mutable_state():
    import ast

    from gigafactory import _native
    from gigafactory.core import capacity

    source = _native.source_of("gigafactory.core.capacity").read_text()  # (compiled, the module has no source)
    init = next(f for f in ast.walk(ast.parse(source)) if isinstance(f, ast.FunctionDef) and f.name == "__init__")
    assigned = {
        t.attr
        for node in ast.walk(init)
        for t in (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self"
    }
    assert assigned == set(capacity.FIELDS)
    topo = Topology.from_columns(
        "two", models=("H100",), node_model=[0, 0], node_gpus=[8, 8], node_cpu=[64, 64], node_mem=[512, 512],
    )  # fmt: skip
    cap = capacity.Capacity(topo)
    twin = cap.copy()
    twin.allocate(_pl((0,), (tuple(range(8)),)))
    assert int(cap.gpu_free.sum()) == 16 * 1000 and int(twin.gpu_free.sum()) == 8 * 1000
    assert (cap.node_whole[0], twin.node_whole[0], cap.whole_total, twin.whole_total) == (8, 0, 16, 8)
    assert cap.version != twin.version


def test_a_copy_written_into_a_scratch_capacity_is_the_copy_and_stays_independent() -> None:
    from gigafactory.core import capacity

    topo = build_site("uniform:nodes=4,gpus=8")
    cap = Capacity(topo)
    first, second = _pl((0,), ((0, 1, 2),)), _pl((1, 2), (tuple(range(8, 16)), tuple(range(16, 24))))
    cap.allocate(first)
    scratch = Capacity(topo)
    scratch.allocate(_pl((3,), ((24,),)))  # something the copy must overwrite, cell views made
    assert cap.copy(into=scratch) is scratch
    fresh = cap.copy()
    for name in capacity.FIELDS:  # every one: a field the in-place copy forgot would differ here
        mine, theirs = getattr(scratch, name), getattr(fresh, name)
        if isinstance(mine, np.ndarray):
            assert np.array_equal(mine, theirs), name
        elif name not in ("_cells", "_model_masks", "_model_ids", "_single", "_node_info"):  # caches, views
            assert mine == theirs or mine is theirs, name
    assert (scratch.version, scratch.whole_total, scratch.used_nodes) == (cap.version, cap.whole_total, 1)
    scratch.allocate(second)  # through the scratch's own cell views: the original does not move
    scratch.check([first, second])
    cap.check([first])
    scratch.release(first)
    scratch.check([second])
    cap.copy(into=scratch)  # and again, over what the trial did
    scratch.check([first])
    with pytest.raises(ValueError, match="same topology"):
        cap.copy(into=Capacity(build_site("uniform:nodes=2,gpus=8")))
