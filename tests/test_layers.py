"""The architecture holds: imports point downward, and the pure core does no I/O and reads no clock."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "gigafactory"

# Each layer may import only itself and the layers listed (DESIGN.md: cli → {twin, control} → engine → policy → core).
ALLOWED = {
    "core": {"core"},
    "policy": {"policy", "core"},
    "engine": {"engine", "policy", "core"},
    "report": {"report", "core"},  # charts and measures over recorded histories; fairness reads the tenant tree
    "twin": {"twin", "plan", "network", "engine", "policy", "core", "report"},
    "plan": {"plan", "network", "engine", "policy", "core"},  # the capacity planner: arithmetic over sites
    "desk": {"desk", "core"},  # the AI Act desk's rules: thresholds, compute, the risk classifier
    "network": {"network", "engine", "policy", "core"},
    # the live clock: it never needs the twin
    "control": {"control", "desk", "network", "engine", "policy", "core", "report"},
    "cli": {"cli", "twin", "control", "plan", "desk", "network", "engine", "policy", "core", "report"},
}
PURE = {"core", "policy", "engine", "network", "plan", "desk"}
IMPURE_MODULES = {"time", "datetime", "os", "io", "socket", "subprocess", "random", "pathlib", "shutil", "sqlite3"}


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
    return out


def _files() -> list[tuple[str, Path]]:
    return [(p.relative_to(SRC).parts[0], p) for p in SRC.rglob("*.py") if len(p.relative_to(SRC).parts) > 1]


@pytest.mark.parametrize(("layer", "path"), _files(), ids=lambda v: str(v))
def test_imports_point_downward(layer: str, path: Path) -> None:
    for name in _imports(path):
        parts = name.split(".")
        if parts[0] == "gigafactory" and len(parts) > 1 and parts[1] in ALLOWED:
            assert parts[1] in ALLOWED[layer], f"{path.relative_to(SRC)} imports {name}"


@pytest.mark.parametrize(("layer", "path"), [f for f in _files() if f[0] in PURE], ids=lambda v: str(v))
def test_pure_layers_do_no_io_and_read_no_clock(layer: str, path: Path) -> None:
    for name in _imports(path):
        assert name.split(".")[0] not in IMPURE_MODULES, f"{path.relative_to(SRC)} imports {name}"
    text = path.read_text()
    for forbidden in ("open(", "print(", "np.random.seed", "np.random.rand("):
        assert forbidden not in text, f"{path.relative_to(SRC)} uses {forbidden}"


def test_public_api_is_exactly_all() -> None:
    import gigafactory.core as core
    import gigafactory.engine as engine
    import gigafactory.plan as plan
    import gigafactory.policy as policy

    for module in (core, engine, policy, plan):
        for name in module.__all__:
            getattr(module, name)  # every exported name resolves (core loads its names on first use)
        public = {n for n in vars(module) if not n.startswith("_") and not isinstance(getattr(module, n), type(core))}
        public.discard("TYPE_CHECKING")
        assert public == set(module.__all__), module.__name__
