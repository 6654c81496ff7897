"""Awards in the pure engine: the award admit policy, the checkpoint signal and the stop, and the twin's programme."""

from __future__ import annotations

import heapq
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gigafactory.core import build_site
from gigafactory.core.actions import SignalJob, StartJob, StopJob, StopReason, Wake
from gigafactory.core.awards import Award, AwardBook
from gigafactory.core.errors import RequestError
from gigafactory.core.events import AwardChanged, Event, JobCancelled, JobFinished, JobSubmitted, Tick
from gigafactory.core.jobs import Job, JobId, JobRequest, JobState
from gigafactory.core.tenants import Tenant, TenantTree
from gigafactory.engine.engine import Engine
from gigafactory.twin.experiment import Experiment, run_one

TREE = TenantTree([Tenant("public", 3), Tenant("a", parent="public"), Tenant("b", parent="public"), Tenant("inv")])


def job(
    i: int, tenant: str, gpus: int = 8, t: float = 0.0, award: int | None = None, limit: float | None = None
) -> Job:
    return Job(JobId(i), JobRequest(gpus=gpus), t, tenant=tenant, award=award, estimate_s=limit)


def engine(policy: str = "fifo+easy+best-fit+award:grace_s=60") -> Engine:
    return Engine(build_site("hgx-h100:nodes=2"), policy, tenants=TREE, validate=True)


def test_a_job_charges_its_award_is_signalled_when_it_runs_out_and_stopped_after_the_grace() -> None:
    eng = engine()
    acts = eng.handle([AwardChanged(0, Award(12, "a", 10.0)), JobSubmitted(0, job(1, "a"))])
    assert [type(a) for a in acts] == [StartJob, Wake]
    assert eng.job(1).award == 12
    assert acts[1].time == pytest.approx(10 * 3600 / 8)  # 8 GPUs use 10 GPU-hours in 1.25 h
    acts = eng.handle([Tick(4500.0)])
    sig = [a for a in acts if isinstance(a, SignalJob)]
    assert len(sig) == 1 and sig[0].stop_s == 4560.0 and "award 12: 0 of 10 GPU-hours left" in sig[0].reason
    assert eng.state_of(1) is JobState.RUNNING  # the grace: it may checkpoint first
    acts = eng.handle([Tick(4560.0)])
    stops = [a for a in acts if isinstance(a, StopJob)]
    assert len(stops) == 1 and stops[0].reason is StopReason.AWARD and stops[0].requeue and stops[0].graceful
    assert eng.state_of(1) is JobState.PENDING
    assert eng.job(1).wait_reason == "award 12: 0 of 10 GPU-hours left"
    # Used: 10 GPU-hours plus 8 GPUs × the 60 s grace, and not a second more.
    assert eng.awards.used_gpu_s(12, 4560.0) == pytest.approx(10 * 3600 + 8 * 60)
    # A new award lets it start again; the next job of the tenant charges it too.
    acts = eng.handle([AwardChanged(5000, Award(13, "a", 2.0, 5000, 10_000)), JobSubmitted(5000, job(2, "a", 1))])
    assert {a.job_id for a in acts if isinstance(a, StartJob)} == {1, 2}
    assert eng.job(1).award == eng.job(2).award == 13


def test_topping_up_during_the_grace_cancels_the_stop() -> None:
    eng = engine()
    eng.handle([AwardChanged(0, Award(1, "a", 1.0)), JobSubmitted(0, job(1, "a"))])
    acts = eng.handle([Tick(450.0)])
    assert any(isinstance(a, SignalJob) for a in acts)
    eng.handle([AwardChanged(480.0, Award(1, "a", 5.0))])
    acts = eng.handle([Tick(510.0)])
    assert not any(isinstance(a, StopJob) for a in acts)
    assert eng.state_of(1) is JobState.RUNNING


def test_an_expired_or_future_award_starts_nothing_and_says_so() -> None:
    eng = engine()
    eng.handle([AwardChanged(0, Award(5, "a", 100.0, 1000.0, 2000.0)), JobSubmitted(0, job(1, "a", 1))])
    assert eng.state_of(1) is JobState.PENDING and "award 5: valid from t=" in eng.job(1).wait_reason
    acts = eng.handle([Tick(1000.0)])  # it asked to be woken when the award becomes valid
    assert any(isinstance(a, StartJob) for a in acts)
    acts = eng.handle([Tick(2000.0)])  # the window ends: signalled, then stopped after the grace
    assert any(isinstance(a, SignalJob) for a in acts)
    eng.handle([Tick(2060.0), JobSubmitted(2060.0, job(2, "a", 1))])
    assert eng.state_of(1) is JobState.PENDING and eng.state_of(2) is JobState.PENDING
    assert eng.job(2).wait_reason.startswith("award 5: expired at")


