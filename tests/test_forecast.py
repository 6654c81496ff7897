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
