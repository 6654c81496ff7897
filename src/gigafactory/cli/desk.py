"""``gigafactory desk``: the AI Act desk's rules from the command line (docs/desk.md).

``thresholds`` and ``modification`` are a stable machine interface (``--json``) for the two rules tools most often get
wrong; ``classify`` reads questionnaire answers (JSON) and prints the system's class and duties.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from gigafactory.cli.control import DEFAULT_URL, Token, Url, _client, _table, _when
from gigafactory.cli.output import console, user_errors
from gigafactory.core.errors import ConfigError

__all__ = ["desk_app"]

F = TypeVar("F", bound=Callable[..., None])

desk_app = typer.Typer(help="The AI Act desk: GPAI thresholds, modifications, compute estimates, risk classes.",
                       no_args_is_help=True)  # fmt: skip


def _cmd(name: str) -> Callable[[F], F]:
    def wrap(func: F) -> F:
        desk_app.command(name)(user_errors(func))
        return func

    return wrap


def _emit(data: dict[str, Any], as_json: bool, lines: list[str]) -> None:
    if as_json:
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        for line in lines:
            console.print(line, markup=False, highlight=False)


@_cmd("thresholds")
def thresholds_cmd(
    flop: Annotated[float, typer.Option(help="cumulative training compute that counts, in FLOP (e.g. 2.3e25)")],
    generative: Annotated[
        bool, typer.Option("--generative", help="the model generates text, code, speech, images or video")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON: gpai, systemic_risk and their rules")] = False,
) -> None:
    """Is a model a GPAI model (> 10^23 FLOP and generative), and one with systemic risk (> 10^25 FLOP)?"""
    from gigafactory.desk.thresholds import sig2, thresholds

    v = thresholds(flop, generative)
    data = {"flop": flop, "flop_2sf": sig2(flop), "generative": generative, "gpai": v["gpai"].value,
            "gpai_rule": v["gpai"].rule, "systemic_risk": v["systemic_risk"].value,
            "systemic_risk_rule": v["systemic_risk"].rule}  # fmt: skip
    _emit(
        data,
        as_json,
        [
            f"GPAI model: {'yes' if data['gpai'] else 'no'} ({data['gpai_rule']})",
            f"systemic risk: {'yes' if data['systemic_risk'] else 'no'} ({data['systemic_risk_rule']})",
        ],
    )


@_cmd("modification")
def modification_cmd(
    added_flop: Annotated[float, typer.Option(help="the modification's training compute, in FLOP")],
    original_flop: Annotated[float | None, typer.Option(help="the original model's training compute, if known")] = None,
    original_systemic: Annotated[
        bool, typer.Option("--original-systemic", help="the original (compute unknown) has systemic risk")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON: new_model and the threshold used")] = False,
) -> None:
    """Does a modification make its author the provider of a new model (more than a third of the original)?"""
    from gigafactory.desk.thresholds import modification

    if original_flop is not None and original_systemic:
        raise ConfigError("give --original-flop or --original-systemic, not both (the first is used when known)")
    data = modification(added_flop, original_flop, original_systemic)
    _emit(data, as_json, [f"new model: {'yes' if data['new_model'] else 'no'} ({data['rule']})"])


@_cmd("estimate")
def estimate_cmd(
    gpu_hours: Annotated[list[str] | None, typer.Option(help="MODEL=HOURS, e.g. H100=5.6e6; repeat")] = None,
    mfu: Annotated[str, typer.Option(help="utilisation range for the hardware estimate, e.g. 0.35-0.45")] = "0.35-0.45",
    parameters: Annotated[float | None, typer.Option(help="parameters, for 6 · N · D")] = None,
    tokens: Annotated[float | None, typer.Option(help="training tokens, for 6 · N · D")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Training compute by the hardware estimate (GPU-hours × peak × utilisation) or 6 · parameters · tokens."""
    from gigafactory.desk.compute import architecture_estimate, hardware_estimate
    from gigafactory.desk.thresholds import sig2

    out = []
    if gpu_hours:
        secs: dict[str, float] = {}
        for item in gpu_hours:
            model, _, hours = item.partition("=")
            try:
                secs[model.strip()] = secs.get(model.strip(), 0.0) + float(hours) * 3600
            except ValueError:
                raise ConfigError(f"--gpu-hours {item!r}: write MODEL=HOURS, e.g. H100=5.6e6") from None
        lo, _, hi = mfu.partition("-")
        try:
            rng = (float(lo), float(hi or lo))
        except ValueError:
            raise ConfigError(f"--mfu {mfu!r}: a range like 0.35-0.45, or one value") from None
        out.append(hardware_estimate(secs, rng))
    if parameters is not None or tokens is not None:
        if parameters is None or tokens is None:
            raise ConfigError("the architecture estimate needs both --parameters and --tokens")
        out.append(architecture_estimate(parameters, tokens))
    if not out:
        raise ConfigError("give --gpu-hours MODEL=HOURS (hardware) or --parameters and --tokens (architecture)")
    data = [{"method": e.method, "flop": e.flop, "flop_2sf": sig2(e.flop), "low": e.low, "high": e.high,
             "uncertainty": round(e.uncertainty, 4), "assumptions": e.assumptions} for e in out]  # fmt: skip
    _emit(
        {"estimates": data},
        as_json,
        [f"{d['method']}: {d['flop_2sf']} FLOP (±{d['uncertainty']:.0%}; {d['assumptions']})" for d in data],
    )


