"""The suite on a machine without Slurm, PostgreSQL or Chromium: those tests skip, each saying why, and the rest
pass. (`.ci/run` installs all three and sets GIGAFACTORY_REQUIRE_*, so there they must run instead.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_without_slurm_postgresql_or_chromium_the_suite_skips_and_says_why(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIGAFACTORY_REQUIRE")}
    env.update(
        PATH=str(tmp_path),  # no slurmctld, munged or chromium on it
        GIGAFACTORY_PG_URL="postgresql+psycopg://gf:gf@127.0.0.1:9/nowhere",
        GIGAFACTORY_CHROMIUM=str(tmp_path / "no-chromium"),
        SLURM_CONF="",
        GIGAFACTORY_SBIN="",
    )
    tests = ["tests/control/test_slurm.py", "tests/control/test_browser.py",
             "tests/control/test_store.py::test_migrations_build_exactly_the_schema"]  # fmt: skip
    r = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "0", *tests],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    out = r.stdout
    assert "SKIPPED" in out  # -rs is on by default: every skip is listed with its reason
    assert "Slurm is not installed (Debian: slurmctld slurmd slurm-client munge)" in out
    assert "no Chromium (Debian: apt-get install chromium)" in out
    assert "no PostgreSQL at postgresql+psycopg://gf:gf@127.0.0.1:9/nowhere" in out
    assert "1 passed" in out  # the SQLite half of the store test ran
