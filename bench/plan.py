"""The capacity planner on ``eu-2030``: the network's power, energy, cost per GPU-hour and a 10^25-FLOP run at the
planner's defaults, and one growth scenario (2025 to 2031, capacity ×3, demand +40% a year) measured with the twin.

Writes bench/results/plan.json, the growth report to out/bench-plan/ (report.html, growth.json), and the growth
plot the README shows, docs/img/growth-eu-2030.svg (drawn here: no plotting library needed).

    python bench/plan.py                      # three seeds: about three minutes here
    python bench/plan.py --days 28 --seed 1
"""

from __future__ import annotations

import argparse
import html
import time
from pathlib import Path

from common import write_result

ROOT = Path(__file__).resolve().parents[1]
SVG = ROOT / "docs" / "img" / "growth-eu-2030.svg"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--days", type=float, default=14.0, help="days the twin simulates for each year")
    ap.add_argument("--scale", type=int, default=10_008, help="GPUs of the twin's scale model")
    ap.add_argument("--seed", type=int, action="append", help="seed; repeat for several (default 1, 2, 3)")
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "bench-plan")
    args = ap.parse_args()

    from gigafactory.network import network_preset
    from gigafactory.plan import GrowthScenario, PlanInputs, network_inputs, plan_network
    from gigafactory.twin.growth import run_growth, write_growth_outputs

    net = network_preset("eu-2030")
    template = PlanInputs()
    p = plan_network(net, template)
    sites = {
        s.name: {
            "gpus": s.result.inputs.gpus,
            "gpu_model": s.result.inputs.gpu_model,
            "pue": s.result.inputs.pue,
            "price_eur_mwh": s.result.inputs.price_eur_mwh,
            **s.result.figures(),
        }
        for s in p.sites
    }
    scenario = GrowthScenario(2025, 2031, 3.0)
    seeds = tuple(args.seed or (1, 2, 3))
    t0 = time.perf_counter()
    result = run_growth(net.name, network_inputs(net, template), scenario, scale=args.scale, days=args.days,
                        seeds=seeds)  # fmt: skip
    total = time.perf_counter() - t0
    write_growth_outputs(result, args.out)
    growth = result.to_dict()
    growth["total_s"] = round(total, 1)
    SVG.parent.mkdir(parents=True, exist_ok=True)
    SVG.write_text(growth_svg(growth))
    path = write_result(
        "plan",
        {
            "network": net.name,
            "command": "gigafactory plan --network eu-2030 --json",
            "plan": {**p.figures(), "cheapest_run_site": p.cheapest_run_site, "sites": sites},
            "defaults": {k: v for k, v in vars_of(template).items() if k not in ("gpus", "gpu_model")},
            "growth_command": f"gigafactory plan growth --network eu-2030 --from 2025 --to 2031 --target 3x "
            f"--demand-growth 0.4 --days {args.days:g} --scale {args.scale} " + " ".join(f"--seed {s}" for s in seeds),
            "growth": growth,
        },
    )
    t = p.totals
    print(f"eu-2030: {p.gpus:,} GPUs, {t['it_mw']:,.0f} MW IT, {t['facility_mw']:,.0f} MW facility, "
          f"{t['annual_energy_mwh'] / 1e6:,.2f} TWh/yr, EUR {t['annual_energy_cost_eur'] / 1e9:,.2f}B energy, "
          f"EUR {t['tco_per_year_eur'] / 1e9:,.2f}B TCO/yr, EUR {p.cost_per_gpu_hour_eur:.2f}/GPU-h")  # fmt: skip
    print(result.outrun.sentence())
    print(f"growth: {total:.0f} s; wrote {path}, {SVG.relative_to(ROOT)} and {args.out}/report.html")


def vars_of(inputs: object) -> dict[str, object]:
    from dataclasses import asdict

    return asdict(inputs)  # type: ignore[call-overload, no-any-return]


