"""Checkpoints and progress in closed form, the failure model, and the published failure figures (B5)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from gigafactory.core import ConfigError, build_site
from gigafactory.core.progress import Checkpointing, attempt_wall, daly_interval, progress_at, young_interval
from gigafactory.twin import Simulation, load_workload
from gigafactory.twin.failures import LLAMA3, load_failures


def test_attempt_wall_counts_restart_and_checkpoint_writes() -> None:
    ck = Checkpointing(interval_s=100, write_s=10, restart_s=30)
    assert attempt_wall(250, ck) == 30 + 250 + 2 * 10  # checkpoints at 100 and 200 of work
    assert attempt_wall(200, ck) == 30 + 200 + 1 * 10  # none at the very end
    assert attempt_wall(50, Checkpointing()) == 50


@pytest.mark.parametrize(
    ("elapsed", "work", "saved", "ckpt"),
    [
        (20, 0, 0, 0),  # still restarting
        (80, 50, 0, 0),  # working, nothing saved yet
        (135, 100, 0, 5),  # writing the first checkpoint: its work is not saved yet
        (140, 100, 100, 10),  # the write is done
        (200, 160, 100, 10),
        (10_000, 250, 250, 20),  # long since finished
    ],
)
def test_progress_at(elapsed: float, work: float, saved: float, ckpt: float) -> None:
    p = progress_at(elapsed, 250, Checkpointing(interval_s=100, write_s=10, restart_s=30))
    assert (p.work_s, p.saved_s, p.checkpoint_s) == (work, saved, ckpt)
    assert p.unsaved_s == work - saved


def test_young_and_daly() -> None:
    assert young_interval(60, 3600) == pytest.approx(math.sqrt(2 * 60 * 3600))
    d = daly_interval(60, 3600)
    assert young_interval(60, 3600) - 60 < d < young_interval(60, 3600) * 1.1
    assert daly_interval(10_000, 3600) == 3600  # write time beyond 2M: checkpoint every M
    assert daly_interval(60, math.inf) == math.inf


def test_failure_presets_and_specs() -> None:
    assert sum(c.per_gpu_hour for c in LLAMA3.classes) == pytest.approx(419 / (16_384 * 54 * 24))
    model = load_failures("llama3:rack_per_day=0.01,rack_repair_h=8-24,spares=2")
    assert model.domain is not None and model.domain.repair_h == (8.0, 24.0)
    assert model.spares_per_pod == 2
    with pytest.raises(ConfigError, match="unknown failure model 'nope'"):
        load_failures("nope")
    with pytest.raises(ConfigError, match="unknown parameter 'rack'"):
        load_failures("rsc1:rack=1")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[class]]\nname = "gpu"\nper_gpu_hour = -1\n', "per_gpu_hour = -1 must be a number of at least 0"),
        ("[[class]]\nrepair_h = [5, 1]\n", "must be [low, high] hours"),
        ('spares_per_pod = "two"\n', "spares_per_pod = 'two' must be a whole number"),
        ("colour = 1\n", "unknown key 'colour'"),
        ("[[class]\n", "not valid TOML"),
    ],
)
def test_bad_failure_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "f.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_failures(str(path))


def test_failure_file(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text('name = "mine"\nspares_per_pod = 1\n[[class]]\nname = "node"\nper_node_day = 0.5\nrepair_h = 2\n')
    model = load_failures(str(path))
    assert model.name == "mine" and model.spares_per_pod == 1
    assert model.classes[0].per_node_day == 0.5


def _single(site: str, workload: str, failures: str, seed: int, horizon_days: float | None = None) -> dict:
    topo = build_site(site)
    wl, _ = load_workload(workload, topo, days=1, seed=seed)
    sim = Simulation(topo, wl, "fifo+none+topology", seed=seed, failures=load_failures(failures), keep_log=False,
                     horizon_s=None if horizon_days is None else horizon_days * 86_400, validate=False)  # fmt: skip
    return sim.run().summary


def test_llama3_interruptions_within_15_percent() -> None:
    """A 54-day job on 16,384 H100s under the llama3 model: 419 interruptions ± 15% (3 seeds here, 10 in bench)."""
    counts = [
        _single("hgx-h100:nodes=2176,pod_nodes=32", "single:gpus=16384,hours=5000", "llama3", s, 54)["interruptions"]
        for s in range(3)
    ]
    assert abs(np.mean(counts) / 419 - 1) <= 0.15


def test_rsc1_job_mttf_at_16k_gpus() -> None:
    runs = [_single("hgx-h100:nodes=2176,pod_nodes=32", "single:gpus=16384,hours=100000", "rsc1", s, 40)
            for s in range(2)]  # fmt: skip
    mtbi = sum(r["mtbi_h"] * r["interruptions"] for r in runs) / sum(r["interruptions"] for r in runs)
    assert abs(mtbi / 1.8 - 1) <= 0.10


def test_ettr_matches_the_closed_form_without_rack_failures() -> None:
    nodes, ck_min, w, u0 = 512, 60, 60.0, 300.0
    wl = f"single:gpus={nodes * 8},hours=1500,ckpt={ck_min},write_s={w},restart_s={u0}"
    sims = [_single("hgx-h100:nodes=544,pod_nodes=32", wl, "rsc1", s)["ettr"] for s in range(2)]
    r = 6.5 / 1000 / 86_400
    dt = ck_min * 60
    model = (1 - nodes * r * (u0 + dt / 2)) / (1 + w / dt)
    assert abs(np.mean(sims) - model) <= 0.02


def test_hot_spares_keep_a_full_site_job_running() -> None:
    # 16 nodes, one spare per pod of 8: the job of 14 nodes restarts at once after each failure.
    site = "hgx-h100:nodes=16,pod_nodes=8"
    wl = "single:gpus=112,hours=500,ckpt=60,write_s=30,restart_s=60"
    with_spares = _single(site, wl, "rsc1:spares=1", 1)
    assert with_spares["interruptions"] > 0
    assert with_spares["ettr"] > 0.9
    # Without spares a 16-node job waits for every repair (4 h on average): its ETTR falls.
    without = _single(site, "single:gpus=128,hours=500,ckpt=60,write_s=30,restart_s=60", "rsc1", 1)
    assert without["ettr"] < with_spares["ettr"]


def test_a_failure_stream_draws_nodes_exactly_as_numpy_choice_would() -> None:
    """The stream draws nodes from a cumulative distribution made once; it must give what ``rng.choice(n, p=w)``
    gives on the same generator (the same node, the same state after), or every seeded run would change."""
    import numpy as np

    from gigafactory.twin.failures import _cdf, _draw

    w = np.random.default_rng(0).random(997)
    w /= w.sum()
    a, b = np.random.default_rng(7), np.random.default_rng(7)
    cdf = _cdf(w)
    for _ in range(5000):
        assert _draw(a, cdf) == int(b.choice(w.size, p=w))
    assert a.random() == b.random()
