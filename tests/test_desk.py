"""The AI Act desk against the text of the law: table-driven cases, one per rule (docs/desk.md)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gigafactory.core.errors import RequestError
from gigafactory.desk.classify import classify, questionnaire
from gigafactory.desk.compute import COUNTED, Purpose, architecture_estimate, cumulative, hardware_estimate
from gigafactory.desk.law import ANNEX_III, ART_5, CALENDARS
from gigafactory.desk.thresholds import modification, notify_by, sig2, thresholds

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("flop", "generative", "gpai", "systemic"),
    [
        (1e25, True, True, False),  # exactly 10^25 is not "greater than" (Art. 51(2))
        (1.0000001e25, True, True, True),
        (1e23, True, False, False),  # exactly 10^23 is not above the indicative criterion
        (1.01e23, True, True, False),
        (5e24, False, False, False),  # a narrow model is no GPAI model, whatever its compute
        (2e25, False, False, True),  # systemic risk is about compute; the GPAI criterion also wants generation
        (0, True, False, False),
    ],
)
def test_thresholds(flop: float, generative: bool, gpai: bool, systemic: bool) -> None:
    v = thresholds(flop, generative)
    assert (v["gpai"].value, v["systemic_risk"].value) == (gpai, systemic)
    assert "Art. 51(2)" in v["systemic_risk"].rule


@pytest.mark.parametrize(
    ("added", "original", "systemic_original", "new", "threshold"),
    [
        (0.34e25, 1e25, False, True, 1e25 / 3),  # 34% of the original: a new model
        (0.33e25, 1e25, False, False, 1e25 / 3),  # 33%: not
        (3.4e24, None, True, True, 1e25 / 3),  # unknown original with systemic risk: ⅓ × 10^25
        (3.3e24, None, True, False, 1e25 / 3),
        (3.4e22, None, False, True, 1e23 / 3),  # unknown original: ⅓ × 10^23
        (3.3e22, None, False, False, 1e23 / 3),
    ],
)
def test_modification(
    added: float, original: float | None, systemic_original: bool, new: bool, threshold: float
) -> None:
    r = modification(added, original, systemic_original)
    assert r["new_model"] is new and r["threshold_flop"] == pytest.approx(threshold)


def test_the_notification_clock_is_two_weeks_and_the_figure_two_significant_figures() -> None:
    met = 1_790_000_000.0
    assert notify_by(met) - met == 14 * 86_400
    assert [sig2(x) for x in (2.34e25, 9.96e24, 1e25, 1.05e23)] == ["2.3×10^25", "1.0×10^25", "1.0×10^25", "1.1×10^23"]


def test_bad_compute_is_refused() -> None:
    for bad in (-1.0, float("nan"), float("inf"), 1e40):
        with pytest.raises(RequestError, match="flop"):
            thresholds(bad, True)
    with pytest.raises(RequestError, match="peak FLOP/s is not known"):
        hardware_estimate({"T4": 3600.0})
    with pytest.raises(RequestError, match="tokens"):
        architecture_estimate(7e9, -1)
    with pytest.raises(RequestError, match="parameters"):
        architecture_estimate(1e20, 1e12)


def test_estimates() -> None:
    # The guidelines' rough scale: 10^25 FLOP is about 5.6M H100-hours at 50% utilisation.
    e = hardware_estimate({"H100": 5.62e6 * 3600}, (0.5, 0.5))
    assert e.flop == pytest.approx(1e25, rel=0.01) and e.method == "hardware"
    r = hardware_estimate({"H100": 1e6 * 3600}, (0.35, 0.45))
    assert r.low < r.flop < r.high and r.uncertainty == pytest.approx(0.125)
    a = architecture_estimate(7e9, 2e12)
    assert a.flop == 6 * 7e9 * 2e12 and a.uncertainty == pytest.approx(0.3)


def test_excluded_purposes_do_not_count() -> None:
    for p in Purpose:
        assert cumulative([(p, 1e24)]) == (1e24 if p in COUNTED else 0.0)
    assert {p.value for p in COUNTED} == {"pre-training", "further-training", "synthetic-data", "merge-or-init"}


@given(st.lists(st.tuples(st.sampled_from(list(Purpose)), st.floats(0, 1e26))))
def test_the_cumulative_compute_never_counts_an_excluded_purpose(runs: list[tuple[Purpose, float]]) -> None:
    counted = [(p, f) for p, f in runs if p.counts]
    assert cumulative(runs) == cumulative(counted)
    assert cumulative(runs) == pytest.approx(sum(f for _, f in counted))
    assert cumulative([(p, f) for p, f in runs if not p.counts]) == 0.0


# ---- the risk classifier ---------------------------------------------------------------------------------------
def doc(**answers: Any) -> dict[str, Any]:
    base = {"role": "provider", "practices": [], "annex_i_product": False, "annex_iii": [], "transparency": []}
    return {"questionnaire": "ai-act-system-risk", "version": "1", "answers": {**base, **answers}}


@pytest.mark.parametrize("practice", sorted(ART_5))
def test_every_art_5_practice_is_prohibited(practice: str) -> None:
    extra: dict[str, Any] = {"f": {"emotion_medical_or_safety": False}, "h": {"realtime_rbi_authorised": False}}
    r = classify(doc(practices=[practice], **extra.get(practice, {})))
    assert r["risk_class"] == "prohibited"
    assert r["prohibited"] == [{"practice": practice, "article": f"Art. 5(1)({practice})", "text": ART_5[practice]}]
    assert any(o["article"] == "Art. 5" and "35M" in o["fine"] for o in r["obligations"])


def test_art_5_exceptions() -> None:
    # For medical or safety reasons it is not prohibited, but it is still emotion recognition: Annex III 1c.
    safety = classify(doc(practices=["f"], emotion_medical_or_safety=True, annex_iii=["1c"], derogation=[],
                          profiling=False))  # fmt: skip
    assert safety["risk_class"] == "high-risk" and not safety["prohibited"]
    with pytest.raises(RequestError, match=r"answers\.annex_iii: contradicts answers\.emotion_medical_or_safety"):
        classify(doc(practices=["f"], emotion_medical_or_safety=True))
    r = classify(doc(practices=["h"], realtime_rbi_authorised=True, annex_iii=["1a"], derogation=[], profiling=False))
    assert r["risk_class"] == "high-risk"  # authorised: not prohibited, but remote biometric identification
    with pytest.raises(RequestError, match=r"answers\.annex_iii"):
        classify(doc(practices=["h"], realtime_rbi_authorised=True))


@pytest.mark.parametrize("point", sorted(p for _, (_, pts) in ANNEX_III.items() for p in pts))
def test_every_annex_iii_point_is_high_risk_without_the_derogation(point: str) -> None:
    r = classify(doc(annex_iii=[point], derogation=[], profiling=False))
    assert r["risk_class"] == "high-risk"
    assert r["high_risk"]["routes"][0]["article"] == "Art. 6(2), Annex III"
    assert r["high_risk"]["annex_iii"][0]["area"] == ANNEX_III[point[0]][0]


def test_every_annex_iii_area_is_covered() -> None:
    assert sorted(ANNEX_III) == [str(i) for i in range(1, 9)]


@pytest.mark.parametrize("condition", ["a", "b", "c", "d"])
def test_the_6_3_derogation_and_its_profiling_exception(condition: str) -> None:
    out = classify(doc(annex_iii=["4a"], derogation=[condition], significant_risk=False, profiling=False))
    assert out["risk_class"] == "minimal" and out["high_risk"]["derogation"]["applies"]
    assert {o["article"] for o in out["obligations"]} >= {"Art. 6(4)", "Art. 49(2)"}  # documented and registered
    profiled = classify(doc(annex_iii=["4a"], derogation=[condition], significant_risk=False, profiling=True))
    assert (
        profiled["risk_class"] == "high-risk"
        and "profiles natural persons" in profiled["high_risk"]["derogation"]["why"]
    )
    risky = classify(doc(annex_iii=["4a"], derogation=[condition], significant_risk=True, profiling=False))
    assert risky["risk_class"] == "high-risk"


def test_annex_i_needs_third_party_assessment() -> None:
    assert classify(doc(annex_i_product=True, third_party_assessment=True))["risk_class"] == "high-risk"
    assert classify(doc(annex_i_product=True, third_party_assessment=False))["risk_class"] == "minimal"


def test_art_50_comes_on_top_of_high_risk_and_is_kept_apart() -> None:
    r = classify(doc(annex_iii=["5b"], derogation=[], profiling=True, transparency=["interacts", "synthetic"]))
    assert r["risk_class"] == "high-risk"
    assert [t["duty"] for t in r["transparency"]] == ["Art. 50(1)", "Art. 50(2)"]
    only = classify(doc(transparency=["interacts"]))
    assert only["risk_class"] == "transparency"
    text = classify(doc(role="deployer", public_body=False, transparency=["public_interest_text"],
                        human_editorial_control=True))  # fmt: skip
    assert text["risk_class"] == "minimal"  # Art. 50(4): under editorial control, the text is exempt
    fake = classify(doc(role="deployer", public_body=False, transparency=["deepfake"]))
    assert [o["article"] for o in fake["obligations"]] == ["Art. 4", "Art. 50(4)"]


def test_duties_by_role_under_both_calendars() -> None:
    provider = classify(doc(annex_iii=["5b"], derogation=[], profiling=True))
    deployer = classify(doc(role="deployer", public_body=False, annex_iii=["5b"], derogation=[], profiling=True))
    assert "Art. 43" in {o["article"] for o in provider["obligations"]}
    assert {o["article"] for o in deployer["obligations"]} == {"Art. 4", "Art. 26", "Art. 26(11)", "Art. 86",
                                                               "Art. 27"}  # credit scoring: a FRIA  # fmt: skip
    art26 = next(o for o in deployer["obligations"] if o["article"] == "Art. 26")
    assert art26["applies_from"] == "2026-08-02" and art26["dates"] == {
        "original": "2026-08-02",
        "omnibus": "2027-12-02",
    }
    late = classify(doc(annex_i_product=True, third_party_assessment=True), calendar="omnibus")
    assert late["calendar"] == "omnibus"
    assert {o["applies_from"] for o in late["obligations"] if o["article"] == "Art. 43"} == {"2028-08-02"}
    assert CALENDARS["original"]["annex-i"].iso == "2027-08-02"


@pytest.mark.parametrize(
    ("answers", "names"),
    [
        ({"practices": ["f"]}, "answers.emotion_medical_or_safety: missing"),
        ({"annex_iii": ["4a"]}, "answers.derogation: missing"),
        ({"annex_iii": [], "derogation": ["a"]}, "answers.derogation: contradicts answers.annex_iii"),
        ({"annex_i_product": False, "third_party_assessment": True}, "answers.third_party_assessment: contradicts"),
        ({"practices": ["z"]}, "answers.practices: 'z' is not an option"),
        ({"annex_i_product": "yes"}, "answers.annex_i_product: must be true or false"),
        ({"bogus": 1}, "answers.bogus: no such question"),
        ({"role": "user"}, "answers.role: 'user'; allowed: provider, deployer"),
    ],
)
def test_bad_answers_name_the_question(answers: dict[str, Any], names: str) -> None:
    with pytest.raises(RequestError, match=re.escape(names)):
        classify(doc(**answers))
    d = doc()
    del d["answers"]["transparency"]
    with pytest.raises(RequestError, match=r"answers\.transparency: missing"):
        classify(d)


def test_the_schema_and_an_example_for_each_class() -> None:
    schema = json.loads((REPO / "docs/desk/answers.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    # The schema is the questionnaire's: every question, and only those.
    assert set(schema["properties"]["answers"]["properties"]) == {q["id"] for q in questionnaire()["questions"]}
    expected = {"prohibited": "prohibited", "high-risk-annex-i": "high-risk", "high-risk-annex-iii": "high-risk",
                "not-high-risk-6-3": "minimal", "transparency": "transparency", "minimal": "minimal"}  # fmt: skip
    for name, cls in expected.items():
        example = json.loads((REPO / f"examples/desk/{name}.json").read_text())
        jsonschema.validate(example, schema)
        assert classify(example)["risk_class"] == cls, name


def test_the_machine_interface() -> None:
    from typer.testing import CliRunner

    from gigafactory.cli.app import app

    run = CliRunner().invoke
    r = run(app, ["desk", "thresholds", "--flop", "1e25", "--generative", "--json"])
    out = json.loads(r.stdout)
    assert r.exit_code == 0 and out["gpai"] is True and out["systemic_risk"] is False
    assert "Art. 51(2)" in out["systemic_risk_rule"] and "10^23" in out["gpai_rule"]
    r = run(app, ["desk", "modification", "--added-flop", "3.4e24", "--original-flop", "1e25", "--json"])
    out = json.loads(r.stdout)
    assert out["new_model"] is True and out["threshold_flop"] == pytest.approx(1e25 / 3)
    r = run(app, ["desk", "modification", "--added-flop", "3.3e22", "--json"])
    assert json.loads(r.stdout)["new_model"] is False
    r = run(app, ["desk", "classify", "examples/desk/transparency.json", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["risk_class"] == "transparency"
    for bad, says in ((["desk", "thresholds", "--flop", "-1"], "must not be negative"),
                      (["desk", "estimate", "--gpu-hours", "T4=100"], "peak FLOP/s is not known"),
                      (["desk", "estimate", "--parameters", "7e9"], "needs both"),
                      (["desk", "classify", "nope.json"], "cannot read it")):  # fmt: skip
        r = run(app, bad)
        assert r.exit_code == 2 and says in r.output, (bad, r.output)


def test_registration_and_impact_assessment_follow_the_articles() -> None:
    def articles(**kw: Any) -> set[str]:
        return {o["article"] for o in classify(doc(**kw))["obligations"]}

    # Art. 49(1) registers Annex III systems; Annex I systems are not registered there; point 2 nationally (49(5)).
    assert "Art. 49(1)" in articles(annex_iii=["4a"], derogation=[], profiling=False)
    assert not {"Art. 49(1)", "Art. 49(5)"} & articles(annex_i_product=True, third_party_assessment=True)
    assert "Art. 49(5)" in articles(annex_iii=["2a"], derogation=[], profiling=False)
    # Art. 27(1): a public body's impact assessment, but not for critical infrastructure (Annex III point 2).
    public = {"role": "deployer", "public_body": True, "derogation": [], "profiling": False}
    assert "Art. 27" not in articles(annex_iii=["2a"], **public)
    assert {"Art. 27", "Art. 26(8), 49(3)"} <= articles(annex_iii=["5a"], **public)
    assert "Art. 26(7)" in articles(annex_iii=["4b"], **public) and "Art. 26(7)" not in articles(
        annex_iii=["5a"], **public
    )
    # A deepfake is synthetic output: its provider marks it (50(2)); its deployer discloses it (50(4)).
    assert articles(transparency=["deepfake"]) == {"Art. 4", "Art. 50(2)"}


def test_the_ledger_projects_planned_runs_and_modifications() -> None:
    from gigafactory.desk.ledger import ModelFacts, RunFacts, ledger

    plan = RunFacts(1, Purpose.PRE_TRAINING, planned_gpu_hours={"H100": 8e6}, mfu=(0.35, 0.45), recorded_at=100.0)
    led = ledger(ModelFacts(1, "m", True), [plan], now=200.0)
    assert led["counted_flop"] == 0 and led["systemic_risk_foreseeable"] and led["clock"]["opened_at"] == 100.0
    assert led["clock"]["due_at"] == 100.0 + 14 * 86_400
    low, high = led["projected_range_flop"]
    assert low < 1e25 < led["projected_flop"] < high and "likely, not certain" in led["draft"]
    # A planned further training of a systemic-risk model, over a third of ⅓ × 10^25: a new systemic-risk model.
    ft = RunFacts(1, Purpose.FURTHER_TRAINING, planned_gpu_hours={"H100": 2.5e6}, recorded_at=5.0)
    led = ledger(ModelFacts(2, "ft", True, None, True, "Big-1"), [ft], now=10.0)
    assert led["modification"]["new_model"] is False and led["modification_foreseeable"] is True
    assert led["systemic_risk_foreseeable"] and led["clock"] is not None and "§3.2" in led["systemic_risk_rule"]
    # Evaluation never moves anything.
    ev = RunFacts(1, Purpose.EVALUATION, gpu_seconds={"H100": 1e12})
    assert ledger(ModelFacts(3, "e", True), [ev], now=1.0)["counted_flop"] == 0
