"""The vocabulary of gigafactory: topology, capacity, jobs, tenants, events, actions, status and errors.

Everything here is pure: no I/O, no clock, no unseeded randomness.

The names below are loaded on first use (PEP 562), so that a command that needs one small piece (the CLI needs
only the errors) does not pay for numpy.
"""

import importlib as _importlib
from typing import TYPE_CHECKING
from typing import Any as _Any

if TYPE_CHECKING:
    from gigafactory.core.actions import Action, RejectJob, StartJob, StopJob, StopReason, Wake
    from gigafactory.core.capacity import Capacity
    from gigafactory.core.errors import (
        ConfigError,
        GigafactoryError,
        InvariantError,
        RequestError,
        TraceError,
        UnknownNameError,
        UserError,
    )
    from gigafactory.core.events import (
        AttemptStopping,
        CheckpointWritten,
        Event,
        JobCancelled,
        JobFailed,
        JobFinished,
        JobInterrupted,
        JobRestored,
        JobSubmitted,
        NodeDrained,
        NodeFailed,
        NodeRepaired,
        NodeResumed,
        Tick,
    )
    from gigafactory.core.jobs import TERMINAL_STATES, Job, JobId, JobRequest, JobState, Locality
    from gigafactory.core.placement import Placement
    from gigafactory.core.presets import SITE_PRESETS, build_site
    from gigafactory.core.status import Code, Status
    from gigafactory.core.tenants import Tenant, TenantTree
    from gigafactory.core.topology import Topology

__all__ = [
    "SITE_PRESETS",
    "TERMINAL_STATES",
    "Action",
    "AttemptStopping",
    "Capacity",
    "CheckpointWritten",
    "Code",
    "ConfigError",
    "Event",
    "GigafactoryError",
    "InvariantError",
    "Job",
    "JobCancelled",
    "JobFailed",
    "JobFinished",
    "JobId",
    "JobInterrupted",
    "JobRequest",
    "JobRestored",
    "JobState",
    "JobSubmitted",
    "Locality",
    "NodeDrained",
    "NodeFailed",
    "NodeRepaired",
    "NodeResumed",
    "Placement",
    "RejectJob",
    "RequestError",
    "StartJob",
    "Status",
    "StopJob",
    "StopReason",
    "Tenant",
    "TenantTree",
    "Tick",
    "Topology",
    "TraceError",
    "UnknownNameError",
    "UserError",
    "Wake",
    "build_site",
]

_HOME = {
    "Action": "gigafactory.core.actions",
    "AttemptStopping": "gigafactory.core.events",
    "Capacity": "gigafactory.core.capacity",
    "CheckpointWritten": "gigafactory.core.events",
    "Code": "gigafactory.core.status",
    "ConfigError": "gigafactory.core.errors",
    "Event": "gigafactory.core.events",
    "GigafactoryError": "gigafactory.core.errors",
    "InvariantError": "gigafactory.core.errors",
    "Job": "gigafactory.core.jobs",
    "JobCancelled": "gigafactory.core.events",
    "JobFailed": "gigafactory.core.events",
    "JobFinished": "gigafactory.core.events",
    "JobId": "gigafactory.core.jobs",
    "JobInterrupted": "gigafactory.core.events",
    "JobRequest": "gigafactory.core.jobs",
    "JobRestored": "gigafactory.core.events",
    "JobState": "gigafactory.core.jobs",
    "JobSubmitted": "gigafactory.core.events",
    "Locality": "gigafactory.core.jobs",
    "NodeDrained": "gigafactory.core.events",
    "NodeFailed": "gigafactory.core.events",
    "NodeRepaired": "gigafactory.core.events",
    "NodeResumed": "gigafactory.core.events",
    "Placement": "gigafactory.core.placement",
    "RejectJob": "gigafactory.core.actions",
    "RequestError": "gigafactory.core.errors",
    "SITE_PRESETS": "gigafactory.core.presets",
    "StartJob": "gigafactory.core.actions",
    "Status": "gigafactory.core.status",
    "StopJob": "gigafactory.core.actions",
    "StopReason": "gigafactory.core.actions",
    "TERMINAL_STATES": "gigafactory.core.jobs",
    "Tenant": "gigafactory.core.tenants",
    "TenantTree": "gigafactory.core.tenants",
    "Tick": "gigafactory.core.events",
    "Topology": "gigafactory.core.topology",
    "TraceError": "gigafactory.core.errors",
    "UnknownNameError": "gigafactory.core.errors",
    "UserError": "gigafactory.core.errors",
    "Wake": "gigafactory.core.actions",
    "build_site": "gigafactory.core.presets",
}


def __getattr__(name: str) -> _Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
