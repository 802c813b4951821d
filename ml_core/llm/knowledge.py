"""What the explainer may say: per-finding facts, the closing disclaimer, symptom words.

One table keyed by the image model's class name. Classes themselves come from the model
package (never re-declared here); a class missing from the table gets a generic entry,
so a new model with new classes still gets safe (if plainer) explanations.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Every explanation ends with exactly this sentence pair (the validator checks it).
DISCLAIMER = (
    "This is a preliminary automated result, not a diagnosis. "
    "A physician will review your X-ray; please talk to your doctor before making any decision."
)


@dataclass(frozen=True)
class FindingInfo:
    display: str  # how the finding is named to a patient
    terms: tuple[str, ...]  # words that name this finding; other findings' texts must not use them
    meanings: tuple[str, ...]  # what it means, several phrasings (corpus variation)
    questions: tuple[str, ...]  # what to ask the doctor
    region_note: str  # how to read the highlighted area for this finding


FINDINGS: dict[str, FindingInfo] = {
    "COVID-19": FindingInfo(
        display="changes that can be seen with COVID-19",
        terms=("covid", "covid-19", "coronavirus", "sars-cov-2"),
        meanings=(
            "COVID-19 can cause hazy areas in both lungs, often towards the outer edges and the lower parts.",
            "In COVID-19 the lungs may show patchy, cloudy areas where the air spaces are inflamed.",
            "This kind of picture is often seen when the COVID-19 virus has caused inflammation in the lungs.",
            "COVID-19 sometimes leaves soft, hazy shadows on an X-ray, usually on both sides of the chest.",
        ),
        questions=(
            "Do I need a test to check for COVID-19?",
            "Which warning signs mean I should seek care quickly?",
            "Should I stay away from other people for now, and for how long?",
            "Do I need a follow-up X-ray or other checks?",
            "How should I monitor my breathing at home?",
        ),
        region_note="The highlighted area shows where the model saw the changes it links to COVID-19.",
    ),
    "PNEUMONIA": FindingInfo(
        display="signs that can fit pneumonia",
        terms=("pneumonia", "pneumonic"),
        meanings=(
            "Pneumonia is an infection that fills some of the small air sacs of a lung with fluid.",
            "With pneumonia, part of a lung can look whiter on an X-ray because the air spaces are filled with fluid.",
            "Pneumonia is an infection of the lung tissue; on an X-ray it often shows as a denser, brighter patch.",
            "In pneumonia an area of the lung becomes inflamed, which can look like a cloudy patch on the image.",
        ),
        questions=(
            "Does this result fit my symptoms, and do I need more tests?",
            "Which warning signs mean I should seek care quickly?",
            "Do I need a follow-up X-ray after I recover?",
            "What can cause pneumonia in my case?",
            "How will we know that I am getting better?",
        ),
        region_note="The highlighted area shows where the model saw the pattern it links to pneumonia.",
    ),
    "NORMAL": FindingInfo(
        display="a normal-looking chest X-ray",
        terms=("normal",),
        meanings=(
            "The model did not see the patterns it was trained to look for in the lungs.",
            "The lungs look clear to the model, without the patterns it was trained to recognise.",
            "The model found nothing among the few patterns it knows how to look for.",
            "No pattern the model was trained to recognise stood out on this image.",
        ),
        questions=(
            "Could my symptoms still have a cause that an X-ray does not show?",
            "Do I need any other tests?",
            "Which warning signs mean I should come back?",
            "Is there anything on the X-ray that the model cannot assess?",
        ),
        region_note="The highlighted area only shows where the model looked most; it does not mark a problem.",
    ),
}

# Findings no class here covers: the explainer must never name them at all.
OUT_OF_SCOPE_TERMS: tuple[str, ...] = (
    "tuberculosis",
    "cancer",
    "tumour",
    "tumor",
    "nodule",
    "pneumothorax",
    "effusion",
    "fracture",
    "heart failure",
    "emphysema",
    "fibrosis",
    "lung collapse",
    "sepsis",
    "bronchitis",
    "asthma",
)

# Patient-typed symptoms become these canonical words (anything else, names included, is dropped).
SYMPTOMS: dict[str, tuple[str, ...]] = {
    "cough": ("cough",),
    "fever": ("fever", "high temperature", "febrile"),
    "shortness of breath": (
        "shortness of breath",
        "short of breath",
        "breathless",
        "dyspnea",
        "dyspnoea",
        "difficulty breathing",
        "hard to breathe",
    ),
    "chest pain": ("chest pain", "pain in my chest", "chest tightness"),
    "tiredness": ("tired", "fatigue", "exhaust"),
    "loss of taste or smell": ("loss of taste", "loss of smell", "anosmia", "can't smell", "cannot smell"),
    "sore throat": ("sore throat",),
    "headache": ("headache",),
    "muscle aches": ("muscle ache", "body ache", "myalgia", "aching"),
    "chills": ("chills", "shivering"),
}


def finding_info(label: str) -> FindingInfo:
    """The table entry for a class, or a generic one for a class this table does not know."""
    if label in FINDINGS:
        return FINDINGS[label]
    name = label.replace("_", " ").strip()
    return FindingInfo(
        display=f"the finding '{name}'",
        terms=tuple(sorted({name.lower(), label.lower()})),
        meanings=(f"The model's most likely reading is '{name}'. Your doctor can explain what this means for you.",),
        questions=(
            "What does this result mean for me?",
            "Do I need more tests?",
            "Which warning signs mean I should seek care quickly?",
        ),
        region_note="The highlighted area shows where the model looked most.",
    )


def term_pattern(term: str) -> re.Pattern[str]:
    """Whole-word, case-insensitive match for a finding term ("normal" must not match "abnormal")."""
    return re.compile(rf"(?<![\w-]){re.escape(term)}(?![\w])", re.IGNORECASE)
