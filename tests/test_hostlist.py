"""Slurm hostlist notation: compress and expand are inverses, and bad strings say what and where."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gigafactory.core.hostlist import compress, expand
from gigafactory.core.presets import build_site


@pytest.mark.parametrize(
    ("names", "written"),
    [
        (["u00000", "u00001", "u00002", "u00003"], "u[00000-00003]"),
        (["n1", "n3", "n2", "n7"], "n[1-3,7]"),
        (["n9", "n10"], "n9,n10"),  # two widths: each keeps its own digits
        (["login", "gpu-a", "login"], "gpu-a,login"),  # no digits: as they are, once each
        (["r0001-n00", "r0001-n01", "r0002-n00", "r0002-n01"], "r[0001-0002]-n[00-01]"),
        (["r0-n0", "r0-n1", "r1-n0"], "r0-n[0-1],r1-n0"),
        (["x"], "x"),
        ([], ""),
    ],
)
def test_compress(names: list[str], written: str) -> None:
    assert compress(names) == written
    assert sorted(expand(written) if written else []) == sorted(set(names))


def test_a_100k_gpu_site_is_one_short_string() -> None:
    names = build_site("gb200-nvl72:racks=1389").node_names
    assert compress(names) == "r[0000-1388]-n[00-17]"
    assert compress(names[: 416 * 18]) == "r[0000-0415]-n[00-17]"
    assert expand("r[0000-1388]-n[00-17]") == list(names)
    # A job on 415 whole racks and a part of one more.
    part = names[: 415 * 18 + 4]
    assert compress(part) == "r[0000-0414]-n[00-17],r0415-n[00-03]"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "empty hostlist"),
        ("x" * 3985 + "[00000-25001]", "character 1: a name of more than 255 characters"),
        ("n[1-3", "character 2: a '[' that is never closed"),
        ("n1-3]", "character 5: a ']' with no '['"),
        ("n[[1]]", "character 3: a '[' inside brackets"),
        ("n[3-1]", "character 3: the range '3-1' runs backwards"),
        ("n[1,x]", "character 5: 'x' is not a number"),
        ("n[]", "character 2: empty brackets"),
        ("a,,b", "character 3: an empty name"),
        ("a b", "character 2: a space"),
        ("n[0-999999999999]", "more than 1,000,000 names"),
        ("r[0-9999]-n[0-9999]", "more than 1,000,000 names"),
    ],
)
def test_bad_hostlists_say_what_and_where(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=re.escape(says)):
        expand(text)


def test_expansion_is_capped_before_it_is_built() -> None:
    with pytest.raises(ValueError, match="more than 10 names"):
        expand("n[0-5],m[0-5]", limit=10)


@pytest.mark.parametrize("bad", ["a,b", "n[1]", "has space", ""])
def test_names_the_notation_cannot_hold_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match=r"node name|empty node name"):
        compress([bad])


_text = st.text(alphabet="abxyz-._", max_size=3)
_field = st.text(alphabet="0123456789", min_size=1, max_size=4)
_name = st.builds(lambda a, b, c, d, e: a + b + c + d + e, _text, _field, _text, st.one_of(_field, st.just("")), _text)


@given(st.lists(st.one_of(_name, st.text(alphabet="abc-", min_size=1, max_size=4)), max_size=60))
def test_expand_inverts_compress(names: list[str]) -> None:
    out = expand(compress(names)) if names else []
    assert sorted(out) == sorted(set(names))
    assert len(out) == len(set(out))


@given(st.lists(_name, max_size=40), st.randoms())
def test_compress_does_not_depend_on_order(names: list[str], rnd) -> None:
    shuffled = list(names)
    rnd.shuffle(shuffled)
    assert compress(names) == compress(shuffled)
