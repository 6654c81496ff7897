"""The API's wire format: Pydantic models, used at the edge only. Inside, the control plane speaks rows and the
engine's own types.

Every number has bounds, so that nothing a client sends can overflow a column or the engine: a request that is
out of bounds is a 422 that names the field. Every free-text string is valid Unicode (no lone surrogate, which no
store can encode) and free of NUL bytes (no ``execve``, and no PostgreSQL text, can hold one), and a job's command
and environment together fit in :data:`LAUNCH_BYTES`, well inside what ``execve`` accepts, so that whatever is
accepted here can be stored and launched.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from gigafactory.core.hostlist import compress

__all__ = [
    "LAUNCH_BYTES",
    "MAX_COMMAND_BYTES",
    "Batch",
    "BatchOut",
    "Health",
    "JobOut",
    "JobSpec",
    "NodeOut",
    "QueueEntry",
    "SignInLink",
    "SiteOut",
    "TenantIn",
    "TenantOut",
    "TokenIn",
    "TokenOut",
    "Transition",
    "UsageOut",
    "WhoAmI",
    "clean_text",
]

MAX_COMMAND_BYTES = 64 * 1024
# The command and the environment together, counted as execve counts them (each string with its NUL and its
# pointer). Linux accepts at least 128 KiB (2 MiB with the usual 8 MiB stack); the rest is left for the
# variables the executor adds.
LAUNCH_BYTES = 96 * 1024
MAX_BATCH = 10_000
MIN_CHECKPOINT_S = 1.0
# Every job holds at least one CPU, as in Slurm: so the CPUs of a node bound how many jobs (and their supervisors)
# it runs at once, however small their GPU shares.
MIN_CPU_MILLI = 1000
YEAR_S = 366 * 24 * 3600.0


def clean_text(v: str) -> str:
    if "\x00" in v:
        raise ValueError("must not contain a NUL byte (\\u0000): no program can be given one")
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (it holds a lone surrogate, such as \\ud800)") from None
    return v


Text = Annotated[str, AfterValidator(clean_text)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
EnvName = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
EnvValue = Annotated[Text, StringConstraints(max_length=8192)]
UnixUser = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=r"^[a-z_][a-z0-9_.-]*[$]?$")]
JobState = Literal["submitted", "pending", "running", "completed", "failed", "cancelled", "rejected"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JobSpec(_Strict):
    """One job to run."""

    command: list[Annotated[Text, StringConstraints(max_length=MAX_COMMAND_BYTES)]] = Field(
        min_length=1, max_length=4096, description="The program and its arguments, run without a shell."
    )
    gpus: int = Field(1, ge=1, le=1_000_000, description="Whole GPUs (with gpu_milli < 1000: exactly 1).")
    gpu_milli: int = Field(1000, ge=1, le=1000, description="Thousandths of one GPU, for a fractional request.")
    tenant: Name | None = Field(None, description="Who pays; a tenant token may name only its own tenant.")
    name: Annotated[Text, StringConstraints(max_length=200)] = ""
    env: dict[EnvName, EnvValue] = Field(
        default_factory=dict,
        max_length=256,
        description="Extra environment. The job gets PATH, HOME, LANG and TMPDIR, then this, then "
        "CUDA_VISIBLE_DEVICES and GIGAFACTORY_*; nothing of the server's own environment.",
    )
    cpu_milli: int = Field(
        0, ge=0, le=10_000_000, description="CPU per node, in thousandths of a core; every job holds at least one core."
    )
    mem_mib: int = Field(0, ge=0, le=1 << 40, description="Memory per node in MiB (0: none).")
    models: list[Annotated[Text, StringConstraints(min_length=1, max_length=64)]] | None = Field(
        None, max_length=16, description="Allowed GPU models (none: any)."
    )
    locality: Literal["any", "pod", "domain"] = "any"
    estimate_s: float | None = Field(
        None,
        ge=1,
        le=YEAR_S,
        description="Its time limit in seconds (like Slurm's --time): backfill plans with it, and a job that runs "
        "past it is stopped.",
    )
    priority: int = Field(0, ge=-1_000_000, le=1_000_000)
    checkpoint_s: float | None = Field(
        None, ge=MIN_CHECKPOINT_S, le=YEAR_S, description="Checkpoint interval in seconds, if it checkpoints."
    )
    site: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = Field(
        None, description="Pin the job to this site of the network (default: the router chooses)."
    )
    countries: list[Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]] | None = Field(
        None,
        min_length=1,
        max_length=27,
        description="ISO codes of the EU member states the job may run in; its data goes nowhere else.",
    )
    reroute: bool = Field(False, description="After a site failure, may it move to another allowed site.")
    model: int | None = Field(
        None,
        ge=1,
        le=2**62,
        description="The AI Act desk's model it trains (yours): its GPU time goes into that model's ledger.",
    )
    purpose: Literal["pre-training", "further-training", "synthetic-data", "merge-or-init", "evaluation",
                     "red-teaming", "failed-experiment", "reward-model", "teacher"] = Field(
        "pre-training", description="What the job does for its model (only with model): only some purposes count."
    )  # fmt: skip
    award: int | None = Field(
        None, ge=1, le=2**62,
        description="The award it charges (default: the tenant's active award, the one that ends first, if it has "
        "any). A job does not start while its award is used up, expired or not yet valid.",
    )  # fmt: skip
    key: Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:-]+$")] | None = Field(
        None,
        description="The client's name for this submission. Sending the same key again (say, after a lost answer) "
        "returns the job it made instead of submitting a second one.",
    )

    @field_validator("site")
    @classmethod
    def _one_site(cls, v: str | None) -> str | None:
        if v is not None and not all(c.isalnum() or c in "._-" for c in v):
            raise ValueError(
                f"{v!r} is not a site name; name one site (to allow several, give their countries instead)"
            )
        return v

    @field_validator("command")
    @classmethod
    def _command_size(cls, v: list[str]) -> list[str]:
        if not v[0]:
            raise ValueError("the program (the first word) is empty")
        size = sum(len(a.encode()) + 1 for a in v)
        if size > MAX_COMMAND_BYTES:
            raise ValueError(f"is {size} bytes; at most {MAX_COMMAND_BYTES} are allowed")
        return v

    @model_validator(mode="after")
    def _fraction(self) -> JobSpec:
        if self.gpu_milli < 1000 and self.gpus != 1:
            raise ValueError(f"gpu_milli={self.gpu_milli} is a fraction of one GPU, so gpus must be 1, not {self.gpus}")
        size = launch_bytes(self.command, self.env)
        if size > LAUNCH_BYTES:
            raise ValueError(
                f"the command and env take {size:,} bytes as execve counts them; at most {LAUNCH_BYTES:,} are "
                f"allowed (put large inputs in a file the job reads)"
            )
        return self

    def fingerprint(self) -> str:
        """What was asked for, as a hash: a key sent again with a different job is a conflict, not a retry."""
        body = {name: getattr(self, name) for name in type(self).model_fields if name != "key"}
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def launch_bytes(command: list[str], env: dict[str, str]) -> int:
    """Bytes ``execve`` counts: each argument and ``NAME=value`` with its NUL, and a pointer to each."""
    return sum(len(a.encode()) + 9 for a in command) + sum(
        len(k.encode()) + len(v.encode()) + 10 for k, v in env.items()
    )


class Batch(_Strict):
    jobs: list[JobSpec] = Field(min_length=1, max_length=MAX_BATCH)


class BatchOut(BaseModel):
    ids: list[int]


LISTED_COMMAND_CHARS = 1024  # a listing shows this much of each command; the job itself shows it whole


class JobOut(BaseModel):
    id: int
    tenant: str
    name: str
    command: list[str]
    command_truncated: bool = Field(False, description="In a listing, a long command is cut; GET the job for all.")
    gpus: int
    gpu_milli: int
    locality: str
    state: JobState
    attempt: int
    reason: str
    submitted_at: float
    started_at: float | None
    ended_at: float | None
    exit_code: int | None
    est_start: float | None
    estimate_s: float | None
    priority: int
    nodes: list[str]
    nodelist: str = Field("", description="The same nodes in Slurm's hostlist notation, e.g. r[0000-0415]-n[00-17].")
    gpus_placed: list[list[int]]
    log_dir: str = Field("", description="The latest attempt's directory (stdout.log, stderr.log), once started.")
    key: str | None = Field(None, description="The submission key the client gave, if any.")
    site: str | None = Field(None, description="The site it was routed to; none until the daemon routes it.")
    sites: list[str] | None = Field(None, description="The sites it may run on (none: any).")
    countries: list[str] | None = Field(None, description="The countries it may run in (none: any).")
    reroute: bool = Field(False, description="Whether it may move to another allowed site if its own fails.")
    award: int | None = Field(None, description="The award it names, if any.")
    model: int | None = Field(None, description="The AI Act desk's model it trains, if any.")
    purpose: str | None = Field(None, description="What it does for that model.")
    charged_award: int | None = Field(None, description="The award its current or last attempt charges.")

    @classmethod
    def from_row(cls, row: Any, node_names: list[str], *, whole: bool = True) -> JobOut:
        # A waiting job holds no node, even when its last attempt (stopped, requeued) left its placement behind.
        pl = (row.placement or {}) if row.state != "pending" else {}
        command, cut = list(row.command), False
        if not whole and sum(len(a) for a in command) > LISTED_COMMAND_CHARS:
            command, cut = _cut(command, LISTED_COMMAND_CHARS), True
        nodes = [node_names[n] for n in pl.get("nodes", ())]
        return cls(
            id=row.id,
            tenant=row.tenant,
            name=row.name,
            command=command,
            command_truncated=cut,
            gpus=row.gpus,
            gpu_milli=row.gpu_milli,
            locality=row.locality,
            state=row.state,
            attempt=row.attempt,
            reason=row.reason,
            submitted_at=row.submitted_at,
            started_at=row.started_at,
            ended_at=row.ended_at,
            exit_code=row.exit_code,
            est_start=row.est_start,
            estimate_s=row.estimate_s,
            priority=row.priority,
            nodes=nodes,
            nodelist=compress(nodes),
            gpus_placed=[list(g) for g in pl.get("gpus", ())],
            log_dir=row.log_dir or "",
            key=row.client_key,
            site=row.site,
            sites=row.sites,
            countries=row.countries,
            reroute=bool(row.reroute),
            award=getattr(row, "award", None),
            model=getattr(row, "ai_model", None),
            purpose=getattr(row, "ai_purpose", None),
            charged_award=getattr(row, "charged_award", None),
        )


def _cut(command: list[str], budget: int) -> list[str]:
    out = []
    for arg in command:
        if len(arg) > budget:
            out.append(arg[:budget] + "…")
            break
        out.append(arg)
        budget -= len(arg)
    return out


class QueueEntry(BaseModel):
    position: int | None = Field(description="Place among waiting jobs (1 is next); none while running.")
    job: JobOut


class Transition(BaseModel):
    time: float
    attempt: int
    old: str | None
    new: str
    stimulus: str
    reason: str


class TenantIn(_Strict):
    """A tenant to create or change. On a change, a field not sent keeps its value."""

    share: float = Field(1.0, gt=0, le=1e9)
    parent: Name = "root"
    guarantee: int | None = Field(None, ge=0, le=10_000_000)
    limit: int | None = Field(None, ge=0, le=10_000_000)
    unix_user: UnixUser | None = Field(
        None, description="The account its jobs run as, when the control plane runs as root (none: a dynamic uid)."
    )
    max_jobs: int | None = Field(None, ge=1, le=100_000_000, description="Jobs submitted or waiting at most.")
    max_rate: float | None = Field(None, gt=0, le=1e9, description="Submissions per second at most, on average.")


class TenantOut(BaseModel):
    name: str
    parent: str
    share: float
    guarantee: int | None
    limit: int | None
    gpus_running: float
    gpu_hours: float
    jobs: dict[str, int]
    uid: int | None = None
    unix_user: str | None = None
    max_jobs: int | None = None
    max_rate: float | None = None


class UsageOut(BaseModel):
    since: float
    site: str | None = Field(None, description="The site it is limited to, if any.")
    gpu_hours: dict[str, float]


class SiteOut(BaseModel):
    name: str
    spec: str
    country: str | None
    gpus: int
    gpus_used: float
    gpus_asked: float = Field(description="GPUs the site's waiting jobs ask for.")
    load: float = Field(description="(GPUs used + asked) / GPUs: above 1, jobs wait.")
    jobs_running: int
    jobs_waiting: int
    nodes_down: int
    nodes_drained: int
    price_eur_mwh: float | None
    carbon_g_kwh: float | None
    pue: float | None


class TokenIn(_Strict):
    role: Literal["tenant", "admin", "reviewer"] = "tenant"
    tenant: Name | None = None
    name: Annotated[Text, StringConstraints(max_length=100)] = ""


class TokenOut(BaseModel):
    id: int
    role: str
    tenant: str | None
    name: str
    created_at: float
    revoked: bool
    token: str | None = Field(None, description="The secret itself: shown once, when created.")


class NodeOut(BaseModel):
    site: str
    index: int
    name: str
    model: str
    gpus: int
    gpus_used: float
    domain: int
    pod: int
    state: str
    reason: str


class Health(BaseModel):
    """Without a token: only that the service is up. With one: the daemon's heartbeat, the store, whether jobs run
    isolated, and job counts (a tenant sees its own)."""

    status: Literal["up", "ok", "degraded"]
    store: str | None = None
    daemon_heartbeat_age_s: float | None = None
    isolation: str | None = None
    containment: str | None = None
    jobs: dict[str, int] | None = None


class SignInLink(BaseModel):
    path: str = Field(description="Open this on the server once, within the expiry, to sign a browser in.")
    expires_at: float


class WhoAmI(BaseModel):
    role: str
    tenant: str | None
