"""The AI Act desk's ledger in the store: models and training runs. The only writer of ``ai_models`` and
``training_runs``.

A run's GPU time is the control plane's own accounting: the usage records of its jobs (billed once per attempt from
the executor's times) plus, for attempts still running, their GPUs × the time since they started. Each attempt's GPU
model is its site's model at the nodes it ran on. The ledger itself is :func:`gigafactory.desk.ledger.ledger`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from gigafactory.control.reports import DEFAULT_PUE
from gigafactory.control.store.programme import ProgrammeError
from gigafactory.control.store.schema import ai_models, jobs, training_runs, usage
from gigafactory.control.store.site import load_sites
from gigafactory.core.calendar import utc_minute
from gigafactory.core.compute import ModelCompute
from gigafactory.core.errors import RequestError
from gigafactory.core.hardware import GPU_MODELS, system_watts
from gigafactory.desk.compute import Purpose, architecture_estimate, hardware_estimate
from gigafactory.desk.ledger import ModelFacts, RunFacts, ledger
from gigafactory.desk.thresholds import check_flop

__all__ = ["add_model", "add_run", "engine_view", "model_ledger", "notified", "remove_run", "visible_models"]

MAX_JOBS_PER_RUN = 10_000


def _refuse(exc: RequestError, field: str) -> ProgrammeError:
    return ProgrammeError(str(exc), 422, field)


def add_model(conn: Connection, tenant: str, *, name: str, provider: str, generative: bool,
              modifies: str | None = None, original_flop: float | None = None,
              original_systemic: bool = False) -> int:  # fmt: skip
    if original_flop is not None:
        try:
            if check_flop("original_flop", original_flop) < 1:
                raise RequestError("original_flop must be at least 1 FLOP (or leave it out when it is unknown)")
        except RequestError as exc:
            raise _refuse(exc, "original_flop") from exc
    if modifies is None and (original_flop is not None or original_systemic):
        raise ProgrammeError("original_flop and original_systemic describe the original of a modification: give "
                             "modifies too", field="modifies")  # fmt: skip
    row = conn.execute(ai_models.insert().values(
        tenant=tenant, name=name, provider=provider, generative=generative, modifies=modifies,
        original_flop=original_flop, original_systemic=original_systemic, notification_note="",
        created_at=time.time()))  # fmt: skip
    return int(row.inserted_primary_key[0])  # type: ignore[index]


def get_model(conn: Connection, model_id: int, tenant: str | None) -> Any:
    """The model, if ``tenant`` (None: an admin) may see it; else 404, as if it did not exist."""
    row = conn.execute(select(ai_models).where(ai_models.c.id == model_id)).first()
    if row is None or (tenant is not None and row.tenant != tenant):
        raise ProgrammeError(f"no model {model_id}", 404, "model_id")
    return row


def visible_models(conn: Connection, tenant: str | None) -> list[Any]:
    q = select(ai_models).order_by(ai_models.c.id)
    if tenant is not None:
        q = q.where(ai_models.c.tenant == tenant)
    return list(conn.execute(q).all())


def add_run(conn: Connection, model_id: int, tenant: str | None, *, purpose: str, job_ids: list[int],
            planned_gpu_hours: dict[str, float], parameters: float | None, tokens: float | None,
            mfu: tuple[float, float], note: str = "") -> int:  # fmt: skip
    model = get_model(conn, model_id, tenant)
    try:
        Purpose(purpose)
    except ValueError:
        raise ProgrammeError(f"purpose {purpose!r}; allowed: {', '.join(p.value for p in Purpose)}",
                             field="purpose") from None  # fmt: skip
    if len(job_ids) > MAX_JOBS_PER_RUN:
        raise ProgrammeError(f"at most {MAX_JOBS_PER_RUN} jobs per run", field="jobs")
    if job_ids:
        owners = dict(conn.execute(select(jobs.c.id, jobs.c.tenant).where(jobs.c.id.in_(job_ids))).all())
        for jid in job_ids:
            if owners.get(jid) != model.tenant:
                raise ProgrammeError(f"job {jid} is not one of {model.tenant}'s jobs", field="jobs")
        # A job's GPU time is counted once: in one run of one model.
        for r in conn.execute(select(training_runs.c.id, training_runs.c.model_id, training_runs.c.jobs)).all():
            taken = set(r.jobs or []) & set(job_ids)
            if taken:
                raise ProgrammeError(f"job {min(taken)} is already in run {r.id} of model {r.model_id}: a job's GPU "
                                     "time counts once (remove that run first)", 409, "jobs")  # fmt: skip
    if (parameters is None) != (tokens is None):
        raise ProgrammeError("the architecture estimate needs both parameters and tokens", field="parameters")
    if not (job_ids or planned_gpu_hours or (parameters is not None and tokens is not None)):
        raise ProgrammeError("a run needs jobs, planned_gpu_hours, or parameters and tokens", field="jobs")
    try:
        if planned_gpu_hours:
            hardware_estimate({m: h * 3600 for m, h in planned_gpu_hours.items()}, mfu)
        else:
            hardware_estimate({}, mfu)
        if parameters is not None or tokens is not None:
            if parameters is None or tokens is None:
                raise RequestError("the architecture estimate needs both parameters and tokens")
            architecture_estimate(parameters, tokens)
    except RequestError as exc:
        field = "planned_gpu_hours" if "GPU" in str(exc) else "mfu" if "mfu" in str(exc) else "parameters"
        raise _refuse(exc, field) from exc
    row = conn.execute(training_runs.insert().values(
        model_id=model_id, purpose=purpose, jobs=sorted(set(job_ids)), planned_gpu_hours=planned_gpu_hours,
        parameters=parameters, tokens=tokens, mfu_low=mfu[0], mfu_high=mfu[1], note=note,
        recorded_at=time.time()))  # fmt: skip
    return int(row.inserted_primary_key[0])  # type: ignore[index]


def notified(conn: Connection, model_id: int, tenant: str | None, at: float | None, note: str) -> None:
    """Record a notification. A later one is added to the record (with its time), never written over it."""
    m = get_model(conn, model_id, tenant)
    when = at if at is not None else time.time()
    entry = f"{utc_minute(when)}: {note or 'notified'}"
    record = f"{m.notification_note}\n{entry}" if m.notification_note else entry
    conn.execute(ai_models.update().where(ai_models.c.id == model_id)
                 .values(notified_at=m.notified_at or when, notification_note=record))  # fmt: skip


def remove_run(conn: Connection, model_id: int, run_id: int, tenant: str | None) -> None:
    """Take a run out of the ledger (recorded by mistake, say)."""
    get_model(conn, model_id, tenant)
    gone = conn.execute(training_runs.delete().where(training_runs.c.id == run_id,
                                                     training_runs.c.model_id == model_id)).rowcount  # fmt: skip
    if not gone:
        raise ProgrammeError(f"model {model_id} has no run {run_id}", 404, "run_id")


def model_ledger(conn: Connection, model_id: int, tenant: str | None, now: float | None = None) -> dict[str, Any]:
    """The model's ledger, from the store's accounting; keeps the first time a crossing was seen."""
    now = time.time() if now is None else now
    m = get_model(conn, model_id, tenant)
    runs = [_Run(int(r.id), r.purpose, list(r.jobs or []), r.planned_gpu_hours or {}, r.parameters, r.tokens,
                 r.mfu_low, r.mfu_high, float(r.recorded_at), "", r.note or "")
            for r in conn.execute(select(training_runs).where(training_runs.c.model_id == model_id)).all()]  # fmt: skip
    runs += _submitted_runs(conn, model_id, {j for r in runs for j in r.jobs})
    models_of = _gpu_models(conn)
    all_jobs = sorted({j for r in runs for j in (r.jobs or [])})
    job_rows = {r.id: r for r in conn.execute(select(jobs).where(jobs.c.id.in_(all_jobs))).all()} if all_jobs else {}
    billed: dict[int, float] = {}
    for u in conn.execute(select(usage.c.job_id, usage.c.gpu_seconds).where(usage.c.job_id.in_(all_jobs))).all():
        billed[int(u.job_id)] = billed.get(int(u.job_id), 0.0) + float(u.gpu_seconds)
    facts = []
    pue = {st.name: st.pue or DEFAULT_PUE for st in load_sites(conn)}
    energy_mwh = gpu_hours = 0.0
    first, last = math.inf, -math.inf
    for r in runs:
        secs: dict[str, float] = {}
        rate: dict[str, float] = {}
        remaining = 0.0
        for jid in r.jobs or []:
            j = job_rows.get(jid)
            if j is None:
                continue
            gpu = _model_of(j, models_of)
            used = billed.get(jid, 0.0)
            if j.state == "running" and j.started_at is not None:
                gpus = j.gpus * j.gpu_milli / 1000
                used += gpus * max(now - j.started_at, 0.0)
                rate[gpu] = rate.get(gpu, 0.0) + gpus
                if j.estimate_s and math.isfinite(j.estimate_s):
                    remaining = max(remaining, j.started_at + j.estimate_s - now)
            secs[gpu] = secs.get(gpu, 0.0) + used
            if Purpose(r.purpose).counts and used > 0:
                gpu_hours += used / 3600
                energy_mwh += used / 3600 * system_watts(gpu) * pue.get(j.site or "", DEFAULT_PUE) / 1e6
                first = min(first, j.first_started_at or j.started_at or now)
                last = max(last, now if j.state == "running" else (j.ended_at or now))
        facts.append(RunFacts(r.id, Purpose(r.purpose), secs, rate, remaining,
                              {str(k): float(v) for k, v in (r.planned_gpu_hours or {}).items()}, r.parameters,
                              r.tokens, (r.mfu_low, r.mfu_high), r.recorded_at, r.label, r.note))  # fmt: skip
    model = ModelFacts(int(m.id), m.name, bool(m.generative), m.original_flop, bool(m.original_systemic), m.modifies,
                       m.notified_at, m.clock_opened_at)  # fmt: skip
    try:
        out = ledger(model, facts, now)
    except RequestError as exc:  # a GPU model whose peak is not known ran a job of the run
        raise ProgrammeError(str(exc), 422, "jobs") from exc
    if out["clock"] is not None and m.clock_opened_at is None:
        conn.execute(ai_models.update().where(ai_models.c.id == model_id, ai_models.c.clock_opened_at.is_(None))
                     .values(clock_opened_at=out["clock"]["opened_at"]))  # fmt: skip
    out.update(tenant=m.tenant, provider=m.provider, modifies=m.modifies, notification_note=m.notification_note,
               gpu_hours=gpu_hours, energy_mwh=energy_mwh,
               training_wall_s=max(last - first, 0.0) if math.isfinite(first) else 0.0)  # fmt: skip
    return out


@dataclass(frozen=True, slots=True)
class _Run:
    id: int
    purpose: str
    jobs: list[int]
    planned_gpu_hours: dict[str, float]
    parameters: float | None
    tokens: float | None
    mfu_low: float
    mfu_high: float
    recorded_at: float
    label: str
    note: str = ""


def _submitted_runs(conn: Connection, model_id: int, recorded: set[int]) -> list[_Run]:
    """Jobs submitted naming the model (and not in a recorded run): one run per purpose, numbered 0."""
    by_purpose: dict[str, list[tuple[int, float]]] = {}
    q = select(jobs.c.id, jobs.c.ai_purpose, jobs.c.submitted_at).where(jobs.c.ai_model == model_id)
    for jid, purpose, at in conn.execute(q).all():
        if jid not in recorded:
            by_purpose.setdefault(purpose or "pre-training", []).append((int(jid), float(at)))
    return [_Run(0, p, [j for j, _ in js], {}, None, None, 0.35, 0.45, min(t for _, t in js),
                 f"jobs submitted for it ({len(js)})") for p, js in sorted(by_purpose.items())]  # fmt: skip


def engine_view(conn: Connection) -> list[ModelCompute]:
    """Each model's compute as the engine's ``ai-act`` hold needs it: what its counted runs' ended attempts used
    (billed usage at each site's peak × the upper end of the run's utilisation range), whether it was notified,
    and the FLOP per GPU-second to project with (the highest peak of the sites × the highest utilisation)."""
    models_of = _gpu_models(conn)
    peaks = [GPU_MODELS[m].bf16_tflops * 1e12 for ms in models_of.values() for m in set(ms) if m in GPU_MODELS]
    out = []
    for m in conn.execute(select(ai_models)).all():
        runs = [r for r in conn.execute(select(training_runs).where(training_runs.c.model_id == m.id)).all()
                if Purpose(r.purpose).counts]  # fmt: skip
        mfu = max([r.mfu_high for r in runs] or [0.45])
        ids = {j: r.mfu_high for r in runs for j in (r.jobs or [])}
        for s in _submitted_runs(conn, int(m.id), set(ids)):
            if Purpose(s.purpose).counts:
                ids.update(dict.fromkeys(s.jobs, s.mfu_high))
        counted = 0.0
        if ids:
            q = select(usage.c.job_id, usage.c.gpu_seconds, jobs.c.site, jobs.c.placement)
            q = q.join(jobs, jobs.c.id == usage.c.job_id).where(usage.c.job_id.in_(list(ids)))
            for r in conn.execute(q).all():
                gpu = _model_of(r, models_of)
                if gpu in GPU_MODELS:
                    counted += float(r.gpu_seconds) * GPU_MODELS[gpu].bf16_tflops * 1e12 * ids[int(r.job_id)]
        out.append(ModelCompute(int(m.id), m.tenant, counted, m.notified_at is not None, max(peaks or [0.0]) * mfu))
    return out


def _gpu_models(conn: Connection) -> dict[str, list[str]]:
    """Site name -> the GPU model of each of its nodes."""
    return {st.name: [st.topology.models[int(i)] for i in st.topology.node_model] for st in load_sites(conn)}


def _model_of(job: Any, models_of: dict[str, list[str]]) -> str:
    site = models_of.get(job.site or "") or next(iter(models_of.values()))
    nodes = (job.placement or {}).get("nodes") or [0]
    return site[int(nodes[0])]
