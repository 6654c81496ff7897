"""The compiled engine (gigafactory._native): used only when current, and the same as the pure one, to the figure."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gigafactory import _native

COMPILED = _native.state == "compiled"
# Profiles that reach every compiled policy family: preemption (LAS), fair-share with topology placement, FGD
# placement of GPU shares, backfill with reservations, with and without a failure model.
RUNS = [
    ("hgx-h100:nodes=8", "llm:load=1.2,tenants=3", "las:queues=2+greedy+preempt+best-fit", "rsc1"),
    ("hgx-h100:nodes=8", "llm:load=1.0,tenants=3", "fair-share+easy+topology", "none"),
    ("hgx-h100:nodes=8", "llm:load=1.0,tenants=2", "sjf+easy+fgd-joint", "none"),
    ("hgx-h100:nodes=8", "llm:load=0.9,tenants=2", "priority+easy+first-fit", "llama3"),
]
SNIPPET = """
import json, sys
from gigafactory import _native
from gigafactory.twin.experiment import Experiment, run_one
out = {"state": _native.state, "file": __import__("gigafactory.engine.engine", fromlist=["x"]).__file__, "runs": []}
for site, workload, policy, failures in json.loads(sys.argv[1]):
    s = run_one(Experiment(site=site, workload=workload, policy=policy, days=2, failures=failures), 7).summary
    out["runs"].append({k: v for k, v in s.items() if k not in ("wall_s", "events_per_s")})
print(json.dumps(out, sort_keys=True, default=str))
"""


def _run(pure: bool) -> dict[str, object]:
    env = {**os.environ, "GIGAFACTORY_PURE": "1" if pure else ""}
    done = subprocess.run(
        [sys.executable, "-c", SNIPPET, json.dumps(RUNS)], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_the_build_is_used_where_it_must_be() -> None:
    """CI builds the engine (make test does) and sets GIGAFACTORY_REQUIRE_NATIVE: a build that silently fell back
    to pure Python would make every speed figure wrong."""
    if os.environ.get("GIGAFACTORY_REQUIRE_NATIVE") != "1" and not COMPILED:
        pytest.skip(f"the engine is not compiled here ({_native.state})")
    assert _native.state == "compiled"
    import gigafactory.engine.engine as engine

    assert not engine.__file__.endswith(".py"), engine.__file__


@pytest.mark.skipif(not COMPILED, reason=f"the engine is not compiled here ({_native.state})")
def test_the_compiled_and_the_pure_engine_give_the_same_results() -> None:
    compiled, pure = _run(pure=False), _run(pure=True)
    assert compiled["state"] == "compiled" and str(compiled["file"]).endswith(".so")
    assert pure["state"] == "pure: GIGAFACTORY_PURE is set" and str(pure["file"]).endswith(".py")
    assert compiled["runs"] == pure["runs"]
    runs = compiled["runs"]
    assert isinstance(runs, list) and all(r["completed"] > 0 for r in runs) and runs[0]["preemptions"] > 0


def test_a_build_is_used_only_while_every_compiled_source_is_unchanged() -> None:
    now = {"a.x": "1", "a.y": "2"}
    assert _native.verdict(False, True, dict(now), now) == "compiled"
    assert _native.verdict(True, True, dict(now), now) == "pure: GIGAFACTORY_PURE is set"
    assert _native.verdict(False, False, None, {}) == "pure: not built (make native)"
    assert _native.verdict(False, True, {"a.x": "1", "a.y": "0"}, now) == "pure: the compiled build is older than y.py"
    assert _native.verdict(False, True, None, now) == "pure: the compiled build is older than x.py and 1 more"
    assert _native.verdict(False, True, {"a.x": "1"}, now).startswith("pure: the compiled build is older than y.py")


def test_a_stale_build_says_so_and_runs_the_source(tmp_path: Path) -> None:
    """A build older than its source is passed over, all of it, and the user is told why it is slower."""
    if not COMPILED:
        pytest.skip(f"the engine is not compiled here ({_native.state})")
    src = _native.PACKAGE_DIR.parent
    copy = tmp_path / "src"
    shutil.copytree(src / "gigafactory", copy / "gigafactory", ignore=shutil.ignore_patterns("__pycache__"))
    for lib in src.glob(_native.GROUP + "__mypyc*"):
        shutil.copy2(lib, copy / lib.name)
    code = "import json, gigafactory._native as n, gigafactory.engine.engine as e; print(json.dumps([n.state, e.__file__]))"  # noqa: E501

    def run() -> tuple[str, str, str]:
        env = {**os.environ, "GIGAFACTORY_PURE": "", "PYTHONPATH": str(copy)}
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        state, file = json.loads(done.stdout)
        return state, file, done.stderr

    state, file, _ = run()
    assert state == "compiled" and file.startswith(str(copy)) and not file.endswith(".py")
    queue = copy / "gigafactory" / "engine" / "queue.py"
    queue.write_text(queue.read_text() + "\n# an edit after the build\n")
    state, file, said = run()
    assert state == "pure: the compiled build is older than queue.py"
    assert file == str(copy / "gigafactory" / "engine" / "engine.py")  # not only the edited module: all of them
    assert "older than its source (queue.py)" in said and "make native" in said
