"""``Status``: the value every policy returns for an expected outcome.

A placement that does not fit, a tenant over its quota or a job that can never run are not errors; they are
answers. Policies return a ``Status`` with a code and human-readable reasons, in the manner of the Kubernetes
scheduler framework, and the engine turns it into an action or a log entry.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["Code", "Status"]


class Code(enum.Enum):
    OK = "ok"
    UNSCHEDULABLE = "unschedulable"  # does not fit now; may fit later
    UNRESOLVABLE = "unresolvable"  # can never fit on this site
    OVER_QUOTA = "over-quota"  # the tenant may not start it now
    UNFUNDED = "unfunded"  # its award cannot pay: it waits, out of the queue, until the tenant's awards change
    WAIT = "wait"  # it fits, but starting it would delay a reservation


@dataclass(frozen=True, slots=True)
class Status:
    code: Code
    reasons: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.code is Code.OK

    def __str__(self) -> str:
        if not self.reasons:
            return self.code.value
        return f"{self.code.value}: {'; '.join(self.reasons)}"

    @staticmethod
    def unschedulable(*reasons: str) -> Status:
        return Status(Code.UNSCHEDULABLE, reasons)

    @staticmethod
    def unresolvable(*reasons: str) -> Status:
        return Status(Code.UNRESOLVABLE, reasons)

    @staticmethod
    def over_quota(*reasons: str) -> Status:
        return Status(Code.OVER_QUOTA, reasons)

    @staticmethod
    def unfunded(*reasons: str) -> Status:
        return Status(Code.UNFUNDED, reasons)

    @staticmethod
    def wait(*reasons: str) -> Status:
        return Status(Code.WAIT, reasons)


OK = Status(Code.OK)
