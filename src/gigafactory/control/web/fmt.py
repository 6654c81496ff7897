"""How the dashboard writes times, durations and GPU counts in a page's cells."""

from __future__ import annotations

import datetime as dt
import math

__all__ = ["cut", "gpus_text", "pct", "span", "when", "when_short"]


def when(t: float | None, now: float) -> str:
    if t is None or not math.isfinite(t):
        return "—"
    delta = t - now
    stamp = dt.datetime.fromtimestamp(t).strftime("%H:%M:%S")
    if abs(delta) >= 86400:
        stamp = dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M")
    if abs(delta) < 1:
        return f"{stamp} (now)"
    took = span(abs(delta))
    return f"{stamp} (in {took})" if delta > 0 else f"{stamp} ({took} ago)"


def when_short(t: float | None, now: float) -> str:
    """A time for a table cell: today's as a clock time and how long ago, older ones as a date and a time."""
    if t is None or not math.isfinite(t):
        return "—"
    if abs(t - now) < 86400:
        return when(t, now)
    return dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M")


def span(s: float) -> str:
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    if s < 2 * 86400:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} d"


def gpus_text(used: float) -> str:
    """GPUs in use as a number that reads like the percentage beside it (no 29.999999 or 30.0)."""
    return f"{used:,.0f}" if abs(used - round(used)) < 0.005 else f"{used:,.2f}"


def pct(used: float, total: int) -> str:
    return f"{100 * used / total:.0f}%" if total else "—"


def cut(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
