"""Colours the dashboard gives tenants: the same tenant has the same colour on every page and every chart, because
its colour is a hash of its name (CRC-32, not Python's salted ``hash``) into one palette."""

from __future__ import annotations

import zlib

__all__ = ["OTHER", "PALETTE", "tenant_colour"]

# Okabe–Ito's colour-blind-safe eight, then eight more of Tableau's, darkened enough to read on white and black.
PALETTE = (
    "#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#b8a200", "#7f5fbf",
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#b07aa1", "#9c755f", "#ff9da7",
)  # fmt: skip
OTHER = "#9aa5b1"  # another tenant's, to a tenant: one grey for all of them


def tenant_colour(name: str) -> str:
    return PALETTE[zlib.crc32(name.encode()) % len(PALETTE)]
