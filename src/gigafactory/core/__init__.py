"""The vocabulary of gigafactory: topology, capacity, jobs, tenants, events, actions, status and errors.

Everything here is pure: no I/O, no clock, no unseeded randomness.
"""

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
