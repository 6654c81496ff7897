"""The ``gigafactory`` command line. Thin: it parses, calls the layers below and prints.

User errors (:class:`~gigafactory.core.errors.UserError`) become one red line on stderr and exit code 2;
anything else is a bug and keeps its traceback.

Every command imports what it needs when it runs, so that ``gigafactory --version`` or ``gigafactory queue``
does not pay for numpy, the engine and the store.
"""

from __future__ import annotations

import gc
import json
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from gigafactory import __version__
from gigafactory.cli.control import register
from gigafactory.cli.desk import desk_app
from gigafactory.cli.output import console, user_errors
from gigafactory.cli.plan import plan_app
from gigafactory.core.errors import UserError

R = TypeVar("R")

if TYPE_CHECKING:
    from rich.table import Table

    from gigafactory.twin.experiment import Experiment
    from gigafactory.twin.network_sim import NetworkResult
    from gigafactory.twin.sim import SimResult


def _version(value: bool) -> None:
    if value:
        typer.echo(_version_line())
        raise typer.Exit()


def _version_line() -> str:
    from gigafactory import _native

    state = _native.state
    engine = state if state == "compiled" else "pure Python, " + state.removeprefix("pure: ")
    return f"{__version__} (engine: {engine})"


app = typer.Typer(
    name="gigafactory",
    help="The open operating layer for AI gigafactories: one scheduling engine, a digital twin, a control plane.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
twin_app = typer.Typer(help="The digital twin: simulate a site under a workload and a policy.", no_args_is_help=True)
app.add_typer(twin_app, name="twin")
app.add_typer(plan_app, name="plan")
app.add_typer(desk_app, name="desk")


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version and exit")
    ] = False,
) -> None:
    """The open operating layer for AI gigafactories: one scheduling engine, a digital twin, a control plane."""


def demo_experiment() -> Experiment:
    from gigafactory.twin.experiment import Experiment

    return Experiment(
        site="gb200-nvl72:racks=1389",
        workload="llm:load=0.85,tenants=10",
        policy="default",
        days=30.0,
        seeds=(1,),
        name="demo",
        # Llama 3's failure rates, plus whole-rack failures (an assumed rate: none is published).
        failures="llama3:rack_per_day=0.002,rack_repair_h=8-24",
    )


def _fmt_s(x: float | None) -> str:
    if x is None:
        return "–"
    if x < 120:
        return f"{x:,.0f} s"
    if x < 7200:
        return f"{x / 60:,.1f} min"
    return f"{x / 3600:,.1f} h"


def _offered(s: dict[str, Any]) -> str:
    """The sampled jobs' load, and the load asked for when it differs (a generator draws jobs by chance)."""
    got, asked = s.get("offered_load"), s.get("offered_load_target")
    if got is None:
        return "–"
    if asked is None or round(got, 2) == round(asked, 2):
        return f"{got:.2f}"
    return f"{got:.2f} (asked {asked:g})"


def _fairness(f: dict[str, Any] | None) -> str:
    if not f:
        return "–"
    daily = f.get("daily") or {}
    jain = f" · Jain daily {daily['jain_mean']:.2f}" if daily.get("jain_mean") is not None else ""
    return f"{f['deviation']:.3f}{jain}"


def _count(n: int, noun: str) -> str:
    plural = noun[:-1] + "ies" if noun.endswith("y") else noun + "s"
    return f"{n:,} {noun if n == 1 else plural}"


