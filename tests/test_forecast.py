"""Estimated starts: the engine played forward on a copy, with the live engine untouched."""

from __future__ import annotations

from conftest import make_job
from gigafactory.core import JobSubmitted, Tick
from gigafactory.core.presets import build_site
from gigafactory.engine.engine import Engine
from gigafactory.engine.forecast import forecast_starts


def _engine() -> Engine:
    return Engine(build_site("uniform:nodes=2,gpus=8"), "fifo+easy+best-fit", keep_log=True)


def test_waiting_jobs_start_when_running_ones_are_expected_to_end() -> None:
    e = _engine()
    e.handle([JobSubmitted(0.0, make_job(1, 16, est=100.0)), JobSubmitted(0.0, make_job(2, 8, est=50.0)),
              JobSubmitted(0.0, make_job(3, 8, est=30.0)), Tick(0.0)])  # fmt: skip
    assert e.running() == [1]
    starts = forecast_starts(e, 10.0)
    assert starts == {2: 100.0, 3: 100.0}


def test_backfill_shows_in_the_forecast() -> None:
    def forecast(profile: str) -> dict[int, float]:
        e = Engine(build_site("uniform:nodes=2,gpus=8"), profile)
        e.handle([JobSubmitted(0.0, make_job(1, 8, est=100.0)), JobSubmitted(0.0, make_job(2, 8, est=50.0))])
        assert e.running() == [1, 2]  # the site is full
        # Job 3 needs the whole site: it waits for both. Job 4, later, fits in the node job 2 frees at t=50 and ends
        # (at 90) before job 3 can start (at 100).
        e.handle([JobSubmitted(1.0, make_job(3, 16, est=10.0)), JobSubmitted(1.0, make_job(4, 8, est=40.0))])
        assert e.pending() == [3, 4]
        return forecast_starts(e, 1.0)

    assert forecast("fifo+easy+best-fit") == {3: 100.0, 4: 50.0}  # the later job starts first: backfilled
    assert forecast("fifo+none+best-fit") == {3: 100.0, 4: 110.0}  # without backfill it waits for job 3 to end


def test_the_live_engine_is_untouched_and_unknown_runtimes_use_the_default() -> None:
    e = _engine()
    e.handle([JobSubmitted(0.0, make_job(1, 16)), JobSubmitted(0.0, make_job(2, 4, est=5.0)), Tick(0.0)])
    before = (e.running(), e.pending(), len(e.log))
    starts = forecast_starts(e, 60.0, default_runtime_s=3600.0)
    assert starts == {2: 3600.0}
    assert (e.running(), e.pending(), len(e.log)) == before
    assert forecast_starts(e, 60.0, default_runtime_s=3600.0, horizon_s=1000.0) == {}


def test_the_forecast_plans_with_its_own_copy_of_the_running_jobs() -> None:
    """Behind a head with a reservation found by replaying ends (topology placement), the copy's planner must ask
    the copy where its jobs run: it asked the live engine, which knows nothing of jobs started in the forecast, and
    the forecast died (the queue showed no estimate for the jobs behind the head)."""
    e = Engine(build_site("hgx-h100:nodes=4"), "fifo+easy+topology")
    e.handle([JobSubmitted(0.0, make_job(1, 8, est=600.0)), JobSubmitted(0.0, make_job(3, 16, est=3600.0))])
    e.handle([JobSubmitted(10.0, make_job(4, 16, 10.0, est=1800.0)), JobSubmitted(20.0, make_job(5, 1, 20.0, milli=1)),
              JobSubmitted(30.0, make_job(6, 1, 30.0))])  # fmt: skip
    assert e.pending() == [4, 5, 6]
    # Job 4 starts when job 1 ends; 5 and 6 (no estimate: they cannot backfill) when job 4 is expected to end.
    assert forecast_starts(e, 40.0) == {4: 600.0, 5: 2400.0, 6: 2400.0}
    assert e.pending() == [4, 5, 6] and e.running() == [1, 3]  # the live engine is untouched
