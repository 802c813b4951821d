"""Identifying text in the pixels (burned-in annotations, secondary captures) and the
validation of the code-string tags kept from a DICOM header (ml_core.imaging)."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset

from ml_core.imaging import (
    DICOM_TECHNICAL_TAGS,
    ImageIntakeError,
    decode_image,
    dicom_technical_tags,
)
from ml_core.testing import make_dicom_bytes

SC_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.7"
SC_TRUE_COLOUR = "1.2.840.10008.5.1.4.1.1.7.4"
VL_ENDOSCOPIC = "1.2.840.10008.5.1.4.1.1.77.1.1"  # starts like ...1.1.7 but is no secondary capture
DX_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.1"


def _code(data: bytes, **kwargs) -> str:
    with pytest.raises(ImageIntakeError) as info:
        decode_image(data, **kwargs)
    assert info.value.message
    return info.value.code


# --- burned-in annotation ---------------------------------------------------------------


def test_burned_in_annotation_is_refused_by_default():
    data = make_dicom_bytes(header={"BurnedInAnnotation": "YES"})
    assert _code(data) == "dicom_burned_in_phi"


def test_burned_in_annotation_is_flagged_when_the_policy_says_flag():
    decoded = decode_image(make_dicom_bytes(header={"BurnedInAnnotation": "YES"}), burned_in="flag")
    assert decoded.pixel_phi == ("burned_in_annotation",)
    assert decoded.pixels.shape == (256, 256)


def test_burned_in_annotation_no_is_a_plain_image():
    decoded = decode_image(make_dicom_bytes(header={"BurnedInAnnotation": "NO"}))
    assert decoded.pixel_phi == ()


def test_png_and_plain_dicom_carry_no_flag(xray_png):
    assert decode_image(xray_png).pixel_phi == ()
    assert decode_image(make_dicom_bytes()).pixel_phi == ()


# --- secondary capture ------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        {"SOPClassUID": SC_IMAGE_STORAGE},
        {"SOPClassUID": SC_TRUE_COLOUR},
        {"ImageType": ["DERIVED", "SECONDARY"]},
        {"ConversionType": "WSD"},
    ],
    ids=["sc-storage", "sc-multiframe-true-colour", "image-type-secondary", "conversion-type"],
)
def test_secondary_captures_are_flagged_by_default_and_refused_or_accepted_on_request(header):
    data = make_dicom_bytes(header=header)
    assert decode_image(data).pixel_phi == ("secondary_capture",)
    assert _code(data, secondary_capture="refuse") == "dicom_secondary_capture"
    assert decode_image(data, secondary_capture="accept").pixel_phi == ()


@pytest.mark.parametrize("sop_class", [VL_ENDOSCOPIC, DX_FOR_PRESENTATION])
def test_other_sop_classes_are_not_secondary_captures(sop_class):
    decoded = decode_image(make_dicom_bytes(header={"SOPClassUID": sop_class, "ImageType": ["ORIGINAL", "PRIMARY"]}))
    assert decoded.pixel_phi == ()


def test_both_signals_are_reported():
    data = make_dicom_bytes(header={"BurnedInAnnotation": "YES", "SOPClassUID": SC_IMAGE_STORAGE})
    decoded = decode_image(data, burned_in="flag")
    assert decoded.pixel_phi == ("burned_in_annotation", "secondary_capture")


def test_an_unknown_policy_is_a_programming_error():
    with pytest.raises(ValueError):
        decode_image(make_dicom_bytes(), burned_in="ignore")
    with pytest.raises(ValueError):
        decode_image(make_dicom_bytes(), secondary_capture="maybe")


# --- code strings kept in the technical tags ---------------------------------------------


def test_script_in_view_position_is_dropped_and_recorded():
    decoded = decode_image(make_dicom_bytes(header={"ViewPosition": "PA<script>"}))
    assert "ViewPosition" not in decoded.technical
    assert decoded.technical["_dropped"] == ["ViewPosition"]
    assert "<script>" not in repr(decoded.technical)
    assert decoded.technical["Modality"] == "DX"  # the valid tags stay


CS_KEPT = [
    keyword
    for keyword in DICOM_TECHNICAL_TAGS
    if keyword in ("Modality", "PhotometricInterpretation", "ViewPosition", "BodyPartExamined", "RescaleType")
]


@pytest.mark.parametrize("keyword", CS_KEPT)
@pytest.mark.parametrize("value", ["PA<script>", "chest", "A" * 17, "DX\nX", "AP;DROP"])
def test_every_code_string_tag_is_checked_against_the_code_string_rules(keyword, value):
    ds = Dataset()
    setattr(ds, keyword, value)
    tags = dicom_technical_tags(ds)
    assert keyword not in tags and tags["_dropped"] == [keyword]


@pytest.mark.parametrize(
    ("keyword", "value"),
    [
        ("ViewPosition", "AP"),
        ("ViewPosition", "LL"),
        ("ViewPosition", "RLD"),
        ("ViewPosition", "LLO"),
        ("Modality", "CR"),
        ("Modality", "DX"),
        ("Modality", "OT"),
        ("PhotometricInterpretation", "PALETTE COLOR"),
        ("BodyPartExamined", "CHEST"),
        ("BodyPartExamined", "UPPER_CHEST"),
        ("RescaleType", "US"),
    ],
)
def test_valid_code_strings_are_kept(keyword, value):
    ds = Dataset()
    setattr(ds, keyword, value)
    tags = dicom_technical_tags(ds)
    assert tags[keyword] == value and "_dropped" not in tags


@pytest.mark.parametrize(("keyword", "value"), [("ViewPosition", "XYZ"), ("Modality", "CT"), ("Modality", "US")])
def test_view_position_and_modality_outside_their_vocabulary_are_dropped(keyword, value):
    ds = Dataset()
    setattr(ds, keyword, value)
    assert dicom_technical_tags(ds)["_dropped"] == [keyword]


def test_every_code_string_tag_of_the_allow_list_is_validated():
    """A CS tag added to DICOM_TECHNICAL_TAGS later is validated too (found by its VR)."""
    from pydicom.datadict import dictionary_VR

    cs_tags = [k for k in DICOM_TECHNICAL_TAGS if dictionary_VR(k) == "CS"]
    assert {"Modality", "PhotometricInterpretation", "ViewPosition", "BodyPartExamined"} <= set(cs_tags)
    ds = Dataset()
    for keyword in cs_tags:
        setattr(ds, keyword, "bad value!")
    assert sorted(dicom_technical_tags(ds)["_dropped"]) == sorted(cs_tags)


def test_numbers_that_are_not_numbers_are_dropped():
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag

    ds = Dataset()  # as read from a file: pydicom keeps an invalid DS/IS value as its text
    ds[0x00180060] = RawDataElement(Tag(0x00180060), "DS", 6, b"120<b>", 0, True, True)  # KVP
    ds[0x00181150] = RawDataElement(Tag(0x00181150), "IS", 4, b"1x2 ", 0, True, True)  # ExposureTime
    ds[0x00281050] = RawDataElement(Tag(0x00281050), "DS", 4, b"40.5", 0, True, True)  # WindowCenter
    tags = dicom_technical_tags(ds)
    assert sorted(tags["_dropped"]) == ["ExposureTime", "KVP"]
    assert tags["WindowCenter"] == 40.5