def summary_table(s: dict[str, Any]) -> Table:
    from rich.table import Table

    table = Table(title=f"{s['site']} · {s['policy']} · seed {s['seed']}", title_justify="left")
    steady = s.get("steady")
    table.add_column("", style="bold")
    table.add_column("whole run", justify="right", no_wrap=True)
    if steady:
        w = steady["window"]
        label = "window" if w["rule"].startswith("given") else "steady"
        table.add_column(f"{label}: days {w['from_day']:.2f}–{w['to_day']:.2f}", justify="right", no_wrap=True)

    def row(label: str, whole: str, in_window: str = "") -> None:
        table.add_row(label, whole, *([in_window] if steady else []))

    row("jobs", f"{s['jobs']:,}", f"{steady['jobs_submitted']:,} submitted" if steady else "")
    row("completed / failed / cancelled", f"{s['completed']:,} / {s['failed']:,} / {s['cancelled']:,}")
    notes = []
    if s.get("outcome_model", "none") != "none":
        notes.append(f"failed / cancelled: ended by themselves; who does: {s['outcome_model']}")
    row("rejected / unfinished", f"{s['rejected']:,} / {s['unfinished']:,}")
    if s.get("not_arrived"):
        notes.append(f"unfinished includes {s['not_arrived']:,} jobs the horizon stopped before they arrived")
    if s.get("waiting_at_end"):
        why = s["waiting_at_end"]
        first = "; ".join(f"{reason} ({n:,})" for reason, n in list(why.items())[:3])
        more = f"; and {len(why) - 3:,} other reasons" if len(why) > 3 else ""
        when = "nothing left could start them" if s.get("stuck") else "the run ended"
        notes.append(f"unfinished includes {sum(why.values()):,} jobs still waiting when {when}: {first}{more}")
    row("site-interrupted / preempted", f"{s.get('interruptions', 0):,} / {s.get('preemptions', 0):,}")
    model = s.get("failure_model", "none")
    cause = "no failure model" if model == "none" else f"failure model {model}"
    notes.append(f"interrupted or preempted jobs were requeued, not failed ({cause})")
    row("offered load", _offered(s))
    if s.get("offered_load_target") is not None:
        notes.append("offered load: the sampled jobs' GPU-time ÷ (their arrival span × the site's GPUs)")
    row("utilisation", f"{s['utilisation']:.1%}", f"{steady['utilisation']:.1%}" if steady else "")

    def three(d: dict[str, Any], what: str) -> str:
        return " / ".join(_fmt_s(d[f"{k}_{what}"]) for k in ("avg", "p50", "p99"))

    row("JCT mean/p50/p99", three(s, "jct_s"), three(steady, "jct_s") if steady else "")
    row("queueing mean/p50/p99", three(s, "queue_s"), three(steady, "queue_s") if steady else "")
    if s.get("restarts") and s.get("avg_waited_s") is not None:
        row("waited in all, mean/p99", f"{_fmt_s(s['avg_waited_s'])} / {_fmt_s(s['p99_waited_s'])}")
        notes.append("queueing: the wait before the first start; waited in all: every wait, after requeues too")
    row("fairness deviation", _fairness(s.get("fairness")),
        _fairness(steady.get("fairness")) if steady else "")  # fmt: skip
    row("makespan", _fmt_s(s["makespan_s"]))
    if s.get("failure_model", "none") != "none":
        row("failures / job interruptions", f"{s['failures']:,} / {s['interruptions']:,}")
        row("ETTR (GPU-time weighted)", "–" if s.get("ettr") is None else f"{s['ettr']:.3f}")
    row("events simulated", f"{s['events']:,} in {s['wall_s']:.1f} s ({s['events_per_s'] or 0:,.0f}/s)")
    if steady:
        notes.append(f"{'window' if steady['window']['rule'].startswith('given') else 'steady window'}: "
                     f"{steady['window']['rule']}")  # fmt: skip
    notes.append(
        "fairness deviation: Σ over tenants of |share received − share entitled|; "
        "entitlements capped by demand and limits"
    )
    table.caption = "\n".join(notes)
    table.caption_justify = "left"
    return table


def _run_with_progress(exp: Experiment, seed: int, quiet: bool) -> SimResult:
    from gigafactory.twin.experiment import run_one

    return _with_progress(run_one, exp, seed, quiet, "simulating")


