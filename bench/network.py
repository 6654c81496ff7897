"""The network twin: every route policy on the ``eu-2030`` preset (5 gigafactories + 6 AI factories, 562,040 GPUs)
over one workload, side by side: mean and p99 queueing, JCT, energy cost and emissions; and what the network
costs to simulate against the sum of its sites run alone on the same jobs.

"Sites alone": each site simulated by itself (``twin.sim.Simulation``) on exactly the jobs the router sent it under
``earliest-start``. Their wall times summed are the floor a network run cannot beat; the ratio is what routing and
one shared clock cost. Results: bench/results/network.json.

    python bench/network.py                        # 30 days, every route policy (about 45 min here)
    python bench/network.py --days 7 --routes random earliest-start
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from common import write_result

ROUTES = ("random", "least-loaded", "earliest-start", "cheapest-energy", "lowest-carbon")
POLICY = "default"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--days", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--load", type=float, default=0.85)
    ap.add_argument("--routes", nargs="+", default=list(ROUTES))
    ap.add_argument("--residency", type=float, default=0.2, help="share of jobs kept in their tenant's country")
    args = ap.parse_args()

    from gigafactory.twin.experiment import Experiment, read_network, run_network
    from gigafactory.twin.sim import Simulation

    runs = []
    alone: dict[str, object] | None = None
    for route in args.routes:
        exp = Experiment(
            network="eu-2030", workload=f"llm:load={args.load},tenants=10", policy=POLICY, days=args.days,
            route=route, residency=args.residency,
        )  # fmt: skip
        t0 = time.perf_counter()
        res = run_network(exp, args.seed)
        total = time.perf_counter() - t0
        s = res.summary
        row = {
            "route": s["route"],
            "jobs": s["jobs"],
            "avg_queue_s": s["avg_queue_s"],
            "p99_queue_s": s["p99_queue_s"],
            "avg_jct_s": s["avg_jct_s"],
            "utilisation": s["utilisation"],
            "energy_mwh": round(s["energy_mwh"], 1),
            "cost_eur": round(s["cost_eur"]),
            "emissions_t": round(s["emissions_t"], 1),
            "eur_per_gpu_hour": s["eur_per_gpu_hour"],
            "unroutable": s["unroutable"],
            "wall_s": s["wall_s"],
            "total_s": round(total, 1),
            "received": {k: v["received"] for k, v in s["sites"].items()},
        }
        runs.append(row)
        print(f"{route:16s} queue mean {row['avg_queue_s']:>9.1f} s  p99 {row['p99_queue_s']:>9.1f} s  "
              f"cost EUR {row['cost_eur']:>13,}  {row['emissions_t']:>10,.0f} t  wall {row['wall_s']:.0f} s",
              flush=True)  # fmt: skip
        if route == "earliest-start" and alone is None:
            walls = {}
            network = read_network("eu-2030")
            tenants = res.tenants
            t_sum = 0.0
            for k, spec in enumerate(network.sites):
                idx = np.flatnonzero(res.site_of == k)
                if not idx.size:
                    continue
                part = res.workload.subset(idx, f"{res.workload.name}@{spec.name}")
                r = Simulation(spec.topology, part, POLICY, seed=args.seed + k, tenants=tenants, keep_log=False).run()
                walls[spec.name] = r.summary["wall_s"]
                t_sum += r.summary["wall_s"]
            alone = {"sites_alone_wall_s": round(t_sum, 1), "network_wall_s": s["wall_s"],
                     "ratio": round(s["wall_s"] / t_sum, 3) if t_sum else None, "per_site_s": walls}  # fmt: skip
            print(f"sites alone on the same jobs: {t_sum:.0f} s; the network: {s['wall_s']:.0f} s "
                  f"({alone['ratio']}x)", flush=True)  # fmt: skip
    write_result(
        "network",
        {
            "network": "eu-2030",
            "gpus": 562_040,
            "days": args.days,
            "seed": args.seed,
            "workload": f"llm:load={args.load},tenants=10",
            "policy": POLICY,
            "residency": args.residency,
            "runs": runs,
            "cost_of_the_network": alone,
        },
    )


if __name__ == "__main__":
    main()
