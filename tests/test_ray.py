"""The FGD grid on a real Ray cluster: a local head started by the test, driven through the CLI."""

from __future__ import annotations

import csv
import fcntl
import json
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("ray")

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A local Ray head for this module's tests. ``ray stop`` stops every Ray process on the host, so two heads
    (two xdist workers) would stop each other: a host-wide lock lets one exist at a time."""
    ray = shutil.which("ray", path=str(BIN)) or str(BIN / "ray")
    with (Path(tempfile.gettempdir()) / "gigafactory-tests-ray.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        port = _free_port()
        temp = tmp_path_factory.mktemp("ray")
        start = subprocess.run(
            [ray, "start", "--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
             "--disable-usage-stats", f"--temp-dir={temp}"],
            capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        if start.returncode != 0:
            pytest.fail(f"ray start failed: {start.stderr[-2000:]}")
        try:
            yield f"127.0.0.1:{port}"
        finally:
            subprocess.run([ray, "stop", "--force"], capture_output=True, timeout=120)


def _rows(path: Path) -> list[list[str]]:
    with path.open() as f:
        return list(csv.reader(f))


def test_grid_on_ray_matches_local_processes(ray_head: str, data_dir: Path, tmp_path: Path) -> None:
    openb = data_dir / "alibaba-openb"
    args = ["twin", "fgd", "--data", str(openb), "--workload", "cpu050", "--policy", "fgd-best-fit,dot-product",
            "--seeds", "1-2", "-q"]  # fmt: skip
    exe = str(BIN / "gigafactory")
    on_ray = subprocess.run(
        [exe, *args, "--out", str(tmp_path / "ray"), "--ray", ray_head], capture_output=True, text=True, timeout=600
    )
    assert on_ray.returncode == 0, on_ray.stderr[-3000:]
    local = subprocess.run(
        [exe, *args, "--out", str(tmp_path / "local"), "--jobs", "2"], capture_output=True, text=True, timeout=600
    )
    assert local.returncode == 0, local.stderr[-3000:]
    ray_rows = _rows(tmp_path / "ray" / "allocation.csv")
    assert len(ray_rows) == 5  # header + 2 policies × 2 seeds
    assert ray_rows == _rows(tmp_path / "local" / "allocation.csv")


def test_unreachable_ray_cluster_is_a_clear_error(data_dir: Path, tmp_path: Path) -> None:
    exe = str(BIN / "gigafactory")
    port = _free_port()
    result = subprocess.run(
        [exe, "twin", "fgd", "--data", str(data_dir / "alibaba-openb"), "--workload", "cpu050", "--policy",
         "fgd-best-fit", "--seeds", "1", "--out", str(tmp_path), "--ray", f"127.0.0.1:{port}"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2
    assert "cannot connect to the Ray cluster" in result.stderr


def test_twin_compare_on_ray_matches_local_processes(ray_head: str, tmp_path: Path) -> None:
    exe = str(BIN / "gigafactory")
    args = [exe, "twin", "compare", "--site", "hgx-h100:nodes=4", "--workload", "llm:load=1.2,tenants=2", "--days",
            "1", "--policy", "fifo+easy+topology", "--policy", "sjf+easy+topology", "--seeds", "1-2", "-q"]  # fmt: skip
    on_ray = subprocess.run([*args, "--out", str(tmp_path / "ray"), "--ray", ray_head], capture_output=True,
                            text=True, timeout=600)  # fmt: skip
    assert on_ray.returncode == 0, on_ray.stderr[-3000:]
    local = subprocess.run([*args, "--out", str(tmp_path / "local"), "--jobs", "2"], capture_output=True, text=True,
                           timeout=600)  # fmt: skip
    assert local.returncode == 0, local.stderr[-3000:]
    ray_table = json.loads((tmp_path / "ray" / "compare.json").read_text())["table"]
    assert ray_table == json.loads((tmp_path / "local" / "compare.json").read_text())["table"]
    assert set(ray_table) == {"fifo+easy+topology", "sjf+easy+topology"}
