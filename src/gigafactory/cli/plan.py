"""``gigafactory plan``: the capacity planner (a site or a network: power, energy, cost per GPU-hour, a 10^25-FLOP
run) and ``gigafactory plan growth`` (capacity against demand over years, measured with the twin).

Thin: it reads flags and files, calls :mod:`gigafactory.plan` and :mod:`gigafactory.twin.growth`, and prints.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from gigafactory.cli.output import console, user_errors
from gigafactory.core.errors import ConfigError, UserError

if TYPE_CHECKING:
    from gigafactory.plan import NetworkPlan, PlanInputs, PlanResult

__all__ = ["plan_app"]

plan_app = typer.Typer(
    help="The capacity planner: power, energy and cost per GPU-hour of a site or a network, and growth over years.",
)

# Options shared by the point plan and the growth scenario: (flag, PlanInputs field, help).
Network = Annotated[str | None, typer.Option(help="a network preset (eu-2030, pair) or FILE.toml")]
Site = Annotated[str | None, typer.Option(help="a site preset, e.g. gb200-nvl72:racks=1389 (gigafactory presets)")]
GpuModel = Annotated[str | None, typer.Option("--gpu-model", help="GPU model (GB200, B200, H200, H100, A100)")]
Gpus = Annotated[int | None, typer.Option(help="number of GPUs (default: the twin's default site, 100,008)")]
Watts = Annotated[float | None, typer.Option(help="system watts per GPU, all in (default: the catalogue's)")]
Pue = Annotated[float | None, typer.Option(help="power usage effectiveness, at least 1 (default 1.3)")]
Price = Annotated[float | None, typer.Option(help="electricity, EUR per MWh (default 190)")]
CapexGpu = Annotated[float | None, typer.Option("--capex-gpu", help="capital cost per GPU, EUR")]
CapexMw = Annotated[
    float | None, typer.Option("--capex-mw", help="facility capital cost per MW of facility power, EUR")
]
Depreciation = Annotated[float | None, typer.Option("--depreciation-years", help="years to write off GPUs (5)")]
FacilityYears = Annotated[float | None, typer.Option("--facility-years", help="years to write off the facility (15)")]
Opex = Annotated[float | None, typer.Option(help="yearly opex besides energy, as a share of capex (0)")]
IdlePower = Annotated[float | None, typer.Option("--idle-power", help="idle GPU draw, share of full power (0)")]
Utilisation = Annotated[float | None, typer.Option(help="share of GPU-time allocated, (0, 1] (0.85)")]
Ettr = Annotated[float | None, typer.Option(help="effective training time ratio, (0, 1] (0.90)")]
Mfu = Annotated[float | None, typer.Option(help="model FLOP utilisation of the 10^25-FLOP run, (0, 1] (0.40)")]
RunShare = Annotated[float | None, typer.Option("--run-share", help="share of the site the run gets, (0, 1] (1)")]

_SITE_FIELDS = ("gpus", "gpu_model", "watts", "pue", "price_eur_mwh")


def _given(**values: tuple[str, Any]) -> dict[str, tuple[str, Any]]:
    """field -> (flag, value), for the flags that were given."""
    return {k: v for k, v in values.items() if v[1] is not None}


def _template(given: dict[str, tuple[str, Any]], base: dict[str, Any] | None = None) -> PlanInputs:
    from gigafactory.plan import PlanInputs

    return PlanInputs(**{**(base or {}), **{k: v for k, (_, v) in given.items()}})


def _site_base(site: str) -> dict[str, Any]:
    """GPUs and GPU model of a site preset."""
    from gigafactory.core.presets import build_site

    topo = build_site(site)
    by_model = topo.gpus_by_model()
    if len(by_model) != 1:
        raise ConfigError(f"site {site} mixes GPU models; the planner takes one model per site")
    ((model, gpus),) = by_model.items()
    return {"gpus": gpus, "gpu_model": model}


def _read_run(path: Path) -> tuple[float, float | None, dict[str, float]]:
    """Utilisation, ETTR (None if the run has none, or modelled no failures) and each site's utilisation (a network
    run) from a twin run's summary.json; several seeds: their mean."""
    file = path / "summary.json" if path.is_dir() else path
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"--from-run {path}: no summary.json there; give a directory `twin run --out` wrote"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"--from-run {file}: cannot read it as a twin summary ({exc})") from exc
    runs = doc.get("runs") if isinstance(doc, dict) else None
    summary = doc.get("mean", {}) if isinstance(runs, list) else doc
    first = runs[0] if isinstance(runs, list) and runs and isinstance(runs[0], dict) else summary
    u = summary.get("utilisation") if isinstance(summary, dict) else None
    if not isinstance(u, (int, float)) or isinstance(u, bool):
        raise ConfigError(f"--from-run {file}: it has no utilisation; is it a twin run's summary.json?")
    # Without failures a run's ETTR counts only checkpoint writes: it says nothing of a real site's.
    failures = first.get("failure_model", "none") if isinstance(first, dict) else "none"
    ettr = summary.get("ettr") if failures != "none" else None
    sites = first.get("sites", {}) if isinstance(first, dict) else {}
    per_site = {
        name: float(v["utilisation"])
        for name, v in sites.items()
        if isinstance(v, dict) and isinstance(v.get("utilisation"), (int, float)) and v["utilisation"] > 0
    }
    return float(u), float(ettr) if isinstance(ettr, (int, float)) and ettr > 0 else None, per_site


