"""Dates from Unix seconds by arithmetic alone: the pure layers import no ``datetime`` (it reads the clock)."""

from __future__ import annotations

__all__ = ["civil_from_days", "utc_date", "utc_minute"]


def civil_from_days(days: int) -> tuple[int, int, int]:
    """The proleptic Gregorian (year, month, day) ``days`` after 1970-01-01."""
    z = days + 719_468  # days since 0000-03-01
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (month <= 2), month, day


def utc_date(t: float) -> str:
    y, m, d = civil_from_days(int(t) // 86_400)
    return f"{y:04d}-{m:02d}-{d:02d}"


def utc_minute(t: float) -> str:
    rest = int(t) % 86_400
    return f"{utc_date(t)} {rest // 3600:02d}:{rest % 3600 // 60:02d} UTC"
