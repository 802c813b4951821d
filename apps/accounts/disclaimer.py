"""The versioned texts patients agree to: the disclaimer (required before any upload) and the
separate, optional research-use consent.

Publishing a new text = adding a version here and pointing CURRENT_VERSION (or
CURRENT_RESEARCH_VERSION) at it; every patient is then asked again.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Disclaimer:
    version: str
    title: str
    paragraphs: tuple[str, ...]

    @property
    def text(self) -> str:
        return "\n\n".join((self.title, *self.paragraphs))


DISCLAIMERS = {
    "1": Disclaimer(
        version="1",
        title="Before you upload: what DeepMed can and cannot do",
        paragraphs=(
            "DeepMed gives a preliminary, automated preview of a chest X-ray. It is produced "
            "by a computer model, not by a doctor.",
            "The preview is not a diagnosis. Its accuracy is not guaranteed: the model can "
            "be wrong, and it only knows a few findings (COVID-19, pneumonia, normal).",
            "A physician reviews every study. Always consult a physician about your health "
            "and never change or start a treatment because of this preview.",
            "What happens to your image: it is stored securely, identifying information in "
            "DICOM files is removed, and only you and the reviewing clinicians can see it. "
            "You can delete it at any time. It is used to improve the model only if you agree "
            "separately to research use.",
        ),
    ),
}
CURRENT_VERSION = "1"

RESEARCH_CONSENTS = {
    "1": Disclaimer(
        version="1",
        title="Optional: research use of physician-labelled images",
        paragraphs=(
            "If you agree, images of yours that a physician has already reviewed and labelled may be "
            "kept, without your name or other identifying information, to train and test future "
            "versions of the model, even after you delete the study or your account.",
            "Without this consent, a deleted image is removed from storage and excluded from all "
            "future training. You can give or withdraw this consent at any time; it does not affect "
            "your use of DeepMed.",
        ),
    ),
}
CURRENT_RESEARCH_VERSION = "1"


def current_disclaimer() -> Disclaimer:
    return DISCLAIMERS[CURRENT_VERSION]


def current_research_text() -> Disclaimer:
    return RESEARCH_CONSENTS[CURRENT_RESEARCH_VERSION]
