"""The patient's PDF report of one study (reportlab), to take to their doctor: the image, the
physician's review if any, the automated preview (marked as replaced once reviewed), its
explanation in the patient's words, and the disclaimer: not a diagnosis.

Built from `selectors.study_result`, the same reading as the study page; never the clinicians'
internal note. Callers check access first (views.study_report).
"""

from __future__ import annotations

import io
from xml.sax.saxutils import escape

from django.utils import timezone
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import cm
from reportlab.lib.utils import ImageReader
from reportlab.platypus import Image, KeepTogether, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from apps.accounts.disclaimer import current_disclaimer
from apps.studies import selectors
from apps.studies.templatetags.patient_wording import finding_words, patient_paragraphs, percent

NOT_A_DIAGNOSIS = "Preliminary, automated result — not a diagnosis."
IMAGE_BOX = (14 * cm, 11 * cm)  # the X-ray fits this box, its proportions kept


def _styles() -> dict[str, ParagraphStyle]:
    base = getSampleStyleSheet()
    return {
        "title": base["Title"],
        "h2": base["Heading2"],
        "body": base["BodyText"],
        "small": ParagraphStyle("small", parent=base["BodyText"], fontSize=8.5, leading=11, textColor=colors.grey),
        "warning": ParagraphStyle(
            "warning",
            parent=base["BodyText"],
            backColor=colors.HexColor("#fff6e5"),
            borderColor=colors.HexColor("#8a4b00"),
            borderWidth=1,
            borderPadding=6,
            spaceBefore=4,
            spaceAfter=10,
        ),
    }


def _p(text: str, style: ParagraphStyle) -> Paragraph:
    return Paragraph(escape(text).replace("\n", "<br/>"), style)


def _image(study) -> Image | None:
    if not study.image:
        return None
    try:
        with study.image.open("rb") as handle:
            data = handle.read()
    except (FileNotFoundError, OSError):
        return None
    reader = ImageReader(io.BytesIO(data))
    width, height = reader.getSize()
    scale = min(IMAGE_BOX[0] / width, IMAGE_BOX[1] / height)
    picture = Image(io.BytesIO(data), width=width * scale, height=height * scale)
    picture.hAlign = "CENTER"
    return picture


def _when(moment) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M") if moment else "—"


def build_study_report(study) -> bytes:
    """The report of `study` as PDF bytes."""
    result = selectors.study_result(study)
    s = _styles()
    story: list = [
        _p("DeepMed study report", s["title"]),
        Paragraph(
            f"<b>{escape(NOT_A_DIAGNOSIS)}</b> Its accuracy is not guaranteed. A physician reviews every "
            "study; always consult a physician about your health.",
            s["warning"],
        ),
    ]
    facts = [
        ["Uploaded", _when(study.created_at)],
        ["Status", result.status_text],
        ["Age given", str(study.patient_age) if study.patient_age is not None else "—"],
        ["Symptoms given", study.symptoms or "—"],
        ["Report made", _when(timezone.now())],
    ]
    table = Table([[_p(k, s["body"]), _p(v, s["body"])] for k, v in facts], colWidths=[4 * cm, 12 * cm])
    table.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("TEXTCOLOR", (0, 0), (0, -1), colors.grey)]))
    story += [table, Spacer(1, 8)]
    picture = _image(study)
    if picture is not None:
        story += [
            picture,
            _p("Left and right are the patient's sides: your right side is on the left of the image.", s["small"]),
        ]

    if result.error:
        story += [
            _p(f"Could not be analysed: {result.failure_reason}", s["h2"]),
            _p(
                "No finding is reported for this image. You can upload another image (a frontal chest X-ray).",
                s["body"],
            ),
        ]
    review, prediction = result.review, result.prediction
    if review is not None:
        block = [_p(f"Reviewed by a physician: {result.review_words}", s["h2"])]
        if review.note:
            block += [_p("Note from your physician", s["body"]), _p(review.note, s["body"])]
        block.append(
            _p(f"Reviewed {_when(review.created_at)}. This review replaces the automated preview below.", s["small"])
        )
        story.append(KeepTogether(block))
    elif prediction is not None:
        story.append(
            _p("Awaiting physician review. Until then the automated preview below is only a first look.", s["h2"])
        )

    if prediction is not None:
        heading = "Automated preview" + (" (replaced by the physician's review)" if review is not None else "")
        rows = [
            [_p(selectors.plain_label(label).capitalize(), s["body"]), f"{percent(p)}%"]
            for label, p in result.probabilities_sorted
        ]
        bars = Table(rows, colWidths=[8 * cm, 3 * cm])
        bars.setStyle(
            TableStyle([("ALIGN", (1, 0), (1, -1), "RIGHT"), ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.lightgrey)])
        )
        story += [
            _p(heading, s["h2"]),
            _p(f"The automated preview's reading: {finding_words(prediction.label)}.", s["body"]),
            bars,
            _p("Percentages are rounded down to whole numbers.", s["small"]),
        ]
        if result.explanation is not None:
            story.append(_p("What the automated preview said", s["h2"]))
            story += [_p(paragraph, s["body"]) for paragraph in patient_paragraphs(result.explanation.text)]
            story.append(_p("Written by an automated assistant and checked for safety.", s["small"]))

    disclaimer = current_disclaimer()
    story += [Spacer(1, 10), _p(disclaimer.title, s["h2"])]
    story += [_p(paragraph, s["small"]) for paragraph in disclaimer.paragraphs]
    story.append(_p(f"{NOT_A_DIAGNOSIS} Disclaimer version {disclaimer.version}.", s["body"]))

    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        title="DeepMed study report",
        author="DeepMed",
        subject=NOT_A_DIAGNOSIS,
        leftMargin=2 * cm,
        rightMargin=2 * cm,
        topMargin=1.8 * cm,
        bottomMargin=1.8 * cm,
    )
    document.build(story)
    return buffer.getvalue()
