"""The README's quick twin cases give exactly their recorded summaries (`bench/golden/*.json`).

A change to the engine, a policy or the twin that alters any scheduling decision changes some figure here. The
slow cases (the 100k-GPU month, whole Philly replays) are checked by `python bench/golden.py --check`.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _golden() -> ModuleType:
    spec = importlib.util.spec_from_file_location("golden", BENCH / "golden.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["golden"] = module
    spec.loader.exec_module(module)
    return module


golden = _golden()
QUICK = [name for name, (_, quick) in golden.CASES.items() if quick]


@pytest.mark.parametrize("name", QUICK)
def test_a_quick_case_gives_its_golden_summary(name: str) -> None:
    if not golden.available(name):
        pytest.skip(f"no data at {golden.DATA}")
    recorded = json.loads((golden.GOLDEN / f"{name}.json").read_text())
    now = json.loads(json.dumps(golden.run_case(name)))
    assert golden.diff(recorded, now) == []


def test_the_diff_names_what_changed() -> None:
    old = {"a": 1, "t": {"x": [1, 2]}, "gone": 0}
    new = {"a": 2, "t": {"x": [1, 3]}, "new": 5}
    assert golden.diff(old, new) == ["a: 1 -> 2", "gone: removed (was 0)", "new: added (5)", "t.x.1: 2 -> 3"]