def test_who_needs_an_award() -> None:
    eng = engine()
    eng.handle(
        [
            AwardChanged(0, Award(1, "a", 100.0)),
            JobSubmitted(0, job(1, "b", 1)),  # under the public pool, no award: waits
            JobSubmitted(0, job(2, "inv", 1)),  # an investor runs on its share
            JobSubmitted(0, job(3, "inv", 1, award=1)),  # naming another tenant's award: waits
            JobSubmitted(0, job(4, "a", 1, award=99)),  # an award that does not exist: waits
        ]
    )
    assert [eng.state_of(i) for i in (1, 2, 3, 4)] == [JobState.PENDING, JobState.RUNNING, JobState.PENDING,
                                                       JobState.PENDING]  # fmt: skip
    assert eng.job(1).wait_reason == "b draws on the public pool and has no award"
    assert eng.job(3).wait_reason == "award 1 is not inv's"
    assert eng.job(4).wait_reason == "award 99 does not exist"
    # Parked jobs are out of the queue, but still pending and cancellable.
    assert set(eng.pending()) == {1, 3, 4}
    eng.handle([JobCancelled(1.0, JobId(1))])
    assert eng.state_of(1) is JobState.CANCELLED


def test_safe_waits_until_the_award_covers_the_time_limit() -> None:
    eng = engine("fifo+easy+best-fit+award:safe=1")
    eng.handle([AwardChanged(0, Award(1, "a", 4.0)), JobSubmitted(0, job(1, "a", 8, limit=3600.0))])
    assert eng.state_of(1) is JobState.PENDING
    assert eng.job(1).wait_reason == "award 1: 4 of 4 GPU-hours left; this job may use 8 (8 GPUs × its 1 h limit)"
    eng.handle([AwardChanged(1, Award(1, "a", 8.0))])
    assert eng.state_of(1) is JobState.RUNNING


def test_several_awards_use_the_one_that_ends_first() -> None:
    book = AwardBook()
    book.put(Award(1, "a", 10.0, 0, 5000), 0)
    book.put(Award(2, "a", 10.0, 0, 3000), 0)
    assert book.resolve(job(1, "a"), 10.0) == (2, "")
    assert book.resolve(job(1, "a", award=1), 10.0) == (1, "")
    assert book.resolve(job(1, "a"), 4000.0) == (1, "")
    assert book.resolve(job(1, "z"), 10.0) == (None, "")


def test_bad_awards_are_refused() -> None:
    with pytest.raises(RequestError, match=r"ends .* before it starts"):
        Award(1, "a", 1.0, 100.0, 50.0)
    with pytest.raises(RequestError, match="gpu_hours=-1"):
        Award(1, "a", -1.0)


# Awards, jobs with their run times, and the grace after an award's checkpoint signal.
Programme = tuple[list[Award], list[tuple[Job, float]], float]


