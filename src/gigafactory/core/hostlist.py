"""Slurm's hostlist notation: many node names written as one short string, and back.

Vocabulary: a *name* is split into text and numeric *fields* (runs of digits): ``r0415-n17`` is the text ``r``,
the field ``0415``, the text ``-n`` and the field ``17``. A *hostlist* is a comma-separated list of *patterns*;
in a pattern, ``[lo-hi,k,...]`` stands for each of those numbers, written with as many digits as ``lo`` has
(``n[00-17]`` is ``n00`` … ``n17``; ``n[9-10]`` is ``n9, n10``). Several brackets in one pattern are a product:
``r[0000-0415]-n[00-17]`` is 416 × 18 names.

Invariants: ``expand(compress(names))`` holds each distinct name exactly once (in the notation's order, which for
names of one shape is sorted); ``compress`` is deterministic (it never depends on the order it is given names);
``expand`` refuses, before building anything, a name longer than ``MAX_NAME`` characters and a string that stands
for more than ``limit`` names, so neither ``n[0-999999999999]`` nor four kilobytes of prefix before a range costs
anything. Names that hold ``,``, ``[`` or ``]`` cannot be written in the notation.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["MAX_EXPANSION", "MAX_NAME", "compress", "expand"]

MAX_EXPANSION = 1_000_000  # names; a 100k-GPU GB200 site has 25,002
MAX_NAME = 255  # characters in one name (a host name has at most 253): what a short hostlist may not blow up into
_SPECIAL = re.compile(r"[,\[\]\s]")
_DIGITS = re.compile(r"([0-9]+)")

# A name's shape: its texts and the width of each numeric field. Names of one shape can share brackets.
_Shape = tuple[tuple[str, ...], tuple[int, ...]]


def compress(names: Iterable[str]) -> str:
    """The shortest-ish hostlist for ``names`` (duplicates dropped): names of one shape (same texts, same number
    of digits in each field) are written as products of ranges, trailing fields first; anything else as itself."""
    shapes: dict[_Shape, set[tuple[int, ...]]] = {}
    for name in set(names):
        if not name:
            raise ValueError("an empty node name cannot be written in hostlist notation")
        if _SPECIAL.search(name):
            raise ValueError(
                f"node name {name!r} holds a comma, a bracket or a space: hostlist notation cannot hold it"
            )
        parts = _DIGITS.split(name)
        texts, fields = tuple(parts[0::2]), parts[1::2]
        shape = (texts, tuple(len(f) for f in fields))
        shapes.setdefault(shape, set()).add(tuple(int(f) for f in fields))
    out: list[str] = []
    for (texts, widths), values in sorted(shapes.items()):
        for combo in _products(sorted(values), len(widths)):
            out.append(_write(texts, widths, combo))
    return ",".join(out)


def _products(values: list[tuple[int, ...]], k: int) -> list[list[list[int]]]:
    """``values`` (tuples of ``k`` numbers) as a list of products: each a list of ``k`` sorted number lists whose
    product is a part of ``values``; together the parts are all of it, each tuple once."""
    if k == 0:
        return [[]]
    if k == 1:
        return [[sorted({v[0] for v in values})]]
    # Group by everything but the last field; heads that share the same set of last fields share one bracket.
    lasts: dict[tuple[int, ...], list[int]] = {}
    for v in values:
        lasts.setdefault(v[:-1], []).append(v[-1])
    by_tail: dict[tuple[int, ...], list[tuple[int, ...]]] = {}
    for head, nums in lasts.items():
        by_tail.setdefault(tuple(sorted(set(nums))), []).append(head)
    out = []
    for tail, heads in sorted(by_tail.items(), key=lambda kv: min(kv[1])):
        for combo in _products(sorted(heads), k - 1):
            out.append([*combo, list(tail)])
    return out


def _write(texts: tuple[str, ...], widths: tuple[int, ...], combo: list[list[int]]) -> str:
    parts = [texts[0]]
    for width, nums, text in zip(widths, combo, texts[1:], strict=True):
        parts.append(_ranges(nums, width))
        parts.append(text)
    return "".join(parts)


def _ranges(nums: list[int], width: int) -> str:
    if len(nums) == 1:
        return str(nums[0]).zfill(width)
    runs: list[str] = []
    start = prev = nums[0]
    for n in [*nums[1:], None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        lo, hi = str(start).zfill(width), str(prev).zfill(width)
        runs.append(lo if start == prev else f"{lo}-{hi}")
        if n is not None:
            start = prev = n
    return "[" + ",".join(runs) + "]"


def expand(hostlist: str, limit: int = MAX_EXPANSION) -> list[str]:
    """The names a hostlist stands for, in its order. Raises ``ValueError`` saying what is wrong and at which
    character (counted from 1), or that it stands for more than ``limit`` names."""
    text = hostlist.strip()
    if not text:
        raise ValueError("an empty hostlist names no node")
    patterns = _split_top(text)
    parsed = [(start, _parse_pattern(p, start)) for start, p in patterns]
    total = 0
    for start, pattern in parsed:
        count = 1
        longest = 0
        for piece in pattern:
            if isinstance(piece, list):
                count *= sum(hi - lo + 1 for lo, hi, _ in piece)
                longest += max(max(w, len(str(hi))) for lo, hi, w in piece)
            else:
                longest += len(piece)
        if longest > MAX_NAME:
            raise ValueError(f"character {start + 1}: a name of more than {MAX_NAME} characters")
        total += count
        if total > limit:
            raise ValueError(f"the hostlist stands for more than {limit:,} names")
    out: list[str] = []
    for _, pattern in parsed:
        names = [""]
        for piece in pattern:
            if isinstance(piece, str):
                names = [n + piece for n in names]
            else:
                nums = [str(x).zfill(w) for lo, hi, w in piece for x in range(lo, hi + 1)]
                names = [n + x for n in names for x in nums]
        out.extend(names)
    return out


def _split_top(text: str) -> list[tuple[int, str]]:
    """The patterns between commas outside brackets, each with its position (from 0) in ``text``."""
    out: list[tuple[int, str]] = []
    depth, start = 0, 0
    for i, ch in enumerate(text):
        if ch == "[":
            if depth:
                raise ValueError(f"character {i + 1}: a '[' inside brackets (brackets do not nest)")
            depth = 1
        elif ch == "]":
            if not depth:
                raise ValueError(f"character {i + 1}: a ']' with no '[' before it")
            depth = 0
        elif ch == "," and not depth:
            out.append((start, text[start:i]))
            start = i + 1
        elif ch.isspace():
            raise ValueError(f"character {i + 1}: a space (separate names with commas)")
    if depth:
        raise ValueError(f"character {text.rindex('[') + 1}: a '[' that is never closed")
    out.append((start, text[start:]))
    for pos, p in out:
        if not p:
            raise ValueError(f"character {pos + 1}: an empty name (two commas, or one at an end)")
    return out


_RANGE = re.compile(r"([0-9]+)(?:-([0-9]+))?")


def _parse_pattern(p: str, offset: int) -> list[str | list[tuple[int, int, int]]]:
    """Text pieces and bracket pieces (lists of (lo, hi, width))."""
    pieces: list[str | list[tuple[int, int, int]]] = []
    i = 0
    while i < len(p):
        j = p.find("[", i)
        if j < 0:
            pieces.append(p[i:])
            break
        if j > i:
            pieces.append(p[i:j])
        close = p.index("]", j)
        body, at = p[j + 1 : close], offset + j + 2
        if not body:
            raise ValueError(f"character {at - 1}: empty brackets '[]'")
        ranges = []
        pos = at
        for item in body.split(","):
            m = _RANGE.fullmatch(item)
            if m is None:
                raise ValueError(f"character {pos}: {item!r} is not a number or a range lo-hi of numbers")
            lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
            if hi < lo:
                raise ValueError(f"character {pos}: the range {item!r} runs backwards")
            ranges.append((lo, hi, len(m.group(1))))
            pos += len(item) + 1
        pieces.append(ranges)
        i = close + 1
    return pieces
