"""``single:gpus=N,hours=H``: one job holding N GPUs for H hours of work, submitted at time 0.

The workload of the failure checks (a Llama-3-sized run is ``single:gpus=16384,hours=1296``) and the simplest
way to ask "does this fit, and how long does it take".
"""

from __future__ import annotations

from gigafactory.core.errors import ConfigError
from gigafactory.core.spec import Param
from gigafactory.core.tenants import TenantTree
from gigafactory.core.topology import Topology
from gigafactory.twin.workload import YOUNG_DALY, Workload

__all__ = ["PARAMS", "generate"]

PARAMS = {
    "gpus": Param(int, 8, minimum=1, help="GPUs the job holds"),
    "hours": Param(float, 1.0, minimum=0.0, exclusive_minimum=True, help="hours of work"),
    "locality": Param(str, "any", help="any, pod or domain"),
    "ckpt": Param(str, "none", help="checkpoint interval: none, young-daly, or minutes of work"),
    "write_s": Param(float, 0.0, minimum=0.0, help="seconds one checkpoint write takes"),
    "restart_s": Param(float, 0.0, minimum=0.0, help="seconds every (re)start takes"),
}


def generate(
    topo: Topology,
    days: float,
    seed: int,
    *,
    gpus: int = 8,
    hours: float = 1.0,
    locality: str = "any",
    ckpt: str = "none",
    write_s: float = 0.0,
    restart_s: float = 0.0,
) -> tuple[Workload, TenantTree | None]:
    codes = {"any": 0, "pod": 1, "domain": 2}
    if locality not in codes:
        raise ConfigError(f"workload single: locality={locality!r}; allowed: any, pod, domain")
    if ckpt == "none":
        interval = float("nan")
    elif ckpt == "young-daly":
        if write_s <= 0:
            raise ConfigError("workload single: ckpt=young-daly needs write_s above 0")
        interval = YOUNG_DALY
    else:
        try:
            interval = float(ckpt) * 60.0
        except ValueError:
            raise ConfigError(f"workload single: ckpt={ckpt!r}; allowed: none, young-daly, or minutes") from None
        if not interval > 0:
            raise ConfigError(f"workload single: ckpt={ckpt!r} minutes must be greater than 0")
    wl = Workload.build(
        f"single:gpus={gpus},hours={hours:g}",
        {
            "submit_s": [0.0],
            "gpus": [gpus],
            "runtime_s": [hours * 3600.0],
            "estimate_s": [hours * 3600.0],
            "locality": [codes[locality]],
            "ckpt_s": [interval],
            "ckpt_write": [write_s],
            "restart_s": [restart_s],
        },
    )
    return wl, None
