"""The compiled engine: which modules are compiled, and whether the compiled build may be used.

The scheduling core (the engine, the capacity model, the hot policies and the twin's loop) can be compiled with
mypyc from its own, unchanged Python source (``make native``, part of the README's set-up; ``scripts/
build_native.py``). The compiled modules sit beside their sources as extension modules, which Python's import
system prefers. Nothing else changes: same code, same results, about 1.5 times faster (bench/philly_speed.py).

A compiled build is used only when it was built from exactly the source now on disk: the build writes the hash
of every compiled module's source to a manifest, and :func:`install` (run when ``gigafactory`` is imported,
before any compiled module can be) compares them. If any source changed since, or the manifest is missing, or
``GIGAFACTORY_PURE=1`` is set, every listed module is imported from its source instead, all or none, because the
compiled modules call each other directly and a mix would run old code behind new. A stale build says so once on
stderr; :data:`state` says which is in use.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType

__all__ = ["GROUP", "MODULES", "install", "source_hashes", "state", "verdict"]

PACKAGE_DIR = Path(__file__).resolve().parent
MANIFEST = PACKAGE_DIR / "_native.json"
GROUP = "gigafactory_native"  # mypyc's shared library is the top-level module GROUP + "__mypyc"

# What a twin run or a pass spends its time in: the engine and its policies (pure), and the twin's loop, its
# metrics and its jobs, and reading a trace (row by row).
MODULES = (
    "gigafactory.core.actions",
    "gigafactory.core.agenda",
    "gigafactory.core.capacity",
    "gigafactory.core.events",
    "gigafactory.core.jobs",
    "gigafactory.core.placement",
    "gigafactory.core.progress",
    "gigafactory.engine.allocs",
    "gigafactory.engine.engine",
    "gigafactory.engine.memo",
    "gigafactory.engine.planner",
    "gigafactory.engine.queue",
    "gigafactory.engine.usage",
    "gigafactory.policy.backfill.easy",
    "gigafactory.policy.backfill.greedy",
    "gigafactory.policy.backfill.none",
    "gigafactory.policy.order.fair_share",
    "gigafactory.policy.order.fifo",
    "gigafactory.policy.order.las",
    "gigafactory.policy.order.priority",
    "gigafactory.policy.order.sjf",
    "gigafactory.policy.admit.admit_all",
    "gigafactory.policy.place.best_fit",
    "gigafactory.policy.place.common",
    "gigafactory.policy.place.dot_product",
    "gigafactory.policy.place.fgd",
    "gigafactory.policy.place.fgd_best_fit",
    "gigafactory.policy.place.fgd_joint",
    "gigafactory.policy.place.fgd_multiples",
    "gigafactory.policy.place.fgd_outlook",
    "gigafactory.policy.place.fgd_scarcity",
    "gigafactory.policy.place.first_fit",
    "gigafactory.policy.place.fragmentation",
    "gigafactory.policy.place.gpu_clustering",
    "gigafactory.policy.place.gpu_packing",
    "gigafactory.policy.place.packing",
    "gigafactory.policy.place.random",
    "gigafactory.policy.place.scored",
    "gigafactory.policy.place.topology",
    "gigafactory.policy.preempt.lower_rank",
    "gigafactory.policy.preempt.no_preempt",
    "gigafactory.twin.attempts",
    "gigafactory.twin.metrics",
    "gigafactory.twin.sim",
    "gigafactory.twin.traces.table",
    "gigafactory.twin.workload",
    "gigafactory.twin.workloads.philly",
)

state = "pure: not built"


def source_of(module: str) -> Path:
    return PACKAGE_DIR.parent.joinpath(*module.split(".")).with_suffix(".py")


def source_hashes() -> dict[str, str]:
    return {m: hashlib.sha256(source_of(m).read_bytes()).hexdigest() for m in MODULES}


def _built() -> bool:
    """Whether any compiled module lies beside the sources (a build, finished or not)."""
    suffixes = importlib.machinery.EXTENSION_SUFFIXES
    return any(source_of(m).with_suffix(s).exists() for m in MODULES for s in suffixes)


class _FromSource:
    """Imports the listed modules from their ``.py`` files, passing over the extension modules beside them (a
    meta-path finder; not derived from ``importlib.abc.MetaPathFinder``, whose import costs 16 ms at every start)."""

    def find_spec(
        self, fullname: str, path: object = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MODULES:
            return None
        return importlib.util.spec_from_file_location(fullname, source_of(fullname))


def verdict(pure_asked: bool, built: bool, manifest: dict[str, str] | None, now: dict[str, str]) -> str:
    """Which engine to use: "compiled", or "pure: <why>" (the all-or-none rule of this module's docstring)."""
    if pure_asked:
        return "pure: GIGAFACTORY_PURE is set"
    if not built:
        return "pure: not built (make native)"
    changed = sorted(m for m in now if (manifest or {}).get(m) != now[m])
    if not changed:
        return "compiled"
    first = changed[0].rsplit(".", 1)[-1] + ".py"
    return f"pure: the compiled build is older than {first}" + (f" and {len(changed) - 1} more" if changed[1:] else "")


def install() -> str:
    """Decide, once per process, whether the compiled modules are used; return (and keep in :data:`state`) why."""
    global state
    if any(isinstance(f, _FromSource) for f in sys.meta_path) or any(m in sys.modules for m in MODULES):
        return state
    pure_asked = os.environ.get("GIGAFACTORY_PURE", "") not in ("", "0")
    built = not pure_asked and _built()
    manifest: dict[str, str] | None = None
    if built:
        try:
            manifest = json.loads(MANIFEST.read_text())["sources"]
        except (OSError, ValueError, KeyError, TypeError):
            manifest = None
    state = verdict(pure_asked, built, manifest, source_hashes() if built else {})
    if state == "compiled":
        return state
    if state.startswith("pure: the compiled build is older"):
        print(
            f"gigafactory: the compiled engine is older than its source ({state.split('older than ', 1)[1]}); "
            "running the pure-Python engine, which is slower. `make native` rebuilds it.",
            file=sys.stderr,
        )
    sys.meta_path.insert(0, _FromSource())
    return state