def _with_progress(run: Callable[..., R], exp: Experiment, seed: int, quiet: bool, label: str) -> R:
    """``run(exp, seed)``, with a progress bar on a terminal."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    if quiet or not console.is_terminal:
        return run(exp, seed)
    with Progress(
        TextColumn(f"[bold]{label}[/] seed {{task.fields[seed]}}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}% of submissions · day {task.fields[day]:.1f}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("sim", total=1.0, seed=seed, day=0.0)

        def progress(frac: float, t: float) -> None:
            bar.update(task, completed=frac, day=t / 86_400.0)

        return run(exp, seed, progress=progress)


def network_table(s: dict[str, Any]) -> Table:
    from rich.table import Table

    from gigafactory.report.html import amount

    table = Table(
        title=f"network {s['network']} · route {s['route']} · {s['policy']} · seed {s['seed']}",
        title_justify="left",
    )
    for col, justify in (("site", "left"), ("jobs", "right"), ("util.", "right"), ("queueing", "right"),
                         ("MWh", "right"), ("€", "right"), ("t CO₂e", "right")):  # fmt: skip
        table.add_column(col, justify=justify)  # type: ignore[arg-type]

    def row(name: str, v: dict[str, Any], jobs: int) -> list[str]:
        return [
            name,
            f"{jobs:,}",
            f"{v['utilisation']:.1%}",
            _fmt_s(v["avg_queue_s"]),
            amount(v["energy_mwh"]),
            amount(v["cost_eur"]),
            amount(v["emissions_t"]),
        ]

    for name, v in s["sites"].items():
        table.add_row(*row(f"{name} ({v['country']})", v, v["received"]))
    table.add_row(*row("[bold]network[/]", s, s["jobs"] - s["unroutable"]), end_section=True)
    if s["unroutable"]:
        n = s["unroutable"]
        first = next(iter(s.get("unroutable_reasons", {})), "")
        table.caption = (
            f"{n:,} job{'s' if n != 1 else ''} rejected: no allowed site could hold {'them' if n != 1 else 'it'}"
        )
        table.caption += f" (e.g. {first})" if first else ""
    return table


def _run_network(exp: Experiment, seed: int, quiet: bool) -> NetworkResult:
    from gigafactory.twin.experiment import run_network

    return _with_progress(run_network, exp, seed, quiet, "simulating the network")


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: is a file; give a directory to write into")


def run_experiment(exp: Experiment, out: Path, *, quiet: bool = False) -> list[Any]:
    from gigafactory.twin.report import write_network_outputs, write_outputs

    _check_out(out)
    exp.check()
    # One site or a network: the same loop, with that kind's runner, writer and table.
    steps: tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]] = (
        (_run_network, write_network_outputs, network_table)
        if exp.network is not None
        else (_run_with_progress, write_outputs, summary_table)
    )
    run, write, table = steps
    results = []
    for seed in exp.seeds:
        result = run(exp, seed, quiet)
        # The run's records outlive the report: frozen while it is built, the collector does not rescan them all
        # again and again (5% of a Philly replay, end to end). Thawed after, for a caller that goes on.
        gc.freeze()
        try:
            target = out if len(exp.seeds) == 1 else out / f"seed-{seed}"
            summary_path, report_path = write(result, target)
        finally:
            gc.unfreeze()
        results.append(result)
        if not quiet:
            console.print(table(result.summary))
            console.print(f"summary: [cyan]{summary_path}[/]  report: [cyan]{report_path}[/]")
    if len(results) > 1:
        combined = _combine([r.summary for r in results])
        (out / "summary.json").write_text(json.dumps(combined, indent=2) + "\n")
        if not quiet:
            console.print(f"all seeds: [cyan]{out / 'summary.json'}[/]")
    return results


def _flat(s: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Numbers of a summary by dotted path (``steady.fairness.deviation``), leaving out per-tenant and per-site rows."""
    out: dict[str, float] = {}
    for k, v in s.items():
        if isinstance(v, bool):
            continue
        if isinstance(v, (int, float)):
            out[prefix + k] = v
        elif isinstance(v, dict) and k not in ("tenants", "sites", "slowdown", "unroutable_reasons"):
            out.update(_flat(v, f"{prefix}{k}."))
    return out


