"""The control plane serving a network of sites: routing at submission, per-site accounting, residency, bad input,
and a daemon killed while it routes. Real stores, real local executors, real processes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from gigafactory.control.api.app import create_app
from gigafactory.control.config import ControlConfig, init_control
from gigafactory.control.crashtest import crash_run
from gigafactory.control.store import jobs as jobstore
from gigafactory.control.store.schema import jobs as jobs_table
from gigafactory.control.store.schema import usage
from gigafactory.core.errors import ConfigError
from gigafactory.network import Network, SiteSpec, network_from_toml

from .conftest import Plane, make_plane, run_until


def two_sites(gpus: int = 4) -> Network:
    return Network(
        "two",
        (
            SiteSpec("de-1", f"uniform:nodes=1,gpus={gpus}", "DE", 235.9, 381.0, 1.3),
            SiteSpec("fr-1", f"uniform:nodes=1,gpus={gpus}", "FR", 178.5, 56.0, 1.3),
        ),
    )


@pytest.fixture
def net_plane(tmp_path: Path, db_url: str | None) -> Any:
    p = make_plane(tmp_path / "gf", db_url, site=None, network=two_sites())
    yield p
    p.store.dispose()


def _submit(api: TestClient, token: str, **spec: Any) -> Any:
    return api.post("/api/v1/jobs", json={"command": ["true"], **spec}, headers={"Authorization": f"Bearer {token}"})


def _row(p: Plane, jid: int) -> Any:
    with p.store.connect() as conn:
        return jobstore.get_job(conn, jid)


def test_jobs_route_run_and_are_accounted_per_site(net_plane: Plane) -> None:
    p = net_plane
    tok = p.tokens["lab-a"]
    d = p.daemon(forecast_every_s=1e9)
    with TestClient(create_app(p.cfg, p.store)) as api:
        # de-1 is filled by a pinned job; then one-GPU jobs free to go, and one that may run only in Germany.
        fill = _submit(api, tok, command=["sleep", "30"], gpus=4, site="de-1").json()["ids"][0]
        run_until(d, lambda: _row(p, fill).state == "running")
        free = [_submit(api, tok, command=["sh", "-c", "sleep 0.2"], gpus=1).json()["ids"][0] for _ in range(3)]
        german = _submit(api, tok, command=["true"], gpus=1, countries=["DE"]).json()["ids"][0]
        run_until(d, lambda: all(_row(p, j).state == "completed" for j in free))
        assert {_row(p, j).site for j in free} == {"fr-1"}
        g = _row(p, german)
        assert (g.site, g.state) == ("de-1", "pending")  # it waits at home rather than leave Germany
        story = api.get(f"/api/v1/jobs/{free[0]}/story", headers={"Authorization": f"Bearer {tok}"}).json()
        route = [t for t in story if t["stimulus"] == "route"]
        assert len(route) == 1 and route[0]["reason"].startswith("routed to fr-1: earliest-start: earliest")
        # Per site: the sites' load, nodes and accounting.
        admin = {"Authorization": f"Bearer {p.admin_token}"}
        sites = {x["name"]: x for x in api.get("/api/v1/sites", headers=admin).json()}
        assert sites["de-1"]["gpus_used"] == 4 and sites["de-1"]["jobs_waiting"] == 1
        assert sites["fr-1"]["country"] == "FR" and sites["fr-1"]["jobs_running"] == 0
        nodes = api.get("/api/v1/nodes", params={"site": "fr-1"}, headers=admin).json()
        assert [(n["site"], n["gpus_used"]) for n in nodes] == [("fr-1", 0.0)]
        api.post(f"/api/v1/jobs/{fill}/cancel", headers=admin)
        run_until(d, lambda: _row(p, german).state == "completed")
        fr = api.get("/api/v1/usage", params={"site": "fr-1"}, headers=admin).json()["gpu_hours"]["lab-a"]
        de = api.get("/api/v1/usage", params={"site": "de-1"}, headers=admin).json()["gpu_hours"]["lab-a"]
        everywhere = api.get("/api/v1/usage", headers=admin).json()["gpu_hours"]["lab-a"]
        assert fr > 0 and de > 0 and everywhere == pytest.approx(fr + de)
        queue = api.get("/api/v1/queue", params={"site": "nowhere"}, headers=admin)
        assert queue.status_code == 404 and "no site 'nowhere'" in queue.text
    with p.store.connect() as conn:
        billed = {r.job_id: r.site for r in conn.execute(select(usage))}
    assert billed == {fill: "de-1", german: "de-1", **dict.fromkeys(free, "fr-1")}


@pytest.mark.parametrize(
    ("spec", "status", "message"),
    [
        ({"site": "mars-1"}, 422, "unknown site 'mars-1'; the sites are de-1, fr-1"),
        ({"site": "de-1,fr-1"}, 422, "name one site (to allow several, give their countries instead)"),
        ({"site": "de-1", "countries": ["FR"]}, 422, "site de-1 is in DE, not in FR"),
        ({"countries": ["XX"]}, 422, "'XX' is not the ISO code of an EU member state"),
        ({"countries": ["it"]}, 422, "body.countries"),  # lower case is not an ISO code
        ({"countries": ["IT"]}, 422, "no site is in IT"),
        ({"gpus": 8, "site": "de-1"}, 422, "site de-1 could never run it: it asks for 8 GPUs; the site has 4"),
        ({"gpus": 8}, 422, "no allowed site could ever run it: de-1: it asks for 8 GPUs; the site has 4"),
        ({"gpus": 4, "countries": ["FR"]}, 201, ""),
    ],
)
def test_bad_routing_requests_are_refused_with_the_reason_and_store_nothing(
    net_plane: Plane, spec: dict[str, Any], status: int, message: str
) -> None:
    p = net_plane
    with TestClient(create_app(p.cfg, p.store)) as api:
        r = _submit(api, p.tokens["lab-a"], **spec)
    assert r.status_code == status, r.text
    assert message in r.text
    with p.store.connect() as conn:
        n = len(conn.execute(select(jobs_table.c.id)).all())
    assert n == (1 if status == 201 else 0)


def test_network_files_are_checked_before_anything_is_stored(tmp_path: Path) -> None:
    cfg = ControlConfig(tmp_path / "gf")
    init_control(cfg, network=two_sites()).dispose()
    other = Network("other", (SiteSpec("it-1", "uniform:nodes=1,gpus=4", "IT", 1.0, 1.0, 1.1),))
    with pytest.raises(ConfigError, match="this store serves de-1, fr-1; the network file names it-1"):
        init_control(cfg, network=other)
    with pytest.raises(ConfigError, match="either --site or --network"):
        init_control(cfg, site="hgx-h100:nodes=4", network=two_sites())
    bad = Network("x", (SiteSpec("a", "uniform:nodes=1,gpus=4", "DE", 1, 1, 1.1, executor={"kind": "ssh"}),))
    with pytest.raises(ConfigError, match="executor kind 'ssh'"):
        init_control(ControlConfig(tmp_path / "gf2"), network=bad)
    with pytest.raises(ConfigError, match=r"site 2 \(b\): pue = 0.5 must be at least 1"):
        network_from_toml(
            '[[site]]\nname="a"\npreset="uniform"\ncountry="DE"\nprice_eur_mwh=1\ncarbon_g_kwh=1\npue=1.1\n'
            '[[site]]\nname="b"\npreset="uniform"\ncountry="FR"\nprice_eur_mwh=1\ncarbon_g_kwh=1\npue=0.5\n',
            "n.toml",
        )
    # A single-site store cannot become a network, nor the other way round.
    single = ControlConfig(tmp_path / "gf3")
    init_control(single, site="uniform:nodes=1,gpus=4").dispose()
    with pytest.raises(ConfigError, match="this store serves uniform:nodes=1,gpus=4"):
        init_control(single, network=two_sites())
    with pytest.raises(ConfigError, match="already holds site 'a network of 2 sites'"):
        init_control(cfg, site="uniform:nodes=1,gpus=4")


COUNTRIES = ["DE", "FR", "IT"]


@pytest.fixture(scope="module")
def three_sites(tmp_path_factory: pytest.TempPathFactory) -> Any:
    net = Network(
        "three",
        (
            SiteSpec("de", "uniform:nodes=1,gpus=8", "DE", 1.0, 1.0, 1.1),
            SiteSpec("fr", "uniform:nodes=2,gpus=8", "FR", 1.0, 1.0, 1.1),
            SiteSpec("it", "uniform:nodes=1,gpus=4", "IT", 1.0, 1.0, 1.1),
        ),
    )
    p = make_plane(tmp_path_factory.mktemp("three") / "gf", site=None, network=net)
    with TestClient(create_app(p.cfg, p.store)) as api:
        yield p, api, p.daemon(forecast_every_s=1e9)
    p.store.dispose()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    jobs=st.lists(
        st.tuples(
            st.sampled_from([1, 2, 4, 8, 16]),
            st.one_of(st.none(), st.sets(st.sampled_from(COUNTRIES), min_size=1).map(sorted)),
            st.sampled_from(["random", "pin", "none"]),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_no_job_ever_runs_outside_its_countries_live(three_sites: Any, jobs: list[Any]) -> None:
    """Submissions through the API, routed by the daemon: accepted exactly when an allowed site could hold them,
    and then never placed outside their countries or off their pinned site."""
    p, api, d = three_sites
    size = {"de": 8, "fr": 16, "it": 4}
    country = {"de": "DE", "fr": "FR", "it": "IT"}
    accepted = []
    for gpus, countries, pin in jobs:
        spec: dict[str, Any] = {"gpus": gpus, "command": ["true"]}
        if countries is not None:
            spec["countries"] = countries
        site = None
        if pin == "pin":
            site = ["de", "fr", "it"][gpus % 3]
            spec["site"] = site
        ok = [
            s for s in size
            if size[s] >= gpus and (countries is None or country[s] in countries) and (site is None or s == site)
        ]  # fmt: skip
        r = _submit(api, p.tokens["uni-c"], **spec)
        assert (r.status_code == 201) == bool(ok), (spec, r.text)
        if r.status_code == 201:
            accepted.append((r.json()["ids"][0], ok))
    run_until(d, lambda: all(_row(p, j).state != "submitted" for j, _ in accepted), timeout=60)
    for jid, ok in accepted:
        assert _row(p, jid).site in ok


def test_a_daemon_killed_while_routing_loses_nothing_and_routes_nothing_twice(
    tmp_path: Path, db_url: str | None
) -> None:
    net = two_sites(gpus=8)
    r = crash_run(tmp_path / "gf", jobs=240, kills=4, seed=11, db=db_url, network=net, kill_every_s=(0.2, 1.0))
    assert r.ok, "\n".join(r.problems[:20])
    assert r.kills == 4 and sum(r.states.values()) == 240


def test_a_power_cap_keeps_unfed_nodes_drained_in_the_control_plane(tmp_path: Path) -> None:
    # Two 8-GPU H100 nodes at PUE 1.2 draw 2 × 12.2 kW at full load; a 13 kW connection feeds one.
    net = Network("capped", (SiteSpec("a", "uniform:nodes=2,gpus=8", "DE", 1.0, 1.0, 1.2, power_cap_mw=0.013),))
    p = make_plane(tmp_path / "gf", site=None, network=net)
    with TestClient(create_app(p.cfg, p.store)) as api:
        nodes = api.get("/api/v1/nodes", headers={"Authorization": f"Bearer {p.admin_token}"}).json()
        assert [(n["state"], n["reason"]) for n in nodes] == [("up", ""), ("drained", "power cap")]
        jid = _submit(api, p.tokens["lab-a"], gpus=8).json()["ids"][0]
    d = p.daemon(forecast_every_s=1e9)
    run_until(d, lambda: _row(p, jid).state == "completed")
    assert _row(p, jid).placement["nodes"] == [0]
    p.store.dispose()


def test_a_job_that_allows_it_leaves_a_site_that_can_no_longer_run_it(tmp_path: Path) -> None:
    p = make_plane(tmp_path / "gf", site=None, network=two_sites())
    tok = p.tokens["lab-a"]
    admin = {"Authorization": f"Bearer {p.admin_token}"}
    d = p.daemon(forecast_every_s=1e9)
    with TestClient(create_app(p.cfg, p.store)) as api:
        both = ["DE", "FR"]
        fills = [_submit(api, tok, command=["sleep", "60"], gpus=4, site=s).json()["ids"][0] for s in ("de-1", "fr-1")]
        run_until(d, lambda: all(_row(p, j).state == "running" for j in fills))
        # Work already waits at fr-1, so both newcomers are sent to de-1, one allowing a move and one not.
        queued = [_submit(api, tok, command=["sleep", "60"], gpus=4, site="fr-1").json()["ids"][0] for _ in (1, 2)]
        run_until(d, lambda: all(_row(p, j).state == "pending" for j in queued))
        mover = _submit(api, tok, command=["true"], gpus=4, countries=both, reroute=True).json()["ids"][0]
        stayer = _submit(api, tok, command=["true"], gpus=4, countries=both).json()["ids"][0]
        run_until(d, lambda: _row(p, mover).state == "pending" and _row(p, stayer).state == "pending")
        home, other = "de-1", "fr-1"
        assert _row(p, mover).site == _row(p, stayer).site == home
        # The mover's site loses its only node; the other site frees up.
        assert api.post(f"/api/v1/admin/nodes/u00000/drain?site={home}", headers=admin).status_code == 202
        for j in [fills[1], *queued]:
            api.post(f"/api/v1/jobs/{j}/cancel", headers=admin)
        run_until(d, lambda: _row(p, mover).state == "completed")
        assert _row(p, mover).site == other
        story = [t for t in api.get(f"/api/v1/jobs/{mover}/story", headers=admin).json() if t["stimulus"] == "route"]
        assert len(story) == 2 and story[1]["reason"].startswith(f"routed to {other}: away from {home}")
        # The stayer did not allow a move: it waits for its site.
        assert (_row(p, stayer).site, _row(p, stayer).state) == (home, "pending")
        for j in fills:
            api.post(f"/api/v1/jobs/{j}/cancel", headers=admin)
        ambiguous = api.post("/api/v1/admin/nodes/u00000/drain", headers=admin)
        assert ambiguous.status_code == 422 and "name its site" in ambiguous.text
    p.store.dispose()


def test_reroute_checks_are_bounded_per_turn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Jobs that allow a move are checked at most REROUTE_CHECKS_PER_STEP per turn: with none allowed, a stranded
    job stays; with one, it moves."""
    import gigafactory.control.daemon as daemon_module

    p = make_plane(tmp_path / "gf", site=None, network=two_sites())
    admin = {"Authorization": f"Bearer {p.admin_token}"}
    d = p.daemon(forecast_every_s=1e9)
    with TestClient(create_app(p.cfg, p.store)) as api:
        jid = _submit(api, p.tokens["lab-a"], gpus=4, site="de-1").json()["ids"][0]
        mover = _submit(api, p.tokens["lab-a"], gpus=4, countries=["DE", "FR"], reroute=True).json()["ids"][0]
        api.post("/api/v1/admin/nodes/u00000/drain?site=de-1", headers=admin)
        api.post("/api/v1/admin/nodes/u00000/drain?site=fr-1", headers=admin)
        run_until(d, lambda: _row(p, mover).state == "pending" and _row(p, jid).state != "submitted")
        home = _row(p, mover).site
        api.post(f"/api/v1/admin/nodes/u00000/resume?site={'fr-1' if home == 'de-1' else 'de-1'}", headers=admin)
        monkeypatch.setattr(daemon_module, "REROUTE_CHECKS_PER_STEP", 0)
        for _ in range(5):
            d.step()
        assert (_row(p, mover).site, _row(p, mover).state) == (home, "pending")
        monkeypatch.setattr(daemon_module, "REROUTE_CHECKS_PER_STEP", 1)
        run_until(d, lambda: _row(p, mover).state == "completed")
        assert _row(p, mover).site != home
    p.store.dispose()