def _fmt_days(days: float | None) -> str:
    if days is None:
        return "–"
    return f"{days * 24:,.0f} h" if days < 2 else f"{days:,.1f} d"


def _money(x: float | None) -> str:
    if x is None:
        return "–"
    for scale, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"€{x / scale:,.2f}{unit}"
    return f"€{x:,.2f}"


def _result_rows(r: PlanResult) -> list[tuple[str, str]]:
    run = f"{r.inputs.run_flop:.0e}".replace("e+", "e") + "-FLOP run"
    return [
        ("IT power", f"{r.it_mw:,.2f} MW ({r.inputs.gpus:,} × {r.watts_per_gpu:,.0f} W)"),
        ("facility power", f"{r.facility_mw:,.2f} MW (× PUE {r.inputs.pue:g})"),
        ("energy a year", f"{r.annual_energy_mwh:,.0f} MWh"),
        ("energy cost a year", f"{_money(r.annual_energy_cost_eur)} (at €{r.inputs.price_eur_mwh:g}/MWh)"),
        ("capital", f"{_money(r.capex_eur)} (GPUs {_money(r.capex_gpus_eur)}, facility "
                    f"{_money(r.capex_facility_eur)})"),
        ("depreciation + opex a year", f"{_money(r.annual_depreciation_eur)} + {_money(r.annual_opex_eur)}"),
        ("TCO a year", _money(r.tco_per_year_eur)),
        ("delivered GPU-hours a year", f"{r.delivered_gpu_hours:,.0f}"),
        ("cost per GPU-hour", f"€{r.cost_per_gpu_hour_eur:,.3f}"),
        (f"{run}: GPU-hours", "–" if r.run_gpu_hours is None else f"{r.run_gpu_hours:,.0f}"),
        ("  wall time, cost", f"{_fmt_days(r.run_wall_days)} on {r.inputs.run_share:.0%} of the site, "
                              f"{_money(r.run_cost_eur)}"),
    ]  # fmt: skip


def _inputs_table(described: dict[str, dict[str, Any]], title: str) -> Any:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for col, justify in (("input", "left"), ("value", "right"), ("", "left"), ("source", "left")):
        table.add_column(col, justify=justify, no_wrap=col != "source")  # type: ignore[arg-type]
    for name, d in described.items():
        v = d["value"]
        shown = f"{v:,.6g}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v)
        table.add_row(name, shown, "default" if d["default"] else "[bold]given[/]", d["source"])
    return table


def _site_table(r: PlanResult, title: str) -> Any:
    from rich.table import Table

    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("figure", style="bold")
    table.add_column("value", justify="right")
    for k, v in _result_rows(r):
        table.add_row(k, v)
    return table


def _short(x: float | None) -> str:
    """Euros in three significant figures: €418M, €1.52B."""
    if x is None:
        return "–"
    for scale, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            v = x / scale
            return f"€{v:.3g}{unit}" if v < 1000 else f"€{v:,.0f}{unit}"
    return f"€{x:.2f}"