@st.composite
def programmes(draw: st.DrawFn) -> Programme:
    awards = []
    for i in range(draw(st.integers(1, 4))):
        start = draw(st.sampled_from([0.0, 0.0, 600.0, 3000.0]))
        awards.append(Award(i + 1, draw(st.sampled_from(["a", "b"])), draw(st.sampled_from([0.0, 0.5, 2.0, 8.0])),
                            start, start + draw(st.sampled_from([900.0, 3600.0, 20_000.0]))))  # fmt: skip
    jobs = []
    t = 0.0
    for i in range(draw(st.integers(1, 25))):
        t += draw(st.sampled_from([0.0, 60.0, 400.0]))
        jobs.append((job(i + 1, draw(st.sampled_from(["a", "b", "inv"])), draw(st.integers(1, 16)), t),
                     draw(st.sampled_from([300.0, 1800.0, 7200.0]))))  # fmt: skip
    return awards, jobs, draw(st.sampled_from([0.0, 30.0, 300.0]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=programmes())
def test_an_award_is_never_overrun_by_more_than_its_grace(case: Programme) -> None:
    awards, jobs, grace = case
    eng = engine(f"fifo+easy+best-fit+award:grace_s={grace:g}")
    runtime = {int(j.id): rt for j, rt in jobs}
    work_left = dict(runtime)
    started: dict[int, float] = {}
    heap: list[tuple[float, int, Event]] = []
    seq = 0
    for a in awards:
        heap.append((0.0, seq := seq + 1, AwardChanged(0.0, a)))
    for j, _ in jobs:
        heap.append((j.submit_s, seq := seq + 1, JobSubmitted(j.submit_s, j)))
    heapq.heapify(heap)
    rate_at_signal: dict[int, float] = {}  # award -> GPUs that charged it when it ran out
    while heap:
        t = heap[0][0]
        batch = []
        while heap and heap[0][0] == t:
            batch.append(heapq.heappop(heap)[2])
        for act in eng.handle(batch):
            if isinstance(act, StartJob):
                rec = eng.job(act.job_id)
                if rec.award is not None:  # an award pays only inside its window, while hours are left
                    aw = eng.awards[rec.award]
                    assert aw.start_s <= t < aw.end_s
                    assert eng.awards.left_gpu_s(rec.award, t) > -1e-6
                assert rec.job.tenant != "b" or rec.award is not None  # the pool's tenants need one
                started[act.job_id] = t
                end = t + work_left[act.job_id]
                heapq.heappush(heap, (end, seq := seq + 1, JobFinished(end, act.job_id, act.attempt)))
            elif isinstance(act, StopJob):
                work_left[act.job_id] -= t - started[act.job_id]  # graceful: keeps its progress
            elif isinstance(act, SignalJob):
                aid = eng.job(act.job_id).award
                assert aid is not None
                rate_at_signal.setdefault(aid, sum(eng.job(j).job.request.gpus for j in eng.awards.jobs_on(aid)))
            elif isinstance(act, Wake) and act.time > t:
                heapq.heappush(heap, (act.time, seq := seq + 1, Tick(act.time)))
    end = eng.now
    for a in awards:
        used = eng.awards.used_gpu_s(a.id, end)
        assert used <= a.gpu_s + rate_at_signal.get(a.id, 0.0) * grace + 1e-6, (a, used)
    assert not eng.awards.charging()


def test_the_twin_replays_a_programme() -> None:
    exp = Experiment(site="hgx-h100:nodes=4", workload="llm:load=0.9,tenants=3", days=8,
                     policy="fifo+easy+best-fit+award:grace_s=600",
                     programme="calls=4,cover=0.7,response_days=0.5")  # fmt: skip
    s = run_one(exp, 1).summary["programme"]
    assert s["awards"] >= 3
    assert s["awards_used_up"] >= 1 and s["jobs_stopped_for_award"] >= 1 and s["jobs_left_waiting_for_award"] >= 1
    assert s["gpu_hours_used"] <= s["gpu_hours_awarded"] + s["awards"] * 32 * 600 / 3600
    assert 0 <= s["largest_overrun_gpu_hours"] <= 32 * 600 / 3600 + 1e-6
    generous = Experiment(**{**exp.__dict__, "programme": "calls=4,cover=3,response_days=0.5"})
    g = run_one(generous, 1).summary["programme"]
    # Jobs running when an award ends go on charging the tenant's next one; only the last window's end stops
    # some, and work still queued then waits for a next call that never comes.
    assert g["awards_used_up"] == 0 and g["jobs_stopped_for_award"] < s["jobs_stopped_for_award"] / 5
    assert g["jobs_left_waiting_for_award"] < s["jobs_left_waiting_for_award"]
    assert math.isfinite(g["gpu_hours_used"])


def test_the_ai_act_hold_waits_for_the_notification() -> None:
    from gigafactory.core.compute import ModelCompute
    from gigafactory.core.events import ModelChanged

    eng = Engine(build_site("hgx-h100:nodes=3"), "fifo+easy+best-fit+ai-act", tenants=TREE, validate=True)
    fps = 989e12 * 0.45
    # 9.9e24 FLOP counted; a day on 8 GPUs adds 8 × 86,400 × 4.45e14 = 3.1e20: under 10^25, it starts.
    near = ModelCompute(7, "a", 1e25 - 1e21, False, fps)
    eng.handle([ModelChanged(0, near), JobSubmitted(0, Job(JobId(1), JobRequest(gpus=8), 0, "a", 86_400.0, model=7))])
    assert eng.state_of(1) is JobState.RUNNING
    # A second such job would take the projection (counted + both runs) over 10^25: it waits, and says why.
    eng.handle([JobSubmitted(1, Job(JobId(2), JobRequest(gpus=8), 1, "a", 30 * 86_400.0, model=7)),
                JobSubmitted(1, Job(JobId(3), JobRequest(gpus=1), 1, "a", 3600.0))])  # fmt: skip
    assert eng.state_of(2) is JobState.PENDING and eng.state_of(3) is JobState.RUNNING  # another job is not held
    assert eng.job(2).wait_reason.startswith("model 7: with this job its training compute could reach 1.0×10^25")
    assert "Art. 52 notification" in eng.job(2).wait_reason
    # The provider notifies: the job starts.
    eng.handle([ModelChanged(2, ModelCompute(7, "a", near.counted_flop, True, fps))])
    assert eng.state_of(2) is JobState.RUNNING
