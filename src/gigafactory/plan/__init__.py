"""The capacity planner: power, energy, cost per GPU-hour and a 10^25-FLOP training run for a site or a network,
and growth scenarios over years (pure: no I/O, no clock; the twin runs that a growth scenario needs are in
``gigafactory.twin.growth``)."""

from gigafactory.plan.growth import (
    GrowthScenario,
    GrowthStep,
    GrowthYear,
    Outrun,
    ScaleMeasurement,
    growth_path,
    growth_year,
    outrun,
    parse_target,
)
from gigafactory.plan.model import DEFAULTS, PlanInputs, PlanResult, describe_inputs, plan
from gigafactory.plan.network import NetworkPlan, SiteInputs, SitePlan, network_inputs, plan_network, plan_sites

__all__ = [
    "DEFAULTS",
    "GrowthScenario",
    "GrowthStep",
    "GrowthYear",
    "NetworkPlan",
    "Outrun",
    "PlanInputs",
    "PlanResult",
    "ScaleMeasurement",
    "SiteInputs",
    "SitePlan",
    "describe_inputs",
    "growth_path",
    "growth_year",
    "network_inputs",
    "outrun",
    "parse_target",
    "plan",
    "plan_network",
    "plan_sites",
]
