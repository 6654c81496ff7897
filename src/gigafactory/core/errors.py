"""The one exception tree of gigafactory.

Expected outcomes (a job does not fit, a tenant is over quota) are :class:`~gigafactory.core.status.Status`
values, never exceptions. Exceptions are for bad input at the edges, broken infrastructure and bugs::

    GigafactoryError                  root: ``except GigafactoryError`` catches everything of ours
    ├── UserError                     bad input from a person; the CLI prints its message, no traceback
    │   ├── ConfigError               a setting, spec string, profile or experiment file is wrong
    │   │   └── UnknownNameError      a name that no registry or preset knows; lists the known ones
    │   ├── RequestError              a job request is impossible on its face (zero GPUs, 1.5 GPUs, ...)
    │   └── TraceError                a trace or data file is malformed; names file, line and column
    └── InvariantError                the engine's state broke an invariant: always a bug

Lower-level errors (``ValueError`` from a parser, ``OSError`` from a file) are translated at the boundary with
``raise ... from exc`` so the cause stays visible to developers while users see one clear line.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "ConfigError",
    "GigafactoryError",
    "InvariantError",
    "RequestError",
    "TraceError",
    "UnknownNameError",
    "UserError",
]


class GigafactoryError(Exception):
    """Root of every exception raised by gigafactory."""


class UserError(GigafactoryError):
    """Bad input from a person. The message is one line that says what was wrong and what is allowed."""


class ConfigError(UserError):
    """A setting, spec string, policy profile or experiment file is wrong."""


class UnknownNameError(ConfigError):
    """A name that no registry or preset knows."""

    def __init__(self, kind: str, name: str, known: Iterable[str]) -> None:
        self.kind = kind
        self.name = name
        self.known = tuple(sorted(known))
        super().__init__(f"unknown {kind} {name!r}; known: {', '.join(self.known) or '(none)'}")


class RequestError(UserError):
    """A job request that can never be valid, whatever the site (zero GPUs, a fractional multi-GPU request)."""


class TraceError(UserError):
    """A malformed trace or data file. The message names the file, the line and, where known, the column."""

    def __init__(self, path: str, message: str, *, line: int | None = None, column: str | None = None) -> None:
        self.path = path
        self.line = line
        self.column = column
        where = [path]
        if line is not None:
            where.append(f"line {line}")
        if column is not None:
            where.append(f"column {column!r}")
        super().__init__(f"{', '.join(where)}: {message}")


class InvariantError(GigafactoryError):
    """The engine's state broke one of its invariants. This is always a bug in gigafactory."""
