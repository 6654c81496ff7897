"""Reading CSV tables (plain or gzipped) with errors that name the file, the line and the column.

A reader declares the columns it needs and how to parse each; :func:`read_table` returns one list per column.
A malformed row raises :class:`~gigafactory.core.errors.TraceError`, or, with ``skip_bad_rows``, is counted in
``Table.skipped`` (with its first few reasons kept in ``Table.problems``) and left out.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gigafactory.core.errors import TraceError

__all__ = ["Table", "as_float", "as_int", "as_str", "read_table"]

Parser = Callable[[str], Any]


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None


def as_int(text: str) -> int:
    value = _number(text)  # traces write "8.0" for 8
    if not math.isfinite(value) or not value.is_integer():
        raise ValueError(f"{text!r} is not a whole number")
    return int(value)


def as_float(text: str) -> float:
    value = _number(text)
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    return value


def as_str(text: str) -> str:
    return text


@dataclass
class Table:
    path: str
    columns: dict[str, list[Any]]
    lines: list[int]  # the file line of each row kept (the header is line 1)
    skipped: int = 0
    problems: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.lines)


def _open(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def read_table(
    path: str | Path,
    required: Mapping[str, Parser],
    optional: Mapping[str, Parser] | None = None,
    *,
    allowed_extra: Sequence[str] = (),
    strict_columns: bool = True,
    skip_bad_rows: bool = False,
    validate: Callable[[dict[str, Any]], str | None] | None = None,
) -> Table:
    """Read ``path``; every ``required`` column must be present, ``optional`` ones may be.

    With ``strict_columns`` a column that is neither required, optional nor in ``allowed_extra`` is an error.
    ``validate`` sees each parsed row and returns a reason to refuse it, or ``None``.
    """
    path = Path(path)
    optional = optional or {}
    shown = str(path)
    try:
        handle = _open(path)
    except FileNotFoundError:
        where = (
            ""
            if path.parent.is_dir()
            else f" (nor its directory {path.parent}: is $DATA set? see the README's Data sets)"
        )
        raise TraceError(shown, "no such file" + where) from None
    except OSError as exc:
        raise TraceError(shown, f"cannot open: {exc.strerror}") from exc
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            raise TraceError(shown, "the file is empty; expected a header line", line=1) from None
        except (UnicodeDecodeError, csv.Error, OSError, EOFError) as exc:
            raise TraceError(shown, f"cannot read: {exc}", line=1) from exc
        header = [h.strip() for h in header]
        missing = [c for c in required if c not in header]
        if missing:
            raise TraceError(
                shown, f"missing column {missing[0]!r}; the header has {', '.join(header) or 'nothing'}", line=1
            )
        if strict_columns:
            known = set(required) | set(optional) | set(allowed_extra)
            unknown = [h for h in header if h not in known]
            if unknown:
                raise TraceError(
                    shown, f"unknown column {unknown[0]!r}; expected {', '.join(known_in_order(required, optional))}",
                    line=1,
                )  # fmt: skip
        parsers = {**required, **{k: v for k, v in optional.items() if k in header}}
        index = {name: header.index(name) for name in parsers}
        columns: dict[str, list[Any]] = {name: [] for name in parsers}
        lines: list[int] = []
        table = Table(shown, columns, lines)
        line = 1
        try:
            for row in reader:
                line += 1
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                parsed, problem = _parse_row(row, header, parsers, index, validate)
                if problem is not None:
                    column, message = problem
                    if not skip_bad_rows:
                        raise TraceError(shown, message, line=line, column=column)
                    table.skipped += 1
                    if len(table.problems) < 5:
                        where = f"line {line}" + (f", column {column!r}" if column else "")
                        table.problems.append(f"{where}: {message}")
                    continue
                for name, value in parsed.items():
                    columns[name].append(value)
                lines.append(line)
        except (UnicodeDecodeError, csv.Error, OSError, EOFError) as exc:
            raise TraceError(shown, f"cannot read: {exc}", line=line) from exc
    return table


def known_in_order(required: Mapping[str, Parser], optional: Mapping[str, Parser]) -> list[str]:
    return [*required, *optional]


def _parse_row(
    row: list[str],
    header: list[str],
    parsers: Mapping[str, Parser],
    index: Mapping[str, int],
    validate: Callable[[dict[str, Any]], str | None] | None,
) -> tuple[dict[str, Any], tuple[str | None, str] | None]:
    if len(row) != len(header):
        return {}, (None, f"has {len(row)} fields; the header has {len(header)}")
    parsed: dict[str, Any] = {}
    for name, parse in parsers.items():
        text = row[index[name]].strip()
        try:
            parsed[name] = parse(text)
        except (ValueError, TypeError) as exc:
            return {}, (name, str(exc) or f"{text!r} is not valid")
    if validate is not None:
        problem = validate(parsed)
        if problem is not None:
            return {}, (None, problem)
    return parsed, None
