"""The risk classifier for AI systems: answers to a versioned questionnaire in, the class and the duties out.

The order is the law's (``docs/desk.md``): prohibited practices (Art. 5), then high-risk by the Annex I product
route (Art. 6(1)) or an Annex III use (Art. 6(2)), where the Art. 6(3) derogation takes an Annex III system out
unless it profiles natural persons; transparency duties (Art. 50) are kept apart, and come on top of high-risk;
everything else is minimal. A system's class is never a model's GPAI status: that is the ledger's.

Answers (documented as a JSON Schema in ``docs/desk/answers.schema.json``, with an example per class)::

    {"questionnaire": "ai-act-system-risk", "version": "1", "calendar": "original",
     "answers": {"role": "provider", "practices": [], "annex_i_product": false, "annex_iii": ["4a"], ...}}

A missing answer, an answer to a question that does not apply, or answers that contradict each other are refused
with the question's id.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from gigafactory.core.errors import RequestError
from gigafactory.desk.law import ANNEX_III, ART_5, ART_50, CALENDARS, DEFAULT_CALENDAR

__all__ = ["QUESTIONNAIRE_VERSION", "classify", "questionnaire"]

QUESTIONNAIRE_VERSION = "1"
_FILE = f"questionnaire-v{QUESTIONNAIRE_VERSION}.json"
_CACHE: dict[str, Any] = {}

FINES = {  # Art. 99: the higher of the pair applies (for SMEs, the lower)
    "prohibited": "up to €35M or 7% of worldwide annual turnover (Art. 99(3))",
    "operator": "up to €15M or 3% of worldwide annual turnover (Art. 99(4))",
}


def questionnaire() -> dict[str, Any]:
    """The questionnaire, as shipped with the package (a versioned data file)."""
    if not _CACHE:
        _CACHE.update(json.loads(resources.files("gigafactory.desk").joinpath(_FILE).read_text(encoding="utf-8")))
    return _CACHE


def classify(doc: dict[str, Any], calendar: str | None = None) -> dict[str, Any]:
    """Classify the system the answers describe; ``calendar`` (``original`` | ``omnibus``) overrides the document's."""
    if not isinstance(doc, dict):
        raise RequestError("the answers must be a JSON object")
    q = questionnaire()
    if doc.get("questionnaire", q["questionnaire"]) != q["questionnaire"]:
        raise RequestError(f"questionnaire {doc.get('questionnaire')!r}: this desk answers {q['questionnaire']!r}")
    if str(doc.get("version", QUESTIONNAIRE_VERSION)) != QUESTIONNAIRE_VERSION:
        raise RequestError(f"version {doc.get('version')!r}: this desk's questionnaire is version "
                           f"{QUESTIONNAIRE_VERSION}")  # fmt: skip
    cal = calendar or doc.get("calendar") or DEFAULT_CALENDAR
    if cal not in CALENDARS:
        raise RequestError(f"calendar {cal!r}; allowed: {', '.join(CALENDARS)}")
    unknown_keys = sorted(set(doc) - {"questionnaire", "version", "calendar", "answers", "system"})
    if unknown_keys:
        raise RequestError(
            f"unknown key {unknown_keys[0]!r}; allowed: questionnaire, version, calendar, system, answers"
        )
    a = _check(doc.get("answers"), q)
    return _classify(a, cal, str(doc.get("system", "")))


