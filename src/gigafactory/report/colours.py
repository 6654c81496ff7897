"""Tenants' colours: the same tenant has the same colour on every dashboard page, every chart and every twin report,
because its colour is a hash of its name (CRC-32, not Python's salted ``hash``) into one palette."""

from __future__ import annotations

import zlib

__all__ = ["OTHER", "PALETTE", "tenant_colour"]

# Twelve hues that stay apart from each other, on white and on black (Okabe–Ito's colour-blind-safe ones first, then
# four of Tableau's); no two blues or greens close enough to be taken for one another.
PALETTE = (
    "#0072b2", "#e69f00", "#009e73", "#cc79a7", "#d55e00", "#7f5fbf",
    "#56b4e9", "#b8a200", "#8c564b", "#e15759", "#17becf", "#59a14f",
)  # fmt: skip
OTHER = "#9aa5b1"  # another tenant's, to a tenant: one grey for all of them


def tenant_colour(name: str) -> str:
    return PALETTE[zlib.crc32(name.encode()) % len(PALETTE)]
