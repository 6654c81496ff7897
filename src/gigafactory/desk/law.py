"""The text of the law the desk applies, as data: thresholds, the two calendars, the Art. 5 practices, the
Annex III areas, the Art. 50 duties and the obligations by role. Every entry names its article.

Not legal advice: a working encoding of Regulation (EU) 2024/1689 and the Commission's GPAI guidelines
(C(2025) 5045, 18 July 2025).
"""

from __future__ import annotations

from dataclasses import dataclass

from gigafactory.core.compute import SYSTEMIC_RISK_FLOP

__all__ = [
    "ANNEX_III",
    "ART_5",
    "ART_50",
    "CALENDARS",
    "DEFAULT_CALENDAR",
    "GPAI_FLOP",
    "MODIFICATION_FRACTION",
    "NOTIFY_DAYS",
    "SYSTEMIC_FLOP",
    "Date",
]

GPAI_FLOP = 1e23  # guidelines: indicative criterion, training compute > 10^23 FLOP and generative
SYSTEMIC_FLOP = SYSTEMIC_RISK_FLOP  # Art. 51(2): presumed systemic risk when cumulative compute is *greater than* 10^25
MODIFICATION_FRACTION = 1 / 3  # guidelines §3.2: a modification using more than a third is a new model
NOTIFY_DAYS = 14  # Art. 52(1): without delay and within two weeks


@dataclass(frozen=True, slots=True)
class Date:
    iso: str  # YYYY-MM-DD
    why: str


# When each group of duties applies, under the Act as adopted and under the "digital omnibus" (COM(2025) 836,
# reported adopted in 2026 with fixed dates for high-risk systems). Only the high-risk dates differ.
CALENDARS: dict[str, dict[str, Date]] = {
    "original": {
        "prohibitions": Date("2025-02-02", "Art. 113(a)"),
        "literacy": Date("2025-02-02", "Art. 113(a)"),
        "gpai": Date("2025-08-02", "Art. 113(b)"),
        "annex-iii": Date("2026-08-02", "Art. 113"),
        "transparency": Date("2026-08-02", "Art. 113"),
        "annex-i": Date("2027-08-02", "Art. 113(c)"),
    },
    "omnibus": {
        "prohibitions": Date("2025-02-02", "Art. 113(a), unchanged"),
        "literacy": Date("2025-02-02", "Art. 113(a), unchanged"),
        "gpai": Date("2025-08-02", "Art. 113(b), unchanged"),
        "annex-iii": Date(
            "2027-12-02",
            "digital omnibus (COM(2025) 836), as reported adopted: Annex III by 2 Dec 2027 "
            "at the latest; check the adopted text",
        ),
        "transparency": Date("2026-08-02", "Art. 113, unchanged"),
        "annex-i": Date(
            "2028-08-02",
            "digital omnibus (COM(2025) 836), as reported adopted: Annex I by 2 Aug 2028 at "
            "the latest; check the adopted text",
        ),
    },
}
DEFAULT_CALENDAR = "original"

ART_5: dict[str, str] = {
    "a": "manipulative or deceptive techniques causing significant harm",
    "b": "exploiting vulnerabilities of age, disability or social or economic situation",
    "c": "social scoring leading to detrimental or disproportionate treatment",
    "d": "predicting crime risk solely from profiling or personality traits",
    "e": "untargeted scraping of facial images to build recognition databases",
    "f": "emotion inference at work or in education (not for medical or safety reasons)",
    "g": "biometric categorisation inferring race, political opinions, union membership, religion, sex life or "
    "orientation",
    "h": "real-time remote biometric identification in public spaces for law enforcement",
}

# Annex III: area -> points (the point codes are the desk's: area number and a letter).
ANNEX_III: dict[str, tuple[str, dict[str, str]]] = {
    "1": ("biometrics", {
        "1a": "remote biometric identification (not 1:1 verification)",
        "1b": "biometric categorisation by sensitive or protected attributes",
        "1c": "emotion recognition",
    }),
    "2": ("critical infrastructure", {"2a": "safety component of critical digital infrastructure, road traffic, or "
                                            "the supply of water, gas, heating or electricity"}),
    "3": ("education and vocational training", {
        "3a": "admission or assignment to institutions",
        "3b": "evaluating learning outcomes",
        "3c": "assessing the appropriate level of education",
        "3d": "monitoring prohibited behaviour during tests (proctoring)",
    }),
    "4": ("employment and workers management", {
        "4a": "recruitment and selection",
        "4b": "promotion, termination, task allocation, and monitoring and evaluating performance",
    }),
    "5": ("essential private and public services", {
        "5a": "eligibility for public assistance benefits and services",
        "5b": "creditworthiness or credit scoring of natural persons (not fraud detection)",
        "5c": "risk assessment and pricing in life and health insurance",
        "5d": "evaluating and classifying emergency calls, dispatch and triage",
    }),
    "6": ("law enforcement", {
        "6a": "assessing the risk of a natural person becoming the victim of criminal offences",
        "6b": "polygraphs and similar tools",
        "6c": "evaluating the reliability of evidence",
        "6d": "assessing the risk of offending or re-offending, or personality traits or past criminal behaviour",
        "6e": "profiling of natural persons in detecting, investigating or prosecuting criminal offences",
    }),
    "7": ("migration, asylum and border control", {
        "7a": "polygraphs and similar tools",
        "7b": "assessing a security, irregular-migration or health risk posed by a person",
        "7c": "examining applications for asylum, visas or residence permits, and related complaints",
        "7d": "detecting, recognising or identifying persons (not verifying travel documents)",
    }),
    "8": ("administration of justice and democratic processes", {
        "8a": "assisting judicial authorities (or alternative dispute resolution) in researching and interpreting "
        "facts and law and applying the law",
        "8b": "influencing the outcome of an election or referendum or voting behaviour",
    }),
}  # fmt: skip

ART_50: dict[str, tuple[str, str]] = {  # duty -> (who, what)
    "50(1)": ("provider", "tell people they are interacting with an AI system"),
    "50(2)": ("provider", "mark synthetic audio, image, video or text as artificially generated, machine-readably"),
    "50(3)": ("deployer", "inform people exposed to emotion recognition or biometric categorisation"),
    "50(4)": ("deployer", "disclose deepfakes, and AI-generated text published on matters of public interest"),
}
