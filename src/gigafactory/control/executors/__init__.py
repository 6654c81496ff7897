"""Executors: the local one (processes on this machine) and Slurm; see :mod:`.base` for the interface."""

from gigafactory.control.executors.base import Executor, Launch, NodeReport, Report
from gigafactory.control.executors.local import LocalExecutor

__all__ = ["Executor", "Launch", "LocalExecutor", "NodeReport", "Report"]
