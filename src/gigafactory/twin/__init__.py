"""The digital twin: workloads, the simulation driver on a virtual clock, metrics and experiments."""

from gigafactory.twin.sim import SimResult, Simulation
from gigafactory.twin.workload import Workload
from gigafactory.twin.workloads import WORKLOADS, load_workload

__all__ = ["WORKLOADS", "SimResult", "Simulation", "Workload", "load_workload"]
