"""The network of sites in the twin: the model and its checks, the route policies, routing quality, residency."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from gigafactory.cli.app import app
from gigafactory.core.errors import ConfigError
from gigafactory.core.events import JobSubmitted
from gigafactory.core.jobs import Job, JobId, JobRequest
from gigafactory.engine.engine import Engine
from gigafactory.engine.forecast import forecast_starts
from gigafactory.network import Network, SiteSpec, network_from_toml, network_preset
from gigafactory.policy.profile import parse_route
from gigafactory.twin.network_sim import NetworkSimulation
from gigafactory.twin.workload import Workload

TWO_SITES = """
name = "two"
[[site]]
name = "a"
preset = "uniform:nodes=2,gpus=8"
country = "DE"
price_eur_mwh = 200
carbon_g_kwh = 400
pue = 1.3
[[site]]
name = "b"
preset = "uniform:nodes=2,gpus=8"
country = "FR"
price_eur_mwh = 100
carbon_g_kwh = 50
pue = 1.2
"""


def _net(text: str = TWO_SITES) -> Network:
    return network_from_toml(text, "test.toml")


# ---- the model -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('country = "FR"', 'country = "XX"'), r"site 2 \(b\): country = 'XX' is not an EU member state"),
        (("price_eur_mwh = 100", "price_eur_mwh = -1"), r"price_eur_mwh = -1 must be at least 0"),
        (("pue = 1.2", "pue = 0.9"), r"\(b\): pue = 0.9 must be at least 1"),
        (('name = "b"', 'name = "a"'), r"sites 1 and 2 share the name 'a'"),
        (('preset = "uniform:nodes=2,gpus=8"\ncountry = "FR"', 'preset = "nope"\ncountry = "FR"'), r"\(b\): .*nope"),
        (("pue = 1.2", "pue = 1.2\npower_cap_mw = 0"), r"power_cap_mw = 0 must be greater than 0"),
        (("pue = 1.2", "pue = 1.2\ncolour = 1"), r"unknown key 'colour'"),
    ],
)
def test_bad_network_files_name_the_value(change: tuple[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _net(TWO_SITES.replace(*change))


def test_an_empty_network_is_refused() -> None:
    with pytest.raises(ConfigError, match="the network is empty"):
        network_from_toml('name = "x"\n', "empty.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        network_from_toml("[[site]\n", "broken.toml")


def test_eu_2030_holds_five_gigafactories_and_six_ai_factories_in_eleven_states() -> None:
    net = network_preset("eu-2030")
    sizes = sorted(s.topology.num_gpus for s in net.sites)
    assert len(net.sites) == 11 and len({s.country for s in net.sites}) == 11
    assert all(99_000 <= g <= 101_000 for g in sizes[-5:])
    assert all(10_000 <= g <= 25_000 for g in sizes[:6])
    assert 550_000 <= net.num_gpus <= 570_000
    assert all(s.pue >= 1.0 and s.price_eur_mwh > 0 and s.carbon_g_kwh > 0 for s in net.sites)
    # Every figure is documented with its source.
    doc = (Path(__file__).resolve().parents[2] / "docs" / "network.md").read_text()
    for s in net.sites:
        assert s.name in doc and f"{s.price_eur_mwh:g}" in doc and f"{s.carbon_g_kwh:g}" in doc


def test_a_power_cap_keeps_the_nodes_it_cannot_power_drained() -> None:
    net = _net(TWO_SITES.replace("pue = 1.2", "pue = 1.2\npower_cap_mw = 0.013"))
    b = net.site("b")
    # One 8-GPU H100 node at full load: 8 × 1,275 W × PUE 1.2 = 12.2 kW; the cap powers one of two.
    assert b.powered_nodes() == 1
    wl = Workload.build("w", {"submit_s": [0.0], "gpus": [16], "runtime_s": [60.0]})
    res = NetworkSimulation(net, wl, "fifo", "residency+earliest-start").run()
    assert res.summary["sites"]["b"]["powered_gpus"] == 8
    assert res.site_of.tolist() == [0]  # only a can hold 16 GPUs at once


# ---- route policies --------------------------------------------------------------------------------------------
def test_route_profiles_always_apply_residency_and_name_bad_parts() -> None:
    assert str(parse_route("earliest-start")) == "residency+earliest-start"
    assert str(parse_route("residency+random")) == "residency+random"
    with pytest.raises(ConfigError, match="unknown route policy 'cheapest'"):
        parse_route("cheapest")
    with pytest.raises(ConfigError, match="names two choosers"):
        parse_route("random+least-loaded")


def _job(i: int, gpus: int, est: float, t: float = 0.0) -> Job:
    return Job(JobId(i), JobRequest(gpus=gpus), t, estimate_s=est)


def test_estimate_start_matches_the_forecast_when_shapes_do_not_matter() -> None:
    """One-GPU jobs: the fluid estimate is exact, and equals the engine's own forecast. A gang that needs GPUs
    at once starts later than the fluid says (it counts GPUs, not when they free together)."""
    from gigafactory.core.presets import build_site

    def engine() -> Engine:
        eng = Engine(build_site("uniform:nodes=1,gpus=4"), "fifo")
        eng.handle([JobSubmitted(0.0, _job(k, 1, 100.0 * (k + 1))) for k in range(4)])  # ends at 100..400
        return eng

    eng = engine()
    eng.handle([JobSubmitted(10.0, _job(10, 1, 50.0))])  # runs 100-150
    probe = _job(11, 1, 10.0, 10.0)
    assert eng.estimate_start(probe, 10.0) == pytest.approx(150.0)
    eng.handle([JobSubmitted(10.0, probe)])
    assert forecast_starts(eng, 10.0)[11] == pytest.approx(150.0)

    gang = engine()
    gang.handle([JobSubmitted(10.0, _job(10, 2, 50.0))])  # needs two GPUs at once: runs 200-250
    assert gang.estimate_start(probe, 10.0) == pytest.approx(200.0)
    gang.handle([JobSubmitted(10.0, probe)])
    assert forecast_starts(gang, 10.0)[11] == pytest.approx(250.0)

    empty = Engine(build_site("uniform:nodes=1,gpus=4"), "fifo")
    assert empty.estimate_start(_job(20, 4, 10.0), 5.0) == 5.0


def _full_site_workload() -> tuple[Workload, list]:
    """Site a is filled for 10 hours by jobs pinned there; then 200 one-GPU jobs of 10 min arrive, free to go."""
    n_fill, n = 2, 200
    submit = [0.0] * n_fill + [60.0 + 60.0 * k for k in range(n)]  # 10 at a time: b alone has room for all
    gpus = [8] * n_fill + [1] * n
    runtime = [36_000.0] * n_fill + [600.0] * n
    wl = Workload.build("full", {"submit_s": submit, "gpus": gpus, "runtime_s": runtime, "estimate_s": runtime})
    pins = [(("a",), None)] * n_fill + [None] * n
    return wl, pins


def test_earliest_start_beats_random_when_one_site_is_full() -> None:
    net = _net()
    wl, pins = _full_site_workload()
    waits = {}
    for route in ("random", "earliest-start", "least-loaded"):
        res = NetworkSimulation(net, wl, "fifo+easy+best-fit", route, seed=3, restrictions=pins).run()
        waits[route] = res.summary["avg_queue_s"]
        if route == "earliest-start":
            assert (res.site_of[2:] == 1).all()  # every free job went to the site with room
            assert "earliest estimated start: now" in res.reasons[5]
    # Stated numbers: earliest-start never waits; random sends about half of the jobs behind a 10-hour fill.
    assert waits["earliest-start"] == 0.0
    assert waits["least-loaded"] == 0.0
    assert waits["random"] > 3 * 3600.0


def test_cheapest_energy_prefers_the_cheap_site_only_while_it_has_room() -> None:
    net = _net()
    # 8-GPU jobs of an hour, one a minute: b (cheaper) takes the first two, then a, then b and a as they free.
    wl = Workload.build(
        "w", {"submit_s": [60.0 * k for k in range(6)], "gpus": [8] * 6, "runtime_s": [3600.0] * 6,
              "estimate_s": [3600.0] * 6}
    )  # fmt: skip
    res = NetworkSimulation(net, wl, "fifo", "cheapest-energy:max_wait_h=0.5").run()
    assert res.site_of.tolist()[:4] == [1, 1, 0, 0]
    assert "cheapest energy" in res.reasons[0]
    assert "no site can start it within 0.5 h" in res.reasons[4]
    s = res.summary
    assert s["sites"]["b"]["cost_eur"] / s["sites"]["b"]["energy_mwh"] == pytest.approx(100.0, rel=1e-3)
    assert s["energy_mwh"] == pytest.approx(s["sites"]["a"]["energy_mwh"] + s["sites"]["b"]["energy_mwh"])
    # 8 H100 GPUs × 1,275 W × PUE 1.2 × 1 h = 12.24 kWh per job at b.
    assert s["sites"]["b"]["energy_mwh"] == pytest.approx(s["sites"]["b"]["received"] * 0.01224, rel=1e-3)


# ---- residency (property) --------------------------------------------------------------------------------------
COUNTRIES = ("DE", "FR", "IT", "PL")


@st.composite
def networks_and_jobs(draw: st.DrawFn) -> tuple[Network, Workload, list]:
    k = draw(st.integers(2, 4))
    sites = tuple(
        SiteSpec(
            f"s{j}",
            f"uniform:nodes={draw(st.integers(1, 3))},gpus={draw(st.sampled_from([4, 8]))}",
            draw(st.sampled_from(COUNTRIES)),
            draw(st.floats(0, 300)),
            draw(st.floats(0, 800)),
            draw(st.floats(1, 2)),
        )
        for j in range(k)
    )
    n = draw(st.integers(1, 40))
    submit = sorted(draw(st.lists(st.floats(0, 5000), min_size=n, max_size=n)))
    # Every job fits some site (the twin refuses a workload with one that fits none); residency may still rule
    # out every site that could hold it.
    largest = max(Network("p", sites).site(s.name).topology.num_gpus for s in sites)
    gpus = [min(g, largest) for g in draw(st.lists(st.sampled_from([1, 2, 4, 8, 16, 32]), min_size=n, max_size=n))]
    runtime = draw(st.lists(st.floats(1, 4000), min_size=n, max_size=n))
    wl = Workload.build("h", {"submit_s": submit, "gpus": gpus, "runtime_s": runtime, "estimate_s": runtime})
    allowed = draw(
        st.lists(
            st.one_of(
                st.none(), st.sets(st.sampled_from(COUNTRIES), min_size=1).map(lambda s: (None, tuple(sorted(s))))
            ),
            min_size=n,
            max_size=n,
        )
    )
    return Network("h", sites), wl, allowed


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=networks_and_jobs(), route=st.sampled_from(["random", "earliest-start", "least-loaded", "lowest-carbon"]))
def test_no_job_ever_runs_outside_its_allowed_countries(case: tuple[Network, Workload, list], route: str) -> None:
    net, wl, allowed = case
    res = NetworkSimulation(net, wl, "fifo+easy+best-fit", route, seed=1, restrictions=allowed, validate=True).run()
    for i in range(len(wl)):
        job = wl.job(i)
        countries = None if allowed[i] is None else allowed[i][1]
        ok = [
            s for s in net.sites
            if (countries is None or s.country in countries) and s.topology.num_gpus >= job.request.gpus
        ]  # fmt: skip
        site = int(res.site_of[i])
        if site < 0:
            assert not ok, f"job {i} was rejected although {[s.name for s in ok]} could hold it"
            assert "no " in res.reasons[i]
        else:
            assert net.sites[site] in ok, f"job {i} ran on {net.sites[site].name}, outside {countries}"
    assert res.summary["unfinished"] == 0


# ---- the command line ------------------------------------------------------------------------------------------
def test_twin_run_network_writes_per_site_results(tmp_path: Path) -> None:
    runner = CliRunner()
    r = runner.invoke(
        app,
        ["twin", "run", "--network", "pair", "--route", "earliest-start", "--days", "1", "--out", str(tmp_path),
         "--residency", "0.3", "-q"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    s = json.loads((tmp_path / "summary.json").read_text())
    assert set(s["sites"]) == {"de-1", "fr-1"}
    assert s["route"] == "residency+earliest-start"
    assert sum(v["received"] for v in s["sites"].values()) + s["unroutable"] == s["jobs"]
    assert s["cost_eur"] == pytest.approx(sum(v["cost_eur"] for v in s["sites"].values()), abs=0.05)
    # The network is measured like a site: whole run and steady state, fairness across every site's GPUs.
    assert s["steady"]["window"]["to_s"] <= s["window"]["to_s"] and s["steady"]["window"]["rule"]
    assert 0 <= s["fairness"]["deviation"] <= 2 and set(s["steady"]["tenants"]) == set(s["tenants"])
    html = (tmp_path / "report.html").read_text()
    assert "Jobs received" in html and "fr-1 (FR)" in html


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--network", "eu-2031"], "unknown network 'eu-2031'"),
        (["--network", "pair", "--route", "fastest"], "unknown route policy 'fastest'"),
        (["--route", "random"], "route and residency apply to a network"),
        (["--network", "pair", "--site", "hgx-h100:nodes=4"], "give either --site or --network"),
        (["--network", "pair", "--residency", "1.5"], "residency=1.5 must be a share between 0 and 1"),
    ],
)
def test_twin_run_network_bad_input(tmp_path: Path, args: list[str], message: str) -> None:
    r = CliRunner().invoke(app, ["twin", "run", "--days", "1", "--out", str(tmp_path), *args])
    assert r.exit_code != 0
    assert message in r.output
    assert not (tmp_path / "summary.json").exists()


def test_a_network_file_with_a_bad_site_fails_before_running(tmp_path: Path) -> None:
    f = tmp_path / "net.toml"
    f.write_text(TWO_SITES.replace("pue = 1.3", "pue = 0.5"))
    r = CliRunner().invoke(app, ["twin", "run", "--network", str(f), "--days", "1", "--out", str(tmp_path / "o")])
    assert r.exit_code != 0 and "pue = 0.5 must be at least 1" in r.output
    assert not (tmp_path / "o").exists()


def test_jobs_routed_in_one_instant_do_not_all_go_to_the_same_site() -> None:
    net = _net()
    wl = Workload.build("burst", {"submit_s": [0.0] * 4, "gpus": [8] * 4, "runtime_s": [600.0] * 4,
                                  "estimate_s": [600.0] * 4})  # fmt: skip
    res = NetworkSimulation(net, wl, "fifo", "earliest-start").run()
    assert sorted(np.bincount(res.site_of, minlength=2).tolist()) == [2, 2]
    assert res.summary["avg_queue_s"] == 0.0


def test_an_experiment_file_may_name_a_network(tmp_path: Path) -> None:
    f = tmp_path / "exp.toml"
    f.write_text('network = "pair"\nroute = "least-loaded"\nworkload = "llm:load=0.5"\ndays = 0.5\nresidency = 0.5\n')
    r = CliRunner().invoke(app, ["twin", "run", "--config", str(f), "--out", str(tmp_path / "o"), "-q"])
    assert r.exit_code == 0, r.output
    s = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert s["route"] == "residency+least-loaded" and s["residency"] == 0.5
    f.write_text('network = "pair"\nsite = "hgx-h100:nodes=4"\n')
    r = CliRunner().invoke(app, ["twin", "run", "--config", str(f), "--out", str(tmp_path / "p"), "-q"])
    assert r.exit_code != 0 and "give either site or network" in r.output


def test_a_workload_with_a_job_no_site_could_hold_is_refused_before_running(tmp_path: Path) -> None:
    r = CliRunner().invoke(
        app, ["twin", "run", "--network", "pair", "--workload", "single:gpus=512,hours=1", "--days", "1",
              "--out", str(tmp_path)],
    )  # fmt: skip
    assert r.exit_code == 2
    assert "job 0 could never run on any site of the network (de-1: asks for 512 GPUs" in r.output.replace("\n", " ")
    assert not (tmp_path / "summary.json").exists()


def test_a_network_over_several_seeds_writes_each_run_and_their_mean(tmp_path: Path) -> None:
    args = ["twin", "run", "--network", "pair", "--days", "0.2", "--seed", "1", "--seed", "2", "--out", str(tmp_path)]
    r = CliRunner().invoke(app, [*args, "-q"])
    assert r.exit_code == 0, r.output
    both = json.loads((tmp_path / "summary.json").read_text())
    assert [run["seed"] for run in both["runs"]] == [1, 2]
    assert both["mean"]["cost_eur"] == pytest.approx((both["runs"][0]["cost_eur"] + both["runs"][1]["cost_eur"]) / 2)
    assert (tmp_path / "seed-2" / "report.html").exists()
