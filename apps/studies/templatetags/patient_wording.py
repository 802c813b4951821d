"""How results are worded for patients: one rounded percentage everywhere, labels and the
explanation in plain words, without the system's internal terms."""

from __future__ import annotations

import re

from django import template

from apps.studies import selectors
from ml_core.llm.facts import percent as whole_percent
from ml_core.llm.knowledge import DISCLAIMER, finding_info
from ml_core.llm.writing import TEMPLATE_LABEL

register = template.Library()

SENTENCE_END = re.compile(r"(?<=[.!?:])\s+(?=[A-Z\"'(])")
# Internal terms that generated or template text may contain, and what a patient reads instead.
PATIENT_TERMS = ((re.compile(r"\bcalibrated\s+", re.IGNORECASE), ""),)
SENTENCES_PER_PARAGRAPH = 2


@register.filter
def percent(probability) -> int:
    """A probability as the whole percent the bars, the numbers and the explanation all show
    (ml_core's rounding: down, so no text states more certainty than the model has)."""
    return whole_percent(float(probability))


@register.filter
def plain_label(label: str) -> str:
    return selectors.plain_label(label)


@register.filter
def finding_words(label: str) -> str:
    """The automated preview's label as the explanation names it ("signs that can fit pneumonia")."""
    return finding_info(label).display


@register.filter
def patient_paragraphs(text: str) -> list[str]:
    """An explanation as short paragraphs for a patient: two sentences each, a list of
    questions ("You may want to ask your doctor: …") and the closing disclaimer kept together,
    internal terms removed."""
    text = (text or "").strip()
    if text.startswith(TEMPLATE_LABEL):  # "…not by the language model:" is for staff
        text = text[len(TEMPLATE_LABEL) :].strip()
    for pattern, replacement in PATIENT_TERMS:
        text = pattern.sub(replacement, text)
    closing = DISCLAIMER if text.endswith(DISCLAIMER) else ""  # a paragraph of its own
    text = text[: len(text) - len(closing)].strip()
    paragraphs: list[list[str]] = []
    questions = False
    for sentence in SENTENCE_END.split(text):
        if sentence.endswith(":"):
            paragraphs.append([sentence])
            questions = True
        elif questions and sentence.endswith("?"):
            paragraphs[-1].append(sentence)
        elif not paragraphs or questions or len(paragraphs[-1]) >= SENTENCES_PER_PARAGRAPH:
            paragraphs.append([sentence])
            questions = False
        else:
            paragraphs[-1].append(sentence)
    return [" ".join(p) for p in paragraphs if p and p[0]] + ([closing] if closing else [])