def _check(answers: Any, q: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(answers, dict):
        raise RequestError("answers must be an object of question id -> answer")
    by_id = {x["id"]: x for x in q["questions"]}
    unknown = sorted(set(answers) - set(by_id))
    if unknown:
        raise RequestError(f"answers.{unknown[0]}: no such question; questions: {', '.join(by_id)}")
    for qid, value in answers.items():
        spec = by_id[qid]
        kind = spec["type"]
        if kind == "bool" and not isinstance(value, bool):
            raise RequestError(f"answers.{qid}: must be true or false ({spec['text']})")
        if kind == "choice" and value not in spec["options"]:
            raise RequestError(f"answers.{qid}: {value!r}; allowed: {', '.join(spec['options'])}")
        if kind == "multi":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise RequestError(f"answers.{qid}: must be a list (empty for none) of: {', '.join(spec['options'])}")
            bad = [v for v in value if v not in spec["options"]]
            if bad:
                raise RequestError(f"answers.{qid}: {bad[0]!r} is not an option; options: {', '.join(spec['options'])}")
            if len(set(value)) != len(value):
                raise RequestError(f"answers.{qid}: an option is given twice")
    for spec in q["questions"]:
        qid = spec["id"]
        needed = spec.get("required", False) or _holds(spec.get("required_if"), answers)
        if needed and qid not in answers:
            raise RequestError(f"answers.{qid}: missing ({spec['text']})")
        if not needed and qid in answers and "required_if" in spec:
            ((dep, want),) = spec["required_if"].items()
            raise RequestError(f"answers.{qid}: contradicts answers.{dep}: it applies only when {dep} "
                               f"{'is given' if want == '*' else 'includes ' + repr(want)}")  # fmt: skip
    if "f" in answers["practices"] and answers.get("emotion_medical_or_safety") and "1c" not in answers["annex_iii"]:
        raise RequestError("answers.annex_iii: contradicts answers.emotion_medical_or_safety: emotion recognition "
                           "for medical or safety reasons is still the Annex III use 1c; list it")  # fmt: skip
    if "h" in answers["practices"] and answers.get("realtime_rbi_authorised") and "1a" not in answers["annex_iii"]:
        raise RequestError("answers.annex_iii: contradicts answers.realtime_rbi_authorised: authorised real-time "
                           "remote biometric identification is the Annex III use 1a; list it")  # fmt: skip
    return answers


def _holds(cond: dict[str, Any] | None, answers: dict[str, Any]) -> bool:
    if not cond:
        return False
    ((dep, want),) = cond.items()
    have = answers.get(dep)
    if want == "*":
        return bool(have)
    if isinstance(have, list):
        return want in have
    return bool(have == want)


def _classify(a: dict[str, Any], cal: str, system: str) -> dict[str, Any]:
    dates = CALENDARS
    prohibited = []
    for p in a["practices"]:
        if p == "f" and a.get("emotion_medical_or_safety"):
            continue
        if p == "h" and a.get("realtime_rbi_authorised"):
            continue
        prohibited.append({"practice": p, "article": f"Art. 5(1)({p})", "text": ART_5[p]})
    routes: list[dict[str, Any]] = []
    if a["annex_i_product"] and a.get("third_party_assessment"):
        routes.append({"route": "annex-i", "article": "Art. 6(1), Annex I",
                       "why": "a product, or a safety component of one, under Annex I legislation that needs a "
                              "third-party conformity assessment"})  # fmt: skip
    points = [{"point": p, "area": ANNEX_III[p[0]][0], "use": ANNEX_III[p[0]][1][p]} for p in a["annex_iii"]]
    derogation = None
    if points:
        met = a.get("derogation", [])
        profiling = bool(a.get("profiling"))
        if met and not a.get("significant_risk") and not profiling:
            listed = ", ".join(f"6(3)({c})" for c in met)
            why = f"no significant risk, and it meets {listed}; it does not profile natural persons"
            derogation = {"applies": True, "conditions": [f"Art. 6(3)({c})" for c in met], "why": why}
        else:
            why = ("it profiles natural persons: always high-risk (Art. 6(3), last subparagraph)" if profiling and met
                   else "it poses a significant risk" if met else "no Art. 6(3) condition is met")  # fmt: skip
            derogation = {"applies": False, "conditions": [f"Art. 6(3)({c})" for c in met], "why": why}
            routes.append({"route": "annex-iii", "article": "Art. 6(2), Annex III", "points": points, "why": why})
    transparency: list[dict[str, str]] = []
    t = a["transparency"]
    for option, duty in (("interacts", "50(1)"), ("synthetic", "50(2)"),
                         ("emotion_or_biometric_categorisation", "50(3)"), ("deepfake", "50(4)"),
                         ("public_interest_text", "50(4)")):  # fmt: skip
        if option not in t:
            continue
        if option == "public_interest_text" and a.get("human_editorial_control"):
            continue  # Art. 50(4): text under human review or editorial control is exempt
        who, what = ART_50[duty]
        if duty == "50(4)":
            what = (
                "disclose that deepfake content was artificially generated or manipulated"
                if option == "deepfake"
                else "disclose that text published on matters of public interest was artificially generated"
            )
        entry = {"duty": f"Art. {duty}", "who": who, "what": what}
        if (
            option == "deepfake"
            and {"duty": "Art. 50(2)", "who": "provider", "what": ART_50["50(2)"][1]} not in transparency
        ):  # a deepfake is synthetic output: its provider marks it (50(2))
            transparency.append({"duty": "Art. 50(2)", "who": "provider", "what": ART_50["50(2)"][1]})
        if entry not in transparency:
            transparency.append(entry)
    risk_class = ("prohibited" if prohibited else "high-risk" if routes else "transparency" if transparency
                  else "minimal")  # fmt: skip
    role = a["role"]
    obligations = _obligations(role, risk_class, routes, derogation, transparency, a, cal)
    return {
        "system": system,
        "questionnaire": f"ai-act-system-risk v{QUESTIONNAIRE_VERSION}",
        "calendar": cal,
        "calendar_note": f"dates under the {cal} calendar; the other is "
        + ", ".join(f"{k}" for k in dates if k != cal)
        + " (choose with calendar)",
        "role": role,
        "risk_class": risk_class,
        "prohibited": prohibited,
        "high_risk": {"routes": routes, "annex_iii": points, "derogation": derogation},
        "transparency": transparency,
        "obligations": obligations,
        "note": "A system's class, not a model's: whether a model is a GPAI model, or one with systemic risk, is "
        "the compute ledger's question.",
    }


def _obligations(role: str, risk_class: str, routes: list[dict[str, Any]], derogation: dict[str, Any] | None,
                 transparency: list[dict[str, str]], a: dict[str, Any], cal: str) -> list[dict[str, Any]]:  # fmt: skip
    out: list[dict[str, Any]] = []

    def add(article: str, duty: str, when: str, fine: str | None = None) -> None:
        out.append({"article": article, "duty": duty, "applies_from": CALENDARS[cal][when].iso,
                    "dates": {k: v[when].iso for k, v in CALENDARS.items()}, "source": CALENDARS[cal][when].why,
                    **({"fine": FINES[fine]} if fine else {})})  # fmt: skip

    add("Art. 4", "AI literacy of the staff who deal with the system", "literacy")
    if risk_class == "prohibited":
        add("Art. 5", "it may not be placed on the market, put into service or used", "prohibitions", "prohibited")
        return out
    points = set(a["annex_iii"])
    for r in routes:
        when = r["route"]
        if role == "provider":
            add(
                "Art. 16",
                "the provider's obligations: meet Section 2's requirements, name and address on the system, "
                "keep documentation and logs, take corrective action",
                when,
                "operator",
            )
            add(
                "Arts. 9-15",
                "risk management, data governance, Annex IV technical documentation, logging, "
                "instructions for use, human oversight, accuracy, robustness and cybersecurity",
                when,
                "operator",
            )
            add("Art. 17", "a quality management system", when, "operator")
            add("Art. 43", "conformity assessment before placing on the market", when, "operator")
            add("Art. 47", "an EU declaration of conformity", when, "operator")
            add("Art. 48", "the CE marking", when, "operator")
            if when == "annex-iii":
                if points and all(p.startswith("2") for p in points):
                    add("Art. 49(5)", "registration at national level (critical infrastructure)", when, "operator")
                else:
                    add("Art. 49(1)", "registration in the EU database before placing on the market", when, "operator")
            add("Art. 72", "post-market monitoring", when, "operator")
            add(
                "Art. 73",
                "report serious incidents within 15 days of awareness (10 for a death, 2 for a "
                "widespread infringement or critical-infrastructure disruption)",
                when,
                "operator",
            )
        else:
            add("Art. 26", "use it as instructed, with competent human oversight; monitor it; keep its logs at least "
                "6 months", when, "operator")  # fmt: skip
            if when == "annex-iii":
                if any(p.startswith("4") for p in points):
                    add("Art. 26(7)", "inform workers' representatives and the workers affected before use at work",
                        when, "operator")  # fmt: skip
                add("Art. 26(11)", "inform the people it makes or helps make decisions about that it is used", when,
                    "operator")  # fmt: skip
                add("Art. 86", "explain, on request, its role in a decision with legal or similarly significant "
                    "effects on a person", when, "operator")  # fmt: skip
                if a.get("public_body"):
                    add("Art. 26(8), 49(3)", "a public body registers its use in the EU database before use", when,
                        "operator")  # fmt: skip
                # Art. 27(1): public bodies and private providers of public services (not for Annex III point 2),
                # and deployers of credit scoring and life and health insurance pricing.
                if (a.get("public_body") and any(not p.startswith("2") for p in points)) or {"5b", "5c"} & points:
                    add("Art. 27", "a fundamental-rights impact assessment before first use", when, "operator")
    if derogation is not None and derogation["applies"] and role == "provider":
        add(
            "Art. 6(4)",
            "document the assessment that it is not high-risk, before placing it on the market",
            "annex-iii",
            "operator",
        )
        add("Art. 49(2)", "register it in the EU database", "annex-iii", "operator")
    for t in transparency:
        if t["who"] == role:
            add(t["duty"], t["what"], "transparency", "operator")
    return out
