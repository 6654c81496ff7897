"""Several sites under one router, for the twin and the control plane alike (pure: no I/O, no clock)."""

from gigafactory.network.model import (
    EU_MEMBER_STATES,
    Network,
    SiteSpec,
    load_network,
    network_from_table,
    network_from_toml,
)
from gigafactory.network.presets import NETWORK_PRESETS, network_preset
from gigafactory.network.router import Routed, Router, SiteState

__all__ = [
    "EU_MEMBER_STATES",
    "NETWORK_PRESETS",
    "Network",
    "Routed",
    "Router",
    "SiteSpec",
    "SiteState",
    "load_network",
    "network_from_table",
    "network_from_toml",
    "network_preset",
]