def _network_tables(p: NetworkPlan) -> list[Any]:
    """Two tables that each fit 80 columns: cost, then energy and the training run."""
    from rich import box
    from rich.table import Table

    t = p.totals
    cost = Table(title=f"network {p.name}: {len(p.sites)} sites, {p.gpus:,} GPUs", title_justify="left",
                 box=box.SIMPLE_HEAD, pad_edge=False)  # fmt: skip
    for col in ("site", "GPUs", "PUE", "€/MWh", "MW", "capital", "TCO/yr", "€/GPU-h"):
        cost.add_column(col, justify="left" if col == "site" else "right", no_wrap=True)
    for s in p.sites:
        r = s.result
        cost.add_row(
            s.name, f"{r.inputs.gpus:,}", f"{r.inputs.pue:g}", f"{r.inputs.price_eur_mwh:g}", f"{r.facility_mw:,.0f}",
            _short(r.capex_eur), _short(r.tco_per_year_eur), f"{r.cost_per_gpu_hour_eur:.2f}",
        )  # fmt: skip
    cost.add_row(
        "[bold]network[/]", f"{p.gpus:,}", "", "", f"{t['facility_mw']:,.0f}", _short(t["capex_eur"]),
        _short(t["tco_per_year_eur"]), f"{p.cost_per_gpu_hour_eur:.2f}", end_section=True,
    )  # fmt: skip
    cost.caption = "MW: facility power at full load (IT × PUE)"
    energy = Table(title="energy a year; one 1e25-FLOP training run (run) on each site", title_justify="left",
                   box=box.SIMPLE_HEAD, pad_edge=False)  # fmt: skip
    for col in ("site", "model", "util.", "GWh/yr", "€/yr", "run GPU-h", "wall", "€ run"):
        energy.add_column(col, justify="left" if col in ("site", "model") else "right", no_wrap=True)
    for s in p.sites:
        r = s.result
        energy.add_row(
            s.name, r.inputs.gpu_model, f"{r.inputs.utilisation:.0%}", f"{r.annual_energy_mwh / 1e3:,.0f}",
            _short(r.annual_energy_cost_eur), "–" if r.run_gpu_hours is None else f"{r.run_gpu_hours / 1e6:.2f}M",
            _fmt_days(r.run_wall_days), _short(r.run_cost_eur),
        )  # fmt: skip
    energy.add_row(
        "[bold]network[/]", "", "", f"{t['annual_energy_mwh'] / 1e3:,.0f}", _short(t["annual_energy_cost_eur"]), "", "",
        "",
        end_section=True,
    )  # fmt: skip
    if p.cheapest_run_site:
        energy.caption = f"the run costs least at {p.cheapest_run_site}"
    return [cost, energy]


