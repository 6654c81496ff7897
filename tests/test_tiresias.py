"""Tiresias as the Pollux artifact runs it (bench/tiresias_check.py), on tiny hand-built cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import make_job
from gigafactory.core import JobSubmitted, StartJob, StopJob, Tick, TraceError, build_site
from gigafactory.engine import Engine
from gigafactory.twin import Simulation, load_workload
from gigafactory.twin.workloads.pollux import read_pollux


def test_a_job_demoted_while_running_is_preempted_at_the_next_round() -> None:
    """The Pollux simulator re-ranks every job each 60 s round, so a job demoted to the second queue gives way
    at once to a waiting first-queue job it used to outrank. The waiting job's failed preemption attempt is
    remembered only until a running job's rank changes, not until the capacity next changes."""
    e = Engine(build_site("uniform:nodes=1,gpus=4"), "las:queues=2,threshold_gpu_h=1+greedy+preempt+rounds:interval=60",
               validate=True)  # fmt: skip
    acts = e.handle([JobSubmitted(0, make_job(1, 4, est=10_000)), Tick(0)])
    assert [a.job_id for a in acts if isinstance(a, StartJob)] == [1]
    e.handle([JobSubmitted(10, make_job(2, 4, submit=10, est=100))])
    for t in range(60, 900, 60):  # job 1 was submitted first and has had less than 1 GPU-hour: it keeps the node
        acts = e.handle([Tick(t)])
        assert not [a for a in acts if isinstance(a, (StartJob, StopJob))], t
    acts = e.handle([Tick(900)])  # 1 GPU-hour on 4 GPUs after 900 s: job 1 is in the second queue now
    assert [a.job_id for a in acts if isinstance(a, StopJob)] == [1]
    assert [a.job_id for a in acts if isinstance(a, StartJob)] == [2]


def test_a_pollux_job_alone_ends_iso_packed_after_the_round_it_starts_in(tmp_path: Path) -> None:
    """The Pollux simulator's 30 s restart is part of ``iso_packed``: a job alone completes its wait for the next
    60 s round plus ``iso_packed`` after submission, as in the published per-job JCTs (not 30 s later)."""
    csv = tmp_path / "w.csv"
    csv.write_text("name,time,application,num_replicas,batch_size,iso_packed\n"
                   "ncf-0,10,ncf,1,32768,77\ncifar10-1,200,cifar10,4,2048,500\n")  # fmt: skip
    topo = build_site("uniform:nodes=1,gpus=4")
    wl, _ = load_workload(f"pollux:{csv}", topo, days=1, seed=0)
    assert wl.runtime_s.tolist() == [47.0, 470.0] and (wl.restart_s == 30).all()
    res = Simulation(topo, wl, "tiresias", seed=0, keep_log=False).run()
    assert (res.metrics.end - wl.submit_s).tolist() == [50.0 + 77.0, 40.0 + 500.0]  # rounds at 60 and 240
    csv.write_text("name,time,application,num_replicas,batch_size,iso_packed\nncf-0,0,ncf,1,32768,30\n")
    with pytest.raises(TraceError, match="more than restart_s"):
        read_pollux(str(csv))
    assert np.isclose(read_pollux(str(csv), restart_s=0)[0].runtime_s[0], 30.0)