def _combine(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    flats = [_flat(s) for s in summaries]
    mean = {}
    for k in flats[0]:
        values = [f[k] for f in flats if k in f]
        if len(values) == len(flats):
            mean[k] = round(statistics.fmean(values), 6)
    return {"runs": summaries, "mean": mean}


@twin_app.command("run")
@user_errors
def twin_run(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="experiment TOML file")] = None,
    site: Annotated[str | None, typer.Option(help="site preset, e.g. gb200-nvl72:racks=1389")] = None,
    workload: Annotated[str | None, typer.Option(help="workload, e.g. llm:load=0.85")] = None,
    policy: Annotated[str | None, typer.Option(help="profile order+backfill+place, e.g. fifo+easy+best-fit")] = None,
    seed: Annotated[list[int] | None, typer.Option(help="seed; repeat for several")] = None,
    days: Annotated[float | None, typer.Option(help="days of workload to simulate")] = None,
    out: Annotated[Path | None, typer.Option(help="output directory")] = None,
    failures: Annotated[
        str | None, typer.Option(help="none, llama3, rsc1 (:rack_per_day=R,spares=K) or FILE.toml")
    ] = None,
    horizon: Annotated[
        float | None, typer.Option(help="stop after this many days (default: when all jobs end)")
    ] = None,
    tenants: Annotated[Path | None, typer.Option(help="tenant tree TOML: shares, guarantees, limits")] = None,
    skip_bad_rows: Annotated[
        bool, typer.Option("--skip-bad-rows", help="leave out malformed trace rows (and count them) instead of failing")
    ] = False,
    validate: Annotated[bool, typer.Option(help="check engine invariants after every event (slow)")] = False,
    network: Annotated[
        str | None, typer.Option(help="simulate a network instead of one site: a preset (eu-2030, pair) or FILE.toml")
    ] = None,
    route: Annotated[
        str | None, typer.Option(help="route policy for --network, e.g. earliest-start, cheapest-energy:max_wait_h=2")
    ] = None,
    residency: Annotated[
        float | None, typer.Option(help="share of jobs (0-1) that may run only in their tenant's home country")
    ] = None,
    programme: Annotated[
        str | None,
        typer.Option(help="replay an access programme: calls=4,cover=0.8,response_days=4 (use with the award policy)"),
    ] = None,
    window: Annotated[
        str | None,
        typer.Option(help="steady-state window FROM:TO in days after the first submission (default: found)"),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="print nothing but errors")] = False,
) -> None:
    """Simulate a site, or a network of sites: write OUT/summary.json and OUT/report.html."""
    from gigafactory.twin.experiment import Experiment, load_experiment

    if network is not None and site is not None:
        raise UserError("give either --site or --network: a network's sites come with it")
    exp = load_experiment(config) if config is not None else Experiment()
    exp = exp.with_overrides(
        site=site,
        workload=workload,
        policy=policy,
        days=days,
        seeds=tuple(seed) if seed else None,
        failures=failures,
        horizon_days=horizon,
        skip_bad_rows=skip_bad_rows or None,
        tenants=str(tenants) if tenants else None,
        validate=validate or None,
        network=network,
        route=route,
        residency=residency,
        programme=programme,
        window=window,
    )
    target = out or (Path(exp.out) if exp.out else Path("out") / "twin")
    run_experiment(exp, target, quiet=quiet)