def _jsonable(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    return x


@plan_app.callback(invoke_without_command=True)
@user_errors
def plan_point(
    ctx: typer.Context,
    network: Network = None,
    site: Site = None,
    gpu_model: GpuModel = None,
    gpus: Gpus = None,
    watts: Watts = None,
    pue: Pue = None,
    price: Price = None,
    capex_gpu: CapexGpu = None,
    capex_mw: CapexMw = None,
    depreciation_years: Depreciation = None,
    facility_years: FacilityYears = None,
    opex: Opex = None,
    idle_power: IdlePower = None,
    utilisation: Utilisation = None,
    ettr: Ettr = None,
    mfu: Mfu = None,
    run_share: RunShare = None,
    from_run: Annotated[
        Path | None, typer.Option("--from-run", help="take utilisation and ETTR from a twin run's output directory")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of tables")] = False,
) -> None:
    """Plan a site (--site, or --gpus and --gpu-model) or a network (--network): power, energy, TCO, cost per
    GPU-hour and a 10^25-FLOP training run. Every default has its source in docs/planning.md."""
    if ctx.invoked_subcommand is not None:
        return
    from gigafactory.plan import describe_inputs, plan, plan_network

    given = _given(
        gpus=("--gpus", gpus), gpu_model=("--gpu-model", gpu_model), watts=("--watts", watts), pue=("--pue", pue),
        price_eur_mwh=("--price", price), capex_eur_per_gpu=("--capex-gpu", capex_gpu),
        capex_eur_per_mw=("--capex-mw", capex_mw), depreciation_years=("--depreciation-years", depreciation_years),
        facility_depreciation_years=("--facility-years", facility_years), opex_fraction=("--opex", opex),
        idle_power_fraction=("--idle-power", idle_power), utilisation=("--utilisation", utilisation),
        ettr=("--ettr", ettr), mfu=("--mfu", mfu), run_share=("--run-share", run_share),
    )  # fmt: skip
    per_site: dict[str, float] = {}
    if from_run is not None:
        u, e, per_site = _read_run(from_run)
        # A flag given beside --from-run wins over the run's figure.
        given.setdefault("utilisation", (f"run {from_run}", u))
        if e is not None:
            given.setdefault("ettr", (f"run {from_run}", e))
        if "utilisation" in given and given["utilisation"][0] == "--utilisation":
            per_site = {}
    sources = {k: flag for k, (flag, _) in given.items()}
    if network is not None:
        if site is not None:
            raise UserError("give either --site or --network: a network's sites come with it")
        clash = [given[f][0] for f in _SITE_FIELDS if f in given]
        if clash:
            raise UserError(f"{clash[0]} applies to one site; a network's sites carry their own (edit its file)")
        from gigafactory.twin.experiment import read_network

        net = read_network(network)
        template = _template(given)
        result = plan_network(net, template, per_site)
        common = {k: v for k, v in describe_inputs(template, sources).items() if k not in _SITE_FIELDS}
        if per_site:
            common["utilisation"]["source"] += " (each site's own, where the run measured it)"
        if as_json:
            doc = {
                "kind": "network",
                "network": net.name,
                **result.figures(),
                "cheapest_run_site": result.cheapest_run_site,
                "sites": {
                    s.name: {
                        "country": s.country,
                        "preset": s.preset,
                        **{k: getattr(s.result.inputs, k) for k in (*_SITE_FIELDS, "utilisation")},
                        **s.result.figures(),
                    }
                    for s in result.sites
                },
                "inputs": common,
            }
            typer.echo(json.dumps(_jsonable(doc), indent=2))
            return
        for table in _network_tables(result):
            console.print(table)
        console.print(_inputs_table(common, "inputs common to every site"))
        return
    if site is not None and ("gpus" in given or "gpu_model" in given):
        flag = given["gpus" if "gpus" in given else "gpu_model"][0]
        raise UserError(f"give either --site or {flag}: a site preset has its own GPUs and model")
    from gigafactory.plan.model import DEFAULT_SITE

    base: dict[str, Any] = {}
    where = site
    if site is not None:
        base = _site_base(site)
        sources.update({"gpus": f"site {site}", "gpu_model": f"site {site}"})
    elif "gpus" not in given and "gpu_model" not in given:
        where = DEFAULT_SITE
    inputs = _template(given, base)
    r = plan(inputs)
    described = describe_inputs(inputs, sources)
    if as_json:
        doc = {"kind": "site", "site": where, **r.figures(), "inputs": described}
        typer.echo(json.dumps(_jsonable(doc), indent=2))
        return
    console.print(_site_table(r, f"plan: {where or f'{inputs.gpus:,} {inputs.gpu_model}'}"))
    console.print(_inputs_table(described, "inputs"))


@plan_app.command("growth")
@user_errors
def plan_growth(
    network: Annotated[str | None, typer.Option(help="a network preset or FILE.toml (default eu-2030)")] = None,
    site: Site = None,
    from_year: Annotated[int, typer.Option("--from", help="first year")] = 2025,
    to_year: Annotated[int, typer.Option("--to", help="last year")] = 2031,
    target: Annotated[str, typer.Option(help="capacity in the last year over the first's, e.g. 3x")] = "3x",
    demand_growth: Annotated[
        float, typer.Option("--demand-growth", help="demand growth a year (0.4 = 40%/yr; an assumption)")
    ] = 0.4,
    start_load: Annotated[
        float, typer.Option("--start-load", help="demand / capacity in the first year (an assumption)")
    ] = 0.8,
    scale: Annotated[int, typer.Option(help="GPUs of the twin's scale model (docs/planning.md)")] = 10_008,
    days: Annotated[float, typer.Option(help="days the twin simulates for each year")] = 14.0,
    seed: Annotated[list[int] | None, typer.Option(help="seed; repeat for several (their mean)")] = None,
    policy: Annotated[str, typer.Option(help="scheduling policy of the scale model")] = "default",
    gpu_model: GpuModel = None,
    gpus: Gpus = None,
    watts: Watts = None,
    pue: Pue = None,
    price: Price = None,
    capex_gpu: CapexGpu = None,
    capex_mw: CapexMw = None,
    depreciation_years: Depreciation = None,
    facility_years: FacilityYears = None,
    opex: Opex = None,
    idle_power: IdlePower = None,
    ettr: Ettr = None,
    out: Annotated[Path | None, typer.Option(help="output directory (default out/growth)")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="print nothing but errors")] = False,
) -> None:
    """Grow capacity to --target times by --to while demand grows by --demand-growth a year; measure each year's
    queueing and unmet demand with the twin on a scale model; write OUT/growth.json and OUT/report.html."""
    from gigafactory.plan import GrowthScenario, SiteInputs, network_inputs, parse_target
    from gigafactory.twin.growth import run_growth, write_growth_outputs

    scenario = GrowthScenario(from_year, to_year, parse_target(target), demand_growth, start_load)
    given = _given(
        gpus=("--gpus", gpus), gpu_model=("--gpu-model", gpu_model), watts=("--watts", watts), pue=("--pue", pue),
        price_eur_mwh=("--price", price), capex_eur_per_gpu=("--capex-gpu", capex_gpu),
        capex_eur_per_mw=("--capex-mw", capex_mw), depreciation_years=("--depreciation-years", depreciation_years),
        facility_depreciation_years=("--facility-years", facility_years), opex_fraction=("--opex", opex),
        idle_power_fraction=("--idle-power", idle_power), ettr=("--ettr", ettr),
    )  # fmt: skip
    if site is not None:
        if network is not None:
            raise UserError("give either --site or --network: a network's sites come with it")
        if "gpus" in given or "gpu_model" in given:
            raise UserError("give either --site or --gpus/--gpu-model: a site preset has its own GPUs and model")
        name = site
        sites: tuple[SiteInputs, ...] = (SiteInputs(site, "", site, _template(given, _site_base(site))),)
    else:
        clash = [given[f][0] for f in _SITE_FIELDS if f in given]
        if clash:
            raise UserError(f"{clash[0]} applies to one site (--site); a network's sites carry their own")
        from gigafactory.twin.experiment import read_network

        net = read_network(network or "eu-2030")
        name = net.name
        sites = network_inputs(net, _template(given))
    target_dir = out or Path("out") / "growth"
    bad = [s for s in seed or () if s < 0]
    if bad:
        raise ConfigError(f"--seed {bad[0]}: a seed must not be negative")

    def progress(year: int, load: float) -> None:
        if not quiet:
            console.print(f"[dim]{year}: twin at offered load {load:.2f}[/]")

    result = run_growth(name, sites, scenario, scale=scale, days=days, seeds=tuple(seed or (1,)), policy=policy,
                        progress=progress)  # fmt: skip
    json_path, html_path = write_growth_outputs(result, target_dir)
    if quiet:
        return
    from rich import box
    from rich.table import Table

    table = Table(title=f"growth {name} {from_year}-{to_year}, capacity ×{scenario.target:g}", title_justify="left",
                  box=box.SIMPLE_HEAD, pad_edge=False)  # fmt: skip
    for col in ("year", "GPUs", "MW", "load", "util.", "queueing", "p99", "unmet", "TCO/yr"):
        table.add_column(col, justify="right", no_wrap=True)
    for y in result.years:
        mw = y.plan.totals["facility_mw"]
        table.add_row(
            str(y.step.year), f"{y.step.gpus:,}", f"{mw:,.0f}" if mw >= 100 else f"{mw:.3g}",
            f"{y.step.offered_load:.2f}", f"{y.measured.utilisation:.0%}", _fmt_wait(y.measured.queue_mean_s),
            _fmt_wait(y.measured.queue_p99_s), f"{y.unmet_share:.1%}",
            _short(y.plan.totals["tco_per_year_eur"]),
        )  # fmt: skip
    table.caption = result.outrun.sentence()
    console.print(table)
    console.print(f"growth: [cyan]{json_path}[/]  report: [cyan]{html_path}[/]  ({result.wall_s:.0f} s)")


def _fmt_wait(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * 86_400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86_400:.1f} d"
