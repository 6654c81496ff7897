"""Scheduling policies: small Protocols per extension point, name registries, and the built-ins."""

from gigafactory.policy.base import (
    BACKFILL,
    ORDER,
    PLACE,
    BackfillPolicy,
    OrderPolicy,
    PlaceContext,
    PlacePolicy,
    Planner,
    PolicyFactory,
    Reservation,
)
from gigafactory.policy.profile import (
    DEFAULT_PROFILE,
    NAMED_PROFILES,
    Profile,
    parse_profile,
    profile_from_table,
)

__all__ = [
    "BACKFILL",
    "DEFAULT_PROFILE",
    "NAMED_PROFILES",
    "ORDER",
    "PLACE",
    "BackfillPolicy",
    "OrderPolicy",
    "PlaceContext",
    "PlacePolicy",
    "Planner",
    "PolicyFactory",
    "Profile",
    "Reservation",
    "parse_profile",
    "profile_from_table",
]
