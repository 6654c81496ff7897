"""The control plane's tables (SQLAlchemy Core). The store is the source of truth; the daemon rebuilds the engine
from it at every start.

Who writes what (one writing module per table):

=============  ==========================================  ============================================
table          holds                                       written by
=============  ==========================================  ============================================
sites, nodes   the sites and their nodes, with their state :mod:`.site`
tenants        the account tree: shares, guarantees, caps, :mod:`.accounts`
               uids, job and submission-rate limits
tokens         API tokens, hashed, with tenant and role    :mod:`.accounts`
               (admin, tenant, reviewer)
sessions       browser sessions and one-time sign-in       :mod:`.accounts`
               codes, hashed
jobs           every job: request, state, placement, ...   :mod:`.jobs`
usage          GPU-seconds per job attempt (accounting),   :mod:`.jobs`
               one record per (job, attempt)
transitions    every state change, with its stimulus       :mod:`.jobs`
events         the inbox: what the daemon must process     :mod:`.inbox`
actions        the outbox: what executors must carry out   :mod:`.outbox`
funders,       the access programme: who funds each site,  :mod:`.programme`
contributions  their contributions over time, the calls,
calls,         the applications to them, and the awards
applications,
awards
ai_models,     the AI Act desk's ledger: models and their  :mod:`.desk`
training_runs  training runs (linked to jobs or planned)
meta           small facts (versions, heartbeats, the      :mod:`.db`
               daemon's lease epoch)
=============  ==========================================  ============================================

Times are Unix seconds (floats). JSON columns hold lists and small objects.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

__all__ = [
    "actions",
    "ai_models",
    "applications",
    "awards",
    "calls",
    "contributions",
    "events",
    "funders",
    "jobs",
    "meta",
    "metadata",
    "nodes",
    "sessions",
    "sites",
    "tenants",
    "tokens",
    "training_runs",
    "transitions",
    "usage",
]

metadata = MetaData()

sites = Table(
    "sites",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("spec", String(500), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("country", String(2), nullable=True),  # ISO code; None for a store's lone site made before networks
    Column("price_eur_mwh", Float, nullable=True),
    Column("carbon_g_kwh", Float, nullable=True),
    Column("pue", Float, nullable=True),
    Column("power_cap_mw", Float, nullable=True),
    Column("executor", JSON, nullable=True),  # e.g. {"kind": "slurm"}; None: the store's executor
)

nodes = Table(
    "nodes",
    metadata,
    Column("site_id", Integer, ForeignKey("sites.id"), primary_key=True),
    Column("idx", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("model", String(64), nullable=False),
    Column("gpus", Integer, nullable=False),
    Column("cpu_milli", BigInteger, nullable=False),
    Column("mem_mib", BigInteger, nullable=False),
    Column("domain", Integer, nullable=False),
    Column("pod", Integer, nullable=False),
    Column("state", String(16), nullable=False, default="up"),  # up | down | drained
    Column("reason", Text, nullable=False, default=""),
    Column("updated_at", Float, nullable=False),
)

node_log = Table(
    "node_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("site_id", Integer, ForeignKey("sites.id"), nullable=False),
    Column("idx", Integer, nullable=False),
    Column("time", Float, nullable=False),
    Column("state", String(16), nullable=False),  # what the node became: up | down | drained
    Column("reason", Text, nullable=False, default=""),
    Index("ix_node_log_node", "site_id", "idx", "time"),
)

tenants = Table(
    "tenants",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("parent", String(100), nullable=False, default="root"),
    Column("share", Float, nullable=False, default=1.0),
    Column("guarantee", Integer, nullable=True),
    Column("limit_gpus", Integer, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("unix_user", String(64), nullable=True),  # the account its jobs run as (else its dynamic uid)
    Column("uid", Integer, nullable=True),  # its dynamic uid, unique among tenants
    Column("max_jobs", Integer, nullable=True),  # submitted + waiting jobs at most (None: the site default)
    Column("max_rate", Float, nullable=True),  # submissions per second at most (None: the site default)
    Index("ux_tenants_uid", "uid", unique=True),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("tenant", String(100), nullable=True),  # None for admin tokens
    Column("role", String(16), nullable=False),  # tenant | admin | reviewer
    Column("name", String(100), nullable=False, default=""),
    Column("created_at", Float, nullable=False),
    Column("revoked", Boolean, nullable=False, default=False),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("secret_hash", String(64), nullable=False, unique=True),
    Column("token_id", Integer, nullable=False),  # whose rights it carries; revoking the token ends it
    Column("kind", String(16), nullable=False),  # session (a browser's cookie) | code (a one-time sign-in link)
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("used", Boolean, nullable=False, default=False),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant", String(100), nullable=False),
    Column("name", String(200), nullable=False, default=""),
    Column("command", JSON, nullable=False),
    Column("env", JSON, nullable=False),
    Column("gpus", Integer, nullable=False),
    Column("gpu_milli", Integer, nullable=False),
    Column("cpu_milli", BigInteger, nullable=False),
    Column("mem_mib", BigInteger, nullable=False),
    Column("models", JSON, nullable=True),
    Column("locality", String(16), nullable=False),
    Column("estimate_s", Float, nullable=True),
    Column("priority", Integer, nullable=False, default=0),
    Column("ckpt_s", Float, nullable=True),
    Column("ckpt_write_s", Float, nullable=False, default=0.0),
    Column("state", String(16), nullable=False),  # submitted | pending | running | completed | failed | ...
    Column("attempt", Integer, nullable=False, default=0),
    Column("placement", JSON, nullable=True),
    Column("submitted_at", Float, nullable=False),
    Column("started_at", Float, nullable=True),
    Column("first_started_at", Float, nullable=True),
    Column("ended_at", Float, nullable=True),
    Column("exit_code", Integer, nullable=True),
    Column("reason", Text, nullable=False, default=""),
    Column("est_start", Float, nullable=True),  # the daemon's forecast while pending
    Column("log_dir", Text, nullable=False, default=""),
    Column("client_key", String(100), nullable=True),  # the client's name for the submission (retries)
    Column("client_hash", String(64), nullable=True),  # what was submitted under that key (a fingerprint)
    Column("site", String(64), nullable=True),  # where it was routed; None while ``submitted``
    Column("sites", JSON, nullable=True),  # the sites it may run on (None: any)
    Column("countries", JSON, nullable=True),  # the countries it may run in (None: any)
    Column("reroute", Boolean, nullable=False, default=False),  # may a site failure send it to another site
    Column("award", Integer, nullable=True),  # the award it names (None: its tenant's active award, if any)
    Column("charged_award", Integer, nullable=True),  # the award its current or last attempt charges
    Column("ai_model", Integer, nullable=True),  # the AI Act desk's model it trains, if its tenant says so
    Column("ai_purpose", String(32), nullable=True),  # and for what (pre-training, evaluation, ...)
    Index("ix_jobs_tenant_state", "tenant", "state"),
    Index("ix_jobs_site_state", "site", "state"),
    Index("ux_jobs_tenant_client_key", "tenant", "client_key", unique=True),
    Index("ix_jobs_state", "state"),
)

usage = Table(
    "usage",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", Integer, nullable=False, index=True),
    Column("attempt", Integer, nullable=False),
    Column("tenant", String(100), nullable=False, index=True),
    Column("gpus", Float, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("ended_at", Float, nullable=False),
    Column("gpu_seconds", Float, nullable=False),
    Column("site", String(64), nullable=True),
    Column("award", Integer, nullable=True, index=True),  # the award the attempt charged
    Index("ux_usage_job_attempt", "job_id", "attempt", unique=True),
)

transitions = Table(
    "transitions",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("time", Float, nullable=False),
    Column("job_id", Integer, nullable=False, index=True),
    Column("attempt", Integer, nullable=False),
    Column("old", String(16), nullable=True),
    Column("new", String(16), nullable=False),
    Column("stimulus", String(100), nullable=False),
    Column("reason", Text, nullable=False, default=""),
)

events = Table(
    "events",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("time", Float, nullable=False),
    Column("kind", String(32), nullable=False),  # submit | cancel | drain | resume | tenants
    Column("job_id", Integer, nullable=True),
    Column("node", Integer, nullable=True),
    Column("payload", JSON, nullable=False),
    Column("processed", Boolean, nullable=False, default=False),
    Index("ix_events_processed", "processed", "seq"),
)

actions = Table(
    "actions",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("time", Float, nullable=False),
    Column("kind", String(16), nullable=False),  # start | stop | signal
    Column("job_id", Integer, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("payload", JSON, nullable=False),
    Column("done", Boolean, nullable=False, default=False),
    Column("done_at", Float, nullable=True),
    Index("ix_actions_done", "done", "seq"),
)

funders = Table(
    "funders",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),  # eu | member-state | private
    Column("country", String(2), nullable=True),  # a member state's ISO code, or a private investor's seat
    Column("tenant", String(100), nullable=True),  # a private investor's account in the tenant tree
    Column("created_at", Float, nullable=False),
)

contributions = Table(
    "contributions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("funder_id", Integer, ForeignKey("funders.id"), nullable=False),
    Column("site", String(64), nullable=False),
    Column("amount_eur", Float, nullable=False),  # the funder's whole contribution to the site from effective_at
    Column("effective_at", Float, nullable=False),
    Column("recorded_at", Float, nullable=False),
    Index("ix_contributions_funder_site", "funder_id", "site", "effective_at"),
)

calls = Table(
    "calls",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("site", String(64), nullable=False),
    Column("mode", String(16), nullable=False),  # playground | fast-lane | large-scale
    Column("budget_gpu_hours", Float, nullable=False),
    Column("awarded_gpu_hours", Float, nullable=False, default=0.0),  # kept with every award, never above budget
    Column("max_request_gpu_hours", Float, nullable=False),
    Column("opens_at", Float, nullable=False),
    Column("closes_at", Float, nullable=False),
    Column("response_days", Float, nullable=False),
    Column("validity_days", Float, nullable=False),
    Column("reviewers", JSON, nullable=False),  # names of reviewer tokens
    Column("created_at", Float, nullable=False),
)

applications = Table(
    "applications",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("call_id", Integer, ForeignKey("calls.id"), nullable=False, index=True),
    Column("tenant", String(100), nullable=False, index=True),
    Column("title", String(300), nullable=False),
    Column("gpu_hours", Float, nullable=False),
    Column("model_size", String(200), nullable=False, default=""),
    Column("purpose", Text, nullable=False, default=""),
    Column("organisation", String(200), nullable=False, default=""),
    Column("country", String(2), nullable=True),
    Column("state", String(16), nullable=False),  # submitted | under-review | awarded | rejected
    Column("submitted_at", Float, nullable=False),
    Column("decided_at", Float, nullable=True),
    Column("reviewer", String(100), nullable=True),
    Column("note", Text, nullable=False, default=""),
)

awards = Table(
    "awards",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("application_id", Integer, ForeignKey("applications.id"), nullable=False, unique=True),
    Column("call_id", Integer, ForeignKey("calls.id"), nullable=False, index=True),
    Column("tenant", String(100), nullable=False, index=True),
    Column("site", String(64), nullable=False),
    Column("gpu_hours", Float, nullable=False),
    Column("start_at", Float, nullable=False),
    Column("end_at", Float, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("changed_at", Float, nullable=False),
)

ai_models = Table(
    "ai_models",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant", String(100), nullable=False, index=True),  # whose model: only its tokens (and admins) see it
    Column("name", String(200), nullable=False),
    Column("provider", String(200), nullable=False),
    Column("generative", Boolean, nullable=False),
    Column("modifies", String(200), nullable=True),  # the original model's name, for a modification
    Column("original_flop", Float, nullable=True),
    Column("original_systemic", Boolean, nullable=False, default=False),
    Column("clock_opened_at", Float, nullable=True),  # first seen crossing 10^25, met or foreseeable
    Column("notified_at", Float, nullable=True),
    Column("notification_note", Text, nullable=False, default=""),
    Column("created_at", Float, nullable=False),
)

training_runs = Table(
    "training_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_id", Integer, ForeignKey("ai_models.id"), nullable=False, index=True),
    Column("purpose", String(32), nullable=False),
    Column("jobs", JSON, nullable=False),  # control-plane job ids whose GPU time it is
    Column("planned_gpu_hours", JSON, nullable=False),  # {GPU model: hours}, a planned run (a dry run)
    Column("parameters", Float, nullable=True),
    Column("tokens", Float, nullable=True),
    Column("mfu_low", Float, nullable=False),
    Column("mfu_high", Float, nullable=False),
    Column("note", Text, nullable=False, default=""),
    Column("recorded_at", Float, nullable=False),
)

meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)
