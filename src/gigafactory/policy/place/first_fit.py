"""``first-fit``: the lowest-numbered node (or domain, or pod) that has room.

Nodes are numbered in topology order (pod, then rack, then node), so first-fit fills the site from one end.
"""

from __future__ import annotations

from mypy_extensions import mypyc_attr

from gigafactory.policy.base import PLACE, PolicyFactory
from gigafactory.policy.place.common import Placer


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)  # copyable when compiled (gigafactory._native)
class FirstFit(Placer):
    name = "first-fit"


PLACE.add("first-fit", PolicyFactory(FirstFit, "the lowest-numbered node that has room", {}))