@_cmd("classify")
def classify_cmd(
    answers: Annotated[Path, typer.Argument(help="answers as JSON (docs/desk/answers.schema.json); - for stdin")],
    calendar: Annotated[
        str | None, typer.Option(help="original | omnibus [default: the file's, else original]")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Classify an AI system from questionnaire answers: prohibited, high-risk, transparency or minimal, with the
    duties of your role and when each applies."""
    from gigafactory.desk.classify import classify

    try:
        text = sys.stdin.read() if str(answers) == "-" else answers.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{answers}: cannot read it ({exc.strerror})") from exc
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{answers}: not valid JSON: {exc}") from exc
    r = classify(doc, calendar)
    lines = [f"risk class: {r['risk_class']} ({r['role']}; {r['calendar_note']})"]
    lines += [f"  prohibited: {p['article']}: {p['text']}" for p in r["prohibited"]]
    lines += [f"  high-risk: {x['article']}: {x['why']}" for x in r["high_risk"]["routes"]]
    if r["high_risk"]["derogation"] and r["high_risk"]["derogation"]["applies"]:
        lines.append(f"  not high-risk under Art. 6(3): {r['high_risk']['derogation']['why']}")
    lines += [f"  transparency: {t['duty']} ({t['who']}): {t['what']}" for t in r["transparency"]]
    lines.append("duties:")
    lines += [f"  {o['applies_from']}  {o['article']}: {o['duty']}" for o in r["obligations"]]
    _emit(r, as_json, lines)


@_cmd("questionnaire")
def questionnaire_cmd() -> None:
    """Print the questionnaire (JSON): every question, its type, options and article."""
    from gigafactory.desk.classify import questionnaire

    typer.echo(json.dumps(questionnaire(), indent=2, ensure_ascii=False))


# ---- the ledger, over the API ------------------------------------------------------------------------------------
@_cmd("models")
def models_cmd(url: Url = DEFAULT_URL, token: Token = None) -> None:
    """Your models (an admin: every tenant's)."""
    with _client(url, token) as c:
        rows = c.request("GET", "/desk/models")
    t = _table("ID", "TENANT", "MODEL", "PROVIDER", "GENERATIVE", "MODIFIES", "NOTIFIED")
    for m in rows:
        t.add_row(str(m["id"]), m["tenant"], m["name"], m["provider"], "yes" if m["generative"] else "no",
                  m["modifies"] or "", _when(m["notified_at"]) if m["notified_at"] else "")  # fmt: skip
    console.print(t)


@_cmd("model-add")
def model_add_cmd(
    name: Annotated[str, typer.Argument(help="the model's name")],
    provider: Annotated[str, typer.Option(help="who provides it (places it on the market)")],
    generative: Annotated[bool, typer.Option("--generative", help="it generates text, code, speech or media")] = False,
    modifies: Annotated[str | None, typer.Option(help="the original model, for a modification")] = None,
    original_flop: Annotated[float | None, typer.Option(help="the original's training compute, if known")] = None,
    original_systemic: Annotated[
        bool, typer.Option("--original-systemic", help="the original has systemic risk")
    ] = False,
    tenant: Annotated[str | None, typer.Option(help="whose model (an admin must say)")] = None,
    url: Url = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Add a model to the ledger; prints its id."""
    body: dict[str, Any] = {"name": name, "provider": provider, "generative": generative,
                            "original_systemic": original_systemic}  # fmt: skip
    for k, v in (("modifies", modifies), ("original_flop", original_flop), ("tenant", tenant)):
        if v is not None:
            body[k] = v
    with _client(url, token) as c:
        console.print(c.request("POST", "/desk/models", json=body)["id"])


@_cmd("run-add")
def run_add_cmd(
    model: Annotated[int, typer.Argument(help="the model's id")],
    purpose: Annotated[
        str,
        typer.Option(
            help="pre-training | further-training | synthetic-data | merge-or-init | "
            "evaluation | red-teaming | failed-experiment | reward-model | teacher"
        ),
    ],
    job: Annotated[list[int] | None, typer.Option(help="a job of the run; repeat")] = None,
    planned: Annotated[list[str] | None, typer.Option(help="planned GPU-hours, MODEL=HOURS (a dry run)")] = None,
    parameters: Annotated[float | None, typer.Option(help="declared parameters")] = None,
    tokens: Annotated[float | None, typer.Option(help="declared training tokens")] = None,
    mfu: Annotated[str, typer.Option(help="utilisation range, e.g. 0.35-0.45")] = "0.35-0.45",
    url: Url = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Add a training run to a model's ledger: its jobs, a plan, or a declared size. Prints its id."""
    lo, _, hi = mfu.partition("-")
    try:
        plan = {m: float(h) for m, _, h in (p.partition("=") for p in planned or [])}
        body: dict[str, Any] = {"purpose": purpose, "jobs": job or [], "mfu": [float(lo), float(hi or lo)],
                                "planned_gpu_hours": plan}  # fmt: skip
    except ValueError:
        raise ConfigError("--mfu is a range like 0.35-0.45, and --planned MODEL=HOURS (e.g. H100=8e6)") from None
    for k, v in (("parameters", parameters), ("tokens", tokens)):
        if v is not None:
            body[k] = v
    with _client(url, token) as c:
        console.print(c.request("POST", f"/desk/models/{model}/runs", json=body)["id"])


@_cmd("ledger")
def ledger_cmd(
    model: Annotated[int, typer.Argument(help="the model's id")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
    url: Url = DEFAULT_URL,
    token: Token = None,
) -> None:
    """A model's compute ledger: runs, what counts, thresholds, the notification clock and its draft."""
    with _client(url, token) as c:
        led = c.request("GET", f"/desk/models/{model}")
    if as_json:
        typer.echo(json.dumps(led, indent=2, ensure_ascii=False))
        return
    lines = [f"{led['name']} ({led['provider']}): {led['counted_flop_2sf']} FLOP counted, by the {led['relies_on']} "
             f"estimate; {led['gpu_hours']:,.1f} GPU-hours, {led['energy_mwh']:,.3f} MWh",
             f"  GPAI model: {'yes' if led['gpai'] else 'no'} ({led['gpai_rule']})",
             f"  systemic risk: {'yes' if led['systemic_risk'] else 'no'} ({led['systemic_risk_rule']})"
             + ("; foreseeable with the runs in progress or planned" if led["systemic_risk_foreseeable"]
                and not led["systemic_risk"] else "")]  # fmt: skip
    for r in led["runs"]:
        tag = (" (planned)" if r["planned"] else "") + ("" if r["counts"] else " (not counted)")
        lines.append(f"  {r['label']} {r['purpose']}{tag}: {r['flop_2sf']} FLOP ({r['method'] or '-'}: "
                     f"{r['assumptions']})")  # fmt: skip
    if led.get("modification"):
        lines.append(f"  modification: {'a new model' if led['modification']['new_model'] else 'not a new model'} "
                     f"({led['modification']['rule']})")  # fmt: skip
    if led.get("notified_at"):
        lines.append(f"  notified (Art. 52(1)) {_when(led['notified_at'])}: "
                     + "; ".join((led.get("notification_note") or "").splitlines()))  # fmt: skip
    if led["clock"]:
        c_ = led["clock"]
        lines.append(f"  NOTIFY (Art. 52(1)) by {_when(c_['due_at'])}{' - OVERDUE' if c_['overdue'] else ''}: "
                     f"10^25 FLOP {c_['why']} since {_when(c_['opened_at'])}")  # fmt: skip
    if led["draft"] and not led.get("notified_at"):
        lines += ["", led["draft"]]
    _emit(led, False, lines)


@_cmd("notified")
def notified_cmd(
    model: Annotated[int, typer.Argument(help="the model's id")],
    note: Annotated[str, typer.Option(help="e.g. the reference of the notification")] = "",
    url: Url = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Record that the Commission was notified (Art. 52(1)): the model's clock closes."""
    with _client(url, token) as c:
        c.request("POST", f"/desk/models/{model}/notified", json={"note": note})
    console.print(f"model {model}: notification recorded")


@_cmd("document")
def document_cmd(
    model: Annotated[int, typer.Argument(help="the model's id")],
    kind: Annotated[str, typer.Option(help="annex-xi | summary")] = "annex-xi",
    html: Annotated[bool, typer.Option("--html", help="HTML instead of Markdown")] = False,
    out: Annotated[Path | None, typer.Option(help="write it here [default: print it]")] = None,
    url: Url = DEFAULT_URL,
    token: Token = None,
) -> None:
    """The Annex XI technical-documentation skeleton (compute, time and energy filled in), or a plain summary."""
    if kind not in ("annex-xi", "summary"):
        raise ConfigError(f"--kind {kind!r}: annex-xi or summary")
    with _client(url, token) as c:
        text = c.request("GET", f"/desk/models/{model}/{kind}", params={"format": "html" if html else "md"})
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        console.print(f"wrote {out}")


@_cmd("dry-run")
def dry_run_cmd(
    model: Annotated[int, typer.Argument(help="the model's id")],
    site: Annotated[str, typer.Option(help="the site preset to run it on, e.g. gb200-nvl72:racks=120")],
    gpus: Annotated[int, typer.Option(help="GPUs the run holds")],
    hours: Annotated[float, typer.Option(help="hours of work (without failures)")],
    failures: Annotated[str, typer.Option(help="failure model: none, llama3, rsc1")] = "llama3",
    ckpt: Annotated[str, typer.Option(help="checkpoints: young-daly, none, or minutes of work")] = "young-daly",
    write_s: Annotated[float, typer.Option(help="seconds a checkpoint write takes (an assumption)", min=0)] = 60.0,
    restart_s: Annotated[float, typer.Option(help="seconds a restart takes (an assumption)", min=0)] = 300.0,
    purpose: Annotated[str, typer.Option(help="what the run is for")] = "pre-training",
    mfu: Annotated[str, typer.Option(help="utilisation range, e.g. 0.35-0.45")] = "0.35-0.45",
    seed: Annotated[int, typer.Option(help="the twin's seed", min=0)] = 1,
    url: Url = DEFAULT_URL,
    token: Token = None,
) -> None:
    """A planned run, estimated by a dry run through the twin: the run on the site, with failures, restarts and
    checkpoints; its GPU-hours (lost work included) go into the ledger as a planned run. Prints the run's id."""
    from gigafactory.core.presets import build_site
    from gigafactory.twin.experiment import Experiment, run_one

    topo = build_site(site)
    models = sorted({topo.models[int(i)] for i in topo.node_model})
    if len(models) != 1:
        raise ConfigError(f"site {site} mixes GPU models ({', '.join(models)}); a dry run takes one")
    days = max(hours / 24 * 3, 1.0)  # room for failures and restarts
    work = f"single:gpus={gpus},hours={hours:g},ckpt={ckpt},write_s={write_s:g},restart_s={restart_s:g}"
    exp = Experiment(site=site, workload=work, days=days,
                     failures=failures, policy="fifo+none+topology")  # fmt: skip
    exp.check()
    s = run_one(exp, seed, keep_log=False).summary
    if not s.get("completed"):
        raise ConfigError(f"the dry run did not finish within {days:g} days (gpu_hours {s.get('gpu_hours')}); "
                          "give fewer hours, more GPUs, or a site that can hold it")  # fmt: skip
    gpu_h = float(s["gpu_hours"])
    lo, _, hi = mfu.partition("-")
    try:
        rng = [float(lo), float(hi or lo)]
    except ValueError:
        raise ConfigError(f"--mfu {mfu!r}: a range like 0.35-0.45") from None
    note = (f"dry run through the twin: {gpus} GPUs × {hours:g} h of work on {site}, failures {failures}, "
            f"checkpoints {ckpt}, seed {seed}: {gpu_h:,.0f} GPU-hours over {s['makespan_s'] / 3600:,.1f} h of wall "
            f"time (ETTR {s.get('ettr')})")  # fmt: skip
    body = {"purpose": purpose, "planned_gpu_hours": {models[0]: gpu_h}, "mfu": rng, "note": note}
    with _client(url, token) as c:
        rid = c.request("POST", f"/desk/models/{model}/runs", json=body)["id"]
    console.print(note, markup=False, highlight=False)
    console.print(rid)
