"""Documents from the ledger: an Annex XI technical-documentation skeleton for a GPAI model (Art. 53(1)(a)), with its
compute, training time and energy filled in, and a plain-language summary. Markdown, and HTML from it.

What the ledger knows is filled in; the rest is marked ``[to complete]`` for the provider, with the Annex's point."""

from __future__ import annotations

import html
import re
from typing import Any

from gigafactory.core.calendar import utc_date
from gigafactory.desk.thresholds import sig2

__all__ = ["annex_xi", "summary", "to_html"]

TODO = "[to complete]"


def _hours(s: float) -> str:
    return f"{s / 3600:,.1f} h ({s / 86_400:,.1f} days)"


def annex_xi(led: dict[str, Any]) -> str:
    led = {**led, "name": _md(led["name"]), "provider": _md(led.get("provider") or "")}
    counted = [r for r in led["runs"] if r["counts"] and not r["planned"]]
    lines = [
        f"# Technical documentation: {led['name']}",
        "",
        "Annex XI of Regulation (EU) 2024/1689, Section 1 (every GPAI provider, Art. 53(1)(a))"
        + (", and Section 2 (GPAI models with systemic risk, Art. 55)" if led["systemic_risk_foreseeable"] else "")
        + f". Provider: {led.get('provider') or TODO}. Filled in from the gigafactory compute ledger; the rest is "
        "the provider's to complete.",
        "",
        "## 1. General description of the model",
        "",
        f"- (a) Tasks the model is intended to perform, and the AI systems it can be integrated in: {TODO}",
        f"- (b) Acceptable use policies: {TODO}",
        f"- (c) Date of release and methods of distribution: {TODO}",
        f"- (d) Architecture and number of parameters: {TODO}",
        f"- (e) Modality and format of inputs and outputs: {'generative' if led['generative'] else 'not generative'}; "
        f"{TODO}",
        f"- (f) Licence: {TODO}",
        "",
        "## 2. Elements of the model and its development process",
        "",
        f"- (a) Technical means (instructions, infrastructure, tools) for integration: {TODO}",
        f"- (b) Design specifications and training process, methodologies and techniques: {TODO}",
        f"- (c) Training, testing and validation data: type, provenance, curation: {TODO}",
        f"- (d) **Computational resources used to train the model: {led['counted_flop_2sf']} FLOP** "
        f"(range {sig2(led['range_flop'][0])}–{sig2(led['range_flop'][1])}; {led['relies_on']} estimate, "
        "Commission guidelines C(2025) 5045, Annex A). "
        f"**Training time: {_hours(led.get('training_wall_s') or 0.0)}** of wall time, "
        f"{led.get('gpu_hours', 0.0):,.0f} GPU-hours.",
        f"- (e) **Energy consumption, estimated: {led.get('energy_mwh', 0.0):,.3f} MWh** (GPU-hours from the site's "
        "accounting × system power per GPU at full load × the site's PUE).",
        "",
        "### Compute by training run",
        "",
        "| run | purpose | counts | FLOP | method and assumptions |",
        "|---|---|---|---|---|",
    ]
    for r in led["runs"]:
        lines.append(f"| {r['label']} | {r['purpose']}{' (planned)' if r['planned'] else ''} | "
                     f"{'yes' if r['counts'] else 'no (excluded)'} | {r['flop_2sf']} | "
                     f"{r['method'] or '-'}: {r['assumptions']} |")  # fmt: skip
    if not counted:
        lines += ["", "No counted run has GPU time yet."]
    if led["systemic_risk_foreseeable"]:
        lines += [
            "",
            "## Section 2: GPAI models with systemic risk",
            "",
            f"- Evaluation strategies and results, including public or internal benchmarks: {TODO}",
            f"- Adversarial testing (red-teaming), model adaptations, alignment and fine-tuning: {TODO}",
            f"- System architecture: how software components build on or feed into each other: {TODO}",
            f"- Notification under Art. 52(1): {'recorded' if led.get('notified_at') else 'not recorded yet'}.",
        ]
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    """A tenant's free text, safe in Markdown that someone may render: no raw HTML, no table breaks."""
    return html.escape(text).replace("|", "\\|").replace("\n", " ")


def summary(led: dict[str, Any]) -> str:
    """The ledger in plain words, for the people who must sign."""
    led = {**led, "name": _md(led["name"])}
    s = [f"# {led['name']}: where it stands under the AI Act", ""]
    s.append(f"Training so far has used about {led['counted_flop_2sf']} floating-point operations (FLOP) that count, "
             f"by the {led['relies_on']} estimate.")  # fmt: skip
    s.append(
        "It is a general-purpose AI model (more than 10^23 FLOP, and it generates content)."
        if led["gpai"]
        else "It is not a general-purpose AI model by the indicative criterion: that takes more than 10^23 FLOP and "
        "a model that generates content."
    )
    if led["systemic_risk"]:
        s.append("It is presumed to have systemic risk: its training compute is greater than 10^25 FLOP.")
    elif led["systemic_risk_foreseeable"]:
        s.append("It is expected to pass 10^25 FLOP with the training in progress or planned: it will be presumed to "
                 "have systemic risk.")  # fmt: skip
    else:
        s.append(f"It is {sig2(led['distance_to_systemic_flop'])} FLOP short of the 10^25 FLOP that presumes systemic "
                 "risk.")  # fmt: skip
    clock = led.get("clock")
    if clock:
        s.append(f"The Commission must be notified within two weeks: the deadline is "
                 f"{utc_date(clock['due_at'])}{' (overdue)' if clock['overdue'] else ''}.")  # fmt: skip
    elif led.get("notified_at"):
        s.append(f"The Commission was notified on {utc_date(led['notified_at'])}.")
    excluded = [r for r in led["runs"] if not r["counts"]]
    if excluded:
        s.append(f"{len(excluded)} run(s) for evaluation, red-teaming or other excluded purposes are not counted.")
    return s[0] + "\n\n" + " ".join(s[2:]) + "\n"


def to_html(markdown: str, title: str) -> str:
    """A small Markdown subset (headings, lists, tables, bold, paragraphs) as a standalone HTML page."""
    out = [f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>",
           "<style>body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;"
           "color:#1f2933}table{border-collapse:collapse}td,th{border:1px solid #cbd2d9;padding:.25rem .5rem;"
           "text-align:left}</style></head><body>"]  # fmt: skip
    in_list = in_table = False
    for line in markdown.splitlines():
        text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", html.escape(line))
        if in_list and not line.startswith("- "):
            out.append("</ul>")
            in_list = False
        if in_table and not line.startswith("|"):
            out.append("</table>")
            in_table = False
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{text.lstrip('#').strip()}</h{level}>")
        elif line.startswith("- "):
            if not in_list:
                out.append("<ul>")
                in_list = True
            out.append(f"<li>{text[2:]}</li>")
        elif line.startswith("|"):
            cells = [c.strip() for c in text.strip("|").split("|")]
            if set("".join(cells)) <= {"-"}:
                continue
            tag = "th" if not in_table else "td"
            if not in_table:
                out.append("<table>")
                in_table = True
            out.append("<tr>" + "".join(f"<{tag}>{c}</{tag}>" for c in cells) + "</tr>")
        elif line.strip():
            out.append(f"<p>{text}</p>")
    out.append("</ul>" if in_list else "")
    out.append("</table>" if in_table else "")
    out.append("</body></html>")
    return "\n".join(x for x in out if x) + "\n"