def growth_svg(doc: dict) -> str:  # type: ignore[type-arg]
    """Capacity, demand and what the twin served, in billions of GPU-hours a year; years where demand is above
    capacity shaded."""
    years = [y["year"] for y in doc["years"]]
    series = {
        "capacity (GPUs × 8,760 h)": ([y["capacity_gpu_hours"] / 1e9 for y in doc["years"]], "#1f77b4", ""),
        "demand": ([y["demand_gpu_hours"] / 1e9 for y in doc["years"]], "#d62728", ""),
        "served (twin)": ([y["served_gpu_hours"] / 1e9 for y in doc["years"]], "#2ca02c", "6 4"),
    }
    w, h, left, right, top, bottom = 720, 380, 70, 20, 50, 60
    top_y = max(max(v) for v, _, _ in series.values())
    step = next(s for s in (1, 2, 5, 10, 20, 50, 100) if top_y / s <= 8)
    y_max = step * (int(top_y / step) + 1)

    def px(year: float) -> float:
        return left + (year - years[0]) / max(years[-1] - years[0], 1) * (w - left - right)

    def py(v: float) -> float:
        return h - bottom - v / y_max * (h - top - bottom)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
        'font-family="Helvetica, Arial, sans-serif" font-size="12">',
        f'<rect width="{w}" height="{h}" fill="white"/>',
        f'<text x="{left}" y="22" font-size="15" font-weight="bold">{html.escape(doc["network"])}: capacity ×'
        f"{doc['scenario']['target']:g} by {years[-1]}, demand +{doc['scenario']['demand_growth']:.0%} a year</text>",
    ]
    half = (px(years[1]) - px(years[0])) / 2 if len(years) > 1 else 20
    for y in doc["years"]:
        if y["demand_gpu_hours"] > y["capacity_gpu_hours"]:
            x0 = max(px(y["year"]) - half, left)
            x1 = min(px(y["year"]) + half, w - right)
            out.append(f'<rect x="{x0:.1f}" y="{top}" width="{x1 - x0:.1f}" height="{h - top - bottom}" '
                       'fill="#e12d39" fill-opacity="0.08"/>')  # fmt: skip
    for k in range(int(y_max / step) + 1):
        v = k * step
        out.append(f'<line x1="{left}" x2="{w - right}" y1="{py(v):.1f}" y2="{py(v):.1f}" stroke="#e4e7eb"/>')
        out.append(f'<text x="{left - 8}" y="{py(v) + 4:.1f}" text-anchor="end">{v:g}</text>')
    for year in years:
        out.append(f'<text x="{px(year):.1f}" y="{h - bottom + 18}" text-anchor="middle">{year}</text>')
    out.append(
        f'<text x="16" y="{(top + h - bottom) / 2:.0f}" transform="rotate(-90 16 {(top + h - bottom) / 2:.0f})" '
        'text-anchor="middle">billion GPU-hours a year</text>'
    )
    for values, colour, dash in series.values():
        points = " ".join(f"{px(x):.1f},{py(v):.1f}" for x, v in zip(years, values, strict=True))
        extra = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2.5"{extra}/>')
        for x, v in zip(years, values, strict=True):
            out.append(f'<circle cx="{px(x):.1f}" cy="{py(v):.1f}" r="3" fill="{colour}"/>')
    lx = left + 10
    for k, (name, (_, colour, dash)) in enumerate(series.items()):
        ly = top + 14 + 18 * k
        extra = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<line x1="{lx}" x2="{lx + 24}" y1="{ly}" y2="{ly}" stroke="{colour}" stroke-width="2.5"{extra}/>')
        out.append(f'<text x="{lx + 30}" y="{ly + 4}">{html.escape(name)}</text>')
    ly = top + 14 + 18 * len(series)
    out.append(f'<rect x="{lx}" y="{ly - 6}" width="24" height="12" fill="#e12d39" fill-opacity="0.15"/>')
    out.append(f'<text x="{lx + 30}" y="{ly + 4}">demand above capacity</text>')
    sm = doc["scale_model"]
    out.append(
        f'<text x="{left}" y="{h - 14}" fill="#616e7c">served: the twin on {html.escape(sm["site"])}, '
        f"{sm['days']:g} days at each year's offered load</text>"
    )
    out.append("</svg>")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
