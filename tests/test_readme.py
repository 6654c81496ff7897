"""The README holds: every file it names is in the repository, it links nothing outside it, and its example
files run."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
PREFIXES = ("examples/", "docs/", "scripts/", "bench/", "src/", "tests/", ".ci/")


def test_every_file_the_readme_names_exists() -> None:
    named = {m for m in re.findall(r"[\w./-]+", README) if m.startswith(PREFIXES) and not m.endswith("/")}
    named = {n.rstrip(".,:;)") for n in named}
    assert named, "the README names no files?"
    missing = sorted(n for n in named if not (REPO / n).exists() and "*" not in n)
    assert missing == []


def test_the_readme_links_nothing_outside_the_repository() -> None:
    for target in re.findall(r"\]\(([^)]+)\)", README):
        assert not target.startswith(("http", "../", "/")), target
        assert (REPO / target).exists(), target
    assert "../shared" not in README.replace("`../shared/data` beside the checkout", "")
    assert not re.search(r"https?://(?!127\.0\.0\.1)", README)


def test_the_example_files_run(tmp_path: Path) -> None:
    gf = [sys.executable, "-m", "gigafactory", "twin", "run", "-q", "--days", "0.2"]
    for extra in (["--config", "examples/experiment.toml", "--seed", "1"],
                  ["--site", "hgx-h100:nodes=64", "--workload", "llm:tenants=3", "--tenants",
                   "examples/tenants.toml", "--policy", "fair-share+quota+reclaim+easy+best-fit"]):  # fmt: skip
        r = subprocess.run([*gf, *extra, "--out", str(tmp_path / extra[1].replace("/", "_"))], cwd=REPO,
                           capture_output=True, text=True, timeout=300)  # fmt: skip
        assert r.returncode == 0, r.stderr