@twin_app.command("compare")
@user_errors
def twin_compare(
    policy: Annotated[list[str], typer.Option(help="a policy profile; repeat for each policy to compare")],
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="experiment TOML file (its policy unused)")
    ] = None,
    site: Annotated[str | None, typer.Option(help="site preset, e.g. hgx-h100:nodes=128")] = None,
    workload: Annotated[str | None, typer.Option(help="workload, e.g. llm:load=1.3,tenants=5")] = None,
    seeds: Annotated[
        str | None, typer.Option(help="seeds, at least two: 1-5, or 1,2,7 (default: the config's, else 1-5)")
    ] = None,
    days: Annotated[float | None, typer.Option(help="days of workload to simulate")] = None,
    horizon: Annotated[
        float | None, typer.Option(help="stop each run after this many days (default: when all jobs end)")
    ] = None,
    failures: Annotated[str | None, typer.Option(help="none, llama3, rsc1 or FILE.toml")] = None,
    tenants: Annotated[Path | None, typer.Option(help="tenant tree TOML: shares, guarantees, limits")] = None,
    window: Annotated[
        str | None, typer.Option(help="steady-state window FROM:TO in days (default: found per run)")
    ] = None,
    jobs: Annotated[int | None, typer.Option(help="parallel processes (default: one per core)")] = None,
    ray: Annotated[str | None, typer.Option("--ray", help="run on the Ray cluster at this address")] = None,
    out: Annotated[Path, typer.Option(help="output directory")] = Path("out") / "compare",
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Compare policies over seeds on one site and workload: means with 95% intervals, paired differences marked
    where they are inside the noise; writes OUT/compare.json, compare.md and compare.html."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from gigafactory.twin.compare import (
        MEASURES,
        cell,
        check_plan,
        compare,
        pair_text,
        settings_lines,
        write_outputs,
    )
    from gigafactory.twin.experiment import Experiment, load_experiment
    from gigafactory.twin.fgd_grid import parse_seeds

    if jobs is not None and jobs < 1:
        raise UserError(f"--jobs {jobs}: must be at least 1")
    exp = load_experiment(config) if config is not None else Experiment(site="hgx-h100:nodes=128", days=14)
    exp = exp.with_overrides(
        site=site, workload=workload, days=days, failures=failures, window=window, horizon_days=horizon,
        tenants=str(tenants) if tenants else None,
    )  # fmt: skip
    if seeds is not None:
        seed_list = parse_seeds(seeds)
    elif config is not None and len(exp.seeds) > 1:
        seed_list = list(exp.seeds)
    else:
        seed_list = list(range(1, 6))
    _check_out(out)
    check_plan(exp, policy, seed_list)
    n = len(policy) * len(seed_list)
    if not quiet:
        console.print(f"[bold]comparing[/] {len(policy)} policies × {len(seed_list)} seeds = {n} runs on {exp.site}")
    with Progress(
        TextColumn("[bold]running[/]"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(), console=console, transient=True, disable=quiet or not console.is_terminal,
    ) as bar:  # fmt: skip
        task_id = bar.add_task("runs", total=n)
        result = compare(exp, policy, seed_list, processes=jobs, ray_address=ray,
                         progress=lambda _r: bar.advance(task_id))  # fmt: skip
    paths = write_outputs(result, out)
    if quiet:
        return
    table = Table(title=f"{result['site']} · {result['workload']} · mean [95% interval] over seeds "
                  f"{', '.join(map(str, seed_list))}", title_justify="left")  # fmt: skip
    table.add_column("policy", overflow="fold")
    for m in MEASURES:
        table.add_column(m.label + (f" ({m.unit})" if m.unit else ""), justify="right")
    for p, row in result["table"].items():
        table.add_row(p, *(cell(m.key, row[m.key]) for m in MEASURES))
    console.print(table)
    diffs = Table(title="paired differences, second − first per seed [95% interval]; ≈: inside the noise",
                  title_justify="left")  # fmt: skip
    diffs.add_column("second − first", overflow="fold")
    for m in MEASURES:
        diffs.add_column(m.label, justify="right")
    by_pair: dict[tuple[str, str], dict[str, Any]] = {}
    for pr in result["pairs"]:
        by_pair.setdefault((pr["a"], pr["b"]), {})[pr["measure"]] = pr
    for (a, b), row in by_pair.items():
        cells = [pair_text(m.key, row[m.key]).replace(" inside the noise", " ≈") if m.key in row else "–"
                 for m in MEASURES]  # fmt: skip
        diffs.add_row(f"{b} − {a}", *cells)
    if by_pair:
        console.print(diffs)
    for line in settings_lines(result):
        console.print(f"  {line}")
    console.print("written: " + "  ".join(f"[cyan]{p}[/]" for p in paths))


@twin_app.command("fgd")
@user_errors
def twin_fgd(
    data: Annotated[Path, typer.Option(help="directory with the openb node and pod lists")],
    workload: Annotated[
        str, typer.Option(help="workload(s), e.g. default,gpushare40 (or openb_pod_list_...), family:multigpu=0.3")
    ],
    policy: Annotated[str, typer.Option(help="placement policies, comma-separated, or 'all'")] = "all",
    seeds: Annotated[str, typer.Option(help="seeds: 42-51, or 42,43")] = "42-51",
    orders: Annotated[Path | None, typer.Option(help="directory with recorded arrival orders and node ranks")] = None,
    out: Annotated[Path, typer.Option(help="output directory")] = Path("out") / "fgd",
    compare_with: Annotated[
        Path | None, typer.Option("--compare", help="published CSV to compare with (same format)")
    ] = None,
    jobs: Annotated[int | None, typer.Option(help="parallel processes (default: one per core)")] = None,
    ray: Annotated[str | None, typer.Option("--ray", help="run the grid on the Ray cluster at this address")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Replay the FGD experiment (ATC'23) on the Alibaba openb cluster: allocation.csv, fragmentation.csv, report."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from gigafactory.twin.fgd import check_workload, fgd_policies
    from gigafactory.twin.fgd_grid import GridTask, compare, parse_seeds, read_published, run_grid, write_csv
    from gigafactory.twin.fgd_grid import write_report as write_fgd_report
    from gigafactory.twin.fgd_grid import write_summary as write_fgd_summary

    if not data.is_dir():
        raise UserError(f"--data {data}: not a directory")
    if orders is not None and not orders.is_dir():
        raise UserError(f"--orders {orders}: not a directory")
    if jobs is not None and jobs < 1:
        raise UserError(f"--jobs {jobs}: must be at least 1")
    workloads = [w.strip() for w in workload.split(",") if w.strip()]
    if not workloads:
        raise UserError("--workload: give at least one workload")
    for w in workloads:
        check_workload(data, w, orders=orders)
    policies = fgd_policies(policy)
    seed_list = parse_seeds(seeds)
    published = read_published(compare_with) if compare_with is not None else None
    tasks = [
        GridTask(str(data), w, p, s, str(orders) if orders else None)
        for w in workloads
        for p in policies
        for s in seed_list
    ]
    if not quiet:
        console.print(
            f"[bold]FGD experiment[/]: {_count(len(workloads), 'workload')} × {_count(len(policies), 'policy')} × "
            f"{_count(len(seed_list), 'seed')} "
            f"= {len(tasks)} runs, orders {'recorded' if orders else 'derived from the seed'}"
        )
    with Progress(
        TextColumn("[bold]running[/]"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(), console=console, transient=True, disable=quiet or not console.is_terminal,
    ) as bar:  # fmt: skip
        task_id = bar.add_task("grid", total=len(tasks))
        results = run_grid(tasks, processes=jobs, ray_address=ray, progress=lambda _r: bar.advance(task_id))
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "allocation.csv", results, "alloc")
    write_csv(out / "fragmentation.csv", results, "frag")
    write_csv(out / "fragmentation_ratio.csv", results, "frag_ratio")
    comparisons = compare(results, published) if published is not None else []
    write_fgd_report(out / "report.html", results, comparisons)
    write_fgd_summary(out / "summary.json", results, comparisons)
    if quiet:
        return
    table = Table(title="GPU allocation, mean over seeds", title_justify="left")
    for col in ("workload", "policy", "@100%", "@130%", "s/run"):
        table.add_column(col, justify="left" if col in ("workload", "policy") else "right")
    from gigafactory.twin.fgd import PUBLISHED_NAMES
    from gigafactory.twin.fgd_grid import means

    for (w, p), m in means(results).items():
        table.add_row(
            w.removeprefix("openb_pod_list_"), PUBLISHED_NAMES.get(p, p), f"{m['alloc_100']:.2f}",
            f"{m['alloc_130']:.2f}", f"{m['wall_s']:.2f}",
        )  # fmt: skip
    console.print(table)
    if comparisons:
        # Ours against published in one cell per load, so that the table fits 80 columns.
        ct = Table(title=f"against {compare_with}", title_justify="left", box=None, header_style="bold")
        ct.add_column("workload", overflow="fold")
        ct.add_column("policy", overflow="fold")
        for col in ("n", "@100 ours/pub Δ", "@130 ours/pub Δ", "max|Δ|"):
            ct.add_column(col, justify="right", no_wrap=True)
        for c in comparisons:
            o1, p1, d1 = c.at(100)
            o2, p2, d2 = c.at(130)
            ct.add_row(
                c.workload.removeprefix("openb_pod_list_"), PUBLISHED_NAMES.get(c.policy, c.policy), str(c.seeds),
                f"{o1:.2f}/{p1:.2f} {d1:+.2f}", f"{o2:.2f}/{p2:.2f} {d2:+.2f}", f"{c.max_abs_diff:.2f}",
            )  # fmt: skip
        console.print(ct)
    console.print(
        f"wrote [cyan]{out}/allocation.csv[/], fragmentation.csv, fragmentation_ratio.csv, summary.json and report.html"
    )


@app.command()
@user_errors
def demo(
    twin_only: Annotated[bool, typer.Option("--twin-only", help="only the simulation demo")] = False,
    out: Annotated[Path, typer.Option(help="output directory")] = Path("out") / "demo",
    days: Annotated[float, typer.Option(help="days to simulate (--twin-only)")] = 30.0,
    port: Annotated[int, typer.Option(envvar="GIGAFACTORY_PORT", help="the control plane's port")] = 8642,
    seconds: Annotated[
        float | None, typer.Option("--for", help="stop the control plane after this many seconds")
    ] = None,
) -> None:
    """The main job: a live control plane running real jobs, with its dashboard; or, with --twin-only, 30 days of a
    100k-GPU GB200 NVL72 site shared by 10 tenants, with failures, simulated."""
    if not twin_only:
        from gigafactory.cli.control import control_demo

        control_demo(out.parent / "control-demo" if out == Path("out") / "demo" else out, port, seconds)
        return
    exp = demo_experiment().with_overrides(days=days)
    console.print(
        f"[bold]gigafactory demo[/]: {days:g} days of a {exp.site} site (100,008 GPUs), "
        f"workload {exp.workload}, policy {exp.profile()}, failures {exp.failures}"
    )
    run_experiment(exp, out)


@app.command()
def policies() -> None:
    """List the scheduling policies by extension point, and the named profiles."""
    from rich.table import Table

    from gigafactory.policy.profile import NAMED_PROFILES, POINTS

    for point, registry in POINTS.items():
        table = Table(title=f"{point} policies", title_justify="left")
        table.add_column("name", style="bold")
        table.add_column("what it does")
        table.add_column("parameters")
        for name in registry:
            f = registry.get(name)
            params = ", ".join(f"{k}={p.default}" for k, p in f.params.items()) or "–"
            table.add_row(name, f.summary, params)
        console.print(table)
    for name, text in NAMED_PROFILES.items():
        console.print(f"profile [bold]{name}[/] = {text}")
    from gigafactory.policy.base import ROUTE
    from gigafactory.policy.profile import DEFAULT_ROUTE

    table = Table(title="route policies (which site of a network; residency always applies)", title_justify="left")
    table.add_column("name", style="bold")
    table.add_column("what it does")
    table.add_column("parameters")
    for name in ROUTE:
        f = ROUTE.get(name)
        params = ", ".join(f"{k}={p.default}" for k, p in f.params.items()) or "–"
        table.add_row(name, f.summary, params)
    console.print(table)
    console.print(f"default route = {DEFAULT_ROUTE}")


@app.command()
def presets() -> None:
    """List the site presets with their parameters, and the network presets with their sites."""
    from rich.table import Table

    from gigafactory.core.presets import SITE_PRESETS
    from gigafactory.network import NETWORK_PRESETS, network_preset

    table = Table(title="site presets", title_justify="left")
    table.add_column("name", style="bold")
    table.add_column("what it is")
    table.add_column("parameters (default)")
    for name in SITE_PRESETS:
        p = SITE_PRESETS.get(name)
        table.add_row(name, p.summary, ", ".join(f"{k}={v.default}" for k, v in p.params.items()))
    console.print(table)
    nets = Table(title="network presets (twin run --network NAME)", title_justify="left")
    nets.add_column("name", style="bold")
    nets.add_column("what it is")
    nets.add_column("sites")
    for name in NETWORK_PRESETS:
        net = network_preset(name)
        nets.add_row(name, NETWORK_PRESETS.get(name)[0], ", ".join(s.name for s in net.sites))
    console.print(nets)


@app.command()
def workloads() -> None:
    """List the workload sources and their parameters."""
    from rich.table import Table

    from gigafactory.twin.workloads import WORKLOADS

    table = Table(title="workloads", title_justify="left")
    table.add_column("name", style="bold")
    table.add_column("what it is")
    table.add_column("parameters (default)")
    for name in WORKLOADS:
        w = WORKLOADS.get(name)
        table.add_row(name, w.summary, ", ".join(f"{k}={v.default}" for k, v in w.params.items() if k))
    console.print(table)


@app.command()
def version() -> None:
    """Print the version, and whether the engine runs compiled (make native) or as pure Python."""
    console.print(_version_line(), markup=False)


register(app)


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
