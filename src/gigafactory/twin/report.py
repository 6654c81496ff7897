"""The twin's outputs: ``summary.json`` and ``report.html`` for one simulation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from gigafactory.report.html import (
    Report,
    amount,
    bar_figure,
    cdf_figure,
    line_figure,
    share_figure,
    shares_figure,
)
from gigafactory.twin.network_sim import NetworkResult
from gigafactory.twin.sim import SimResult

__all__ = ["build_network_report", "build_report", "write_network_outputs", "write_outputs"]


def _hours(x: float | None) -> str:
    if x is None:
        return "–"
    if x < 120:
        return f"{x:.0f} s"
    if x < 7200:
        return f"{x / 60:.1f} min"
    return f"{x / 3600:.1f} h"


def build_report(result: SimResult) -> Report:
    s = result.summary
    rep = Report(
        f"gigafactory twin: {s['site']}",
        f"workload {s['workload']} · policy {s['policy']} · seed {s['seed']} · "
        f"{s['jobs']:,} jobs · {s['events']:,} events simulated in {s['wall_s']:.1f} s",
    )
    rep.kpis(
        [
            ("utilisation", f"{s['utilisation']:.1%}"),
            ("offered load", "–" if s.get("offered_load") is None else f"{s['offered_load']:.2f}"),
            ("jobs completed", f"{s['completed']:,}"),
            ("failed / cancelled", f"{s['failed']:,} / {s['cancelled']:,}"),
            ("mean JCT", _hours(s["avg_jct_s"])),
            ("p99 JCT", _hours(s["p99_jct_s"])),
            ("mean queueing delay", _hours(s["avg_queue_s"])),
            ("p99 queueing delay", _hours(s["p99_queue_s"])),
            ("makespan", _hours(s["makespan_s"])),
            ("GPU-hours", f"{s['gpu_hours']:,.0f}"),
        ]
    )
    series = result.series
    days = series.t_s / 86_400.0
    rep.heading("Utilisation and queue over time")
    rep.figure(
        line_figure(
            days,
            {"GPUs allocated": series.utilisation},
            title="Share of GPUs allocated",
            x_title="day",
            y_title="allocated",
            percent=True,
        )
    )
    rep.figure(line_figure(days, {"pending jobs": series.queue}, title="Queue length", x_title="day", y_title="jobs"))
    rep.heading("Job completion time and queueing delay")
    submit = result.workload.submit_s
    rep.figure(
        cdf_figure(
            {"JCT": result.metrics.jct(submit), "queueing delay": result.metrics.waits(submit)},
            title="CDF over jobs",
            x_title="seconds (log)",
        )
    )
    if s.get("failure_model", "none") != "none" or s.get("preemptions"):
        rep.heading("Failures, checkpoints and goodput")
        rep.kpis(
            [
                ("failure model", str(s.get("failure_model"))),
                ("node failures", f"{s['failures']:,}"),
                ("job interruptions", f"{s['interruptions']:,}"),
                ("preemptions", f"{s['preemptions']:,}"),
                (f"MTBI, jobs of {s['mtbi_min_gpus']}+ GPUs", "–" if s["mtbi_h"] is None else f"{s['mtbi_h']:.2f} h"),
                ("ETTR (GPU-time weighted)", "–" if s["ettr"] is None else f"{s['ettr']:.3f}"),
            ]
        )
        parts = {
            "goodput": s["goodput_gpu_h"],
            "lost to interruptions": s["lost_gpu_h"],
            "checkpoint writes": s["checkpoint_gpu_h"],
            "restarts": s["restart_gpu_h"],
        }
        rep.figure(bar_figure(list(parts), list(parts.values()), title="Where the GPU-hours went", y_title="GPU-hours"))
    steady = s.get("steady")
    if steady:
        w = steady["window"]
        rep.heading(f"Steady state: days {w['from_day']:.1f} to {w['to_day']:.1f}")
        rep.paragraph(f"Window: {w['rule']}. Figures here count only that window (jobs submitted in it).")
        rep.kpis(_window_kpis(steady))
    if result.shares is not None and result.shares["t_s"]:
        fig, per = shares_figure(result.shares, "Share received (solid) and entitled (dashed), per {per}")
        rep.heading("Tenants: share received against entitlement over time")
        rep.paragraph(
            "Entitlement: each tenant's demand-capped max-min part of the GPUs in service (nothing owed while it has "
            f"no work; its part goes to the others). Per {per}, as shares of that {per}'s GPU-hours."
        )
        rep.figure(fig)
        t_days = [(x - result.shares["t_s"][0]) / 86_400.0 for x in result.shares["t_s"]]
        rep.figure(
            line_figure(
                np.array(t_days),
                {
                    "Jain's index (1: each got the same part of its entitlement)": np.array(
                        [np.nan if x is None else x for x in result.shares["jain"]], dtype=float
                    ),
                    "fairness deviation (0: as entitled)": np.array(result.shares["deviation"], dtype=float),
                },
                title=f"Fairness per {per}",
                x_title="day",
                y_title="",
            )
        )
    rep.heading("Tenants: share owed and share received")
    tenants = s.get("tenants", {})
    names = list(tenants)
    rep.figure(
        share_figure(
            names,
            [tenants[n]["share_owed"] for n in names],
            [tenants[n]["share_received"] for n in names],
            title="GPU-hours by tenant",
        )
    )
    st = (steady or {}).get("tenants", {})
    rep.table(
        ["tenant", "jobs", "GPU-hours", "share owed", "share received", "steady: received / entitled",
         "steady: owed, not received (GPU-h)", "steady: queueing mean / p99"],
        [
            [
                n,
                f"{t['jobs']:,}",
                f"{t['gpu_hours']:,.0f}",
                f"{t['share_owed']:.1%}",
                f"{t['share_received']:.1%}",
                _pair(st.get(n, {}), "share_received", "share_entitled"),
                f"{st[n]['owed_not_received_gpu_h']:,.0f}" if "owed_not_received_gpu_h" in st.get(n, {}) else "–",
                f"{_hours(st.get(n, {}).get('avg_queue_s'))} / {_hours(st.get(n, {}).get('p99_queue_s'))}",
            ]
            for n, t in tenants.items()
        ],
    )  # fmt: skip
    slow = (steady or s).get("slowdown", {})
    if slow:
        rep.heading("Bounded slowdown by job size (steady window)" if steady else "Bounded slowdown by job size")
        rep.table(
            ["GPUs", "jobs", "mean", "p50", "p99"],
            [[k, f"{v['jobs']:,}", f"{v['mean']:.2f}", f"{v['p50']:.2f}", f"{v['p99']:.2f}"] for k, v in slow.items()],
        )
    return rep


def _pair(row: dict[str, Any], a: str, b: str) -> str:
    return f"{row[a]:.1%} / {row[b]:.1%}" if a in row and b in row else "–"


def _window_kpis(w: dict[str, Any]) -> list[tuple[str, str]]:
    fair = w.get("fairness") or {}
    daily = fair.get("daily") or {}
    return [
        ("utilisation", f"{w['utilisation']:.1%}"),
        ("jobs submitted", f"{w['jobs_submitted']:,}"),
        ("mean JCT", _hours(w["avg_jct_s"])),
        ("mean queueing delay", _hours(w["avg_queue_s"])),
        ("p99 queueing delay", _hours(w["p99_queue_s"])),
        ("fairness deviation", "–" if not fair else f"{fair['deviation']:.3f}"),
        ("Jain's index, daily mean", "–" if daily.get("jain_mean") is None else f"{daily['jain_mean']:.3f}"),
        ("owed, not received", "–" if not fair else f"{fair['owed_not_received_gpu_h']:,.0f} GPU-h"),
    ]


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def write_outputs(result: SimResult, out: Path) -> tuple[Path, Path]:
    return _write(result.summary, build_report(result), out)


def _write(summary: dict[str, Any], report: Report, out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    summary_path = out / "summary.json"
    summary_path.write_text(json.dumps(_jsonable(summary), indent=2) + "\n")
    report_path = out / "report.html"
    report_path.write_text(report.html())
    return summary_path, report_path


def build_network_report(result: NetworkResult) -> Report:
    """The network's report: the whole first, then a per-site view (what each site received, how it served it,
    and what its energy cost and emitted), then each site's utilisation over time."""
    s = result.summary
    sites = s["sites"]
    names = list(sites)
    rep = Report(
        f"gigafactory twin: network {s['network']}",
        f"{len(names)} sites · {s['gpus']:,} GPUs · workload {s['workload']} · route {s['route']} · "
        f"policy {s['policy']} · seed {s['seed']} · {s['jobs']:,} jobs simulated in {s['wall_s']:.1f} s",
    )
    rep.kpis(
        [
            ("utilisation", f"{s['utilisation']:.1%}"),
            ("offered load", "–" if s.get("offered_load") is None else f"{s['offered_load']:.2f}"),
            ("mean queueing delay", _hours(s["avg_queue_s"])),
            ("p99 queueing delay", _hours(s["p99_queue_s"])),
            ("mean JCT", _hours(s["avg_jct_s"])),
            ("energy", f"{amount(s['energy_mwh'])} MWh"),
            ("energy cost", f"€{amount(s['cost_eur'])}"),
            ("emissions", f"{amount(s['emissions_t'])} t CO₂e"),
            ("rejected: no allowed site", f"{s['unroutable']:,}"),
        ]
    )
    rep.heading("Sites")
    rep.paragraph(
        "Energy is the GPU-time of the jobs each site ran × its system power per GPU × its PUE (idle draw is not "
        "counted); cost and emissions multiply it by the site's electricity price and carbon intensity. Each site's "
        "utilisation is over the network's window (first submission to last end), so sites compare; queueing and "
        "JCT are over the jobs each site received."
    )
    rep.table(
        ["site", "country", "GPUs", "jobs received", "utilisation", "mean queueing", "mean JCT", "MWh", "€", "t CO₂e"],
        [
            [
                n,
                v["country"],
                f"{v['gpus']:,}",
                f"{v['received']:,}",
                f"{v['utilisation']:.1%}",
                _hours(v["avg_queue_s"]),
                _hours(v["avg_jct_s"]),
                amount(v["energy_mwh"]),
                amount(v["cost_eur"]),
                amount(v["emissions_t"]),
            ]
            for n, v in sites.items()
        ],
    )
    labels = [f"{n} ({sites[n]['country']})" for n in names]
    rep.figure(bar_figure(labels, [sites[n]["received"] for n in names], title="Jobs received", y_title="jobs"))
    rep.figure(
        bar_figure(labels, [sites[n]["utilisation"] for n in names], title="Utilisation", y_title="share of GPUs")
    )
    rep.figure(
        bar_figure(
            labels,
            [(sites[n]["avg_queue_s"] or 0.0) / 3600.0 for n in names],
            title="Mean queueing delay",
            y_title="hours",
        )
    )
    rep.figure(bar_figure(labels, [sites[n]["cost_eur"] for n in names], title="Energy cost", y_title="EUR"))
    rep.figure(bar_figure(labels, [sites[n]["emissions_t"] for n in names], title="Emissions", y_title="t CO2e"))
    rep.heading("Utilisation over time, per site")
    days = result.series.t_s / 86_400.0
    rep.figure(
        line_figure(
            days,
            {"network": result.series.utilisation, **{n: result.site_series[n].utilisation for n in names}},
            title="Share of GPUs allocated",
            x_title="day",
            y_title="allocated",
            percent=True,
        )
    )
    return rep


def write_network_outputs(result: NetworkResult, out: Path) -> tuple[Path, Path]:
    return _write(result.summary, build_network_report(result), out)
