"""Reading uploads: every bad input class gets its own error code and a message naming the problem."""

from __future__ import annotations

import numpy as np
import pytest

from ml_core.tabular.io import TabularDataError, binary_target, read_table


def code_of(source, **kw) -> str:
    with pytest.raises(TabularDataError) as exc:
        read_table(source, **kw)
    assert exc.value.message
    return exc.value.code


def test_reads_semicolon_csv_with_bom_and_detects_numbers():
    data = "\ufeffage;sex;chol;target\n63;m;233;1\n41;f;?;0\n".encode()
    table = read_table(data)
    assert table.delimiter == ";" and table.encoding == "utf-8-sig"
    assert table.frame["age"].dtype == np.float64
    assert table.frame["chol"].dtype == object  # '?' is the cleaner's business, not the reader's
    assert len(table.sha256) == 64


def test_padded_numbers_are_left_as_text_for_the_cleaner_to_report():
    table = read_table(b"wbcc,target\n\t6200,1\n8400,0\n")
    assert table.frame["wbcc"].dtype == object


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "empty_file"),
        (b"   \n\n", "empty_file"),
        (b"a,b\n", "empty_file"),
        (b"\x89PNG\r\n\x1a\n\x00\x00binary", "not_text"),
        (b"PK\x03\x04rest-of-a-zip", "not_text"),
        (b"a,b\n1,\x00\x002\n", "not_text"),
        (b"onlyone\n1\n2\n", "malformed_csv"),
        (b'a,b\n1,"unterminated\n', "malformed_csv"),
        (b"a,a,target\n1,2,0\n", "duplicate_columns"),
    ],
)
def test_bad_files_get_a_clear_code(data, code):
    assert code_of(data) == code


def test_non_utf8_is_refused_in_strict_mode_and_decoded_with_a_note_otherwise():
    data = "name,target\nJosé,1\nRené,0\n".encode("cp1252")
    assert code_of(data, strict_utf8=True) == "not_utf8"
    table = read_table(data)
    assert table.encoding == "cp1252" and table.frame["name"].tolist() == ["José", "René"] and table.notes


def test_limits_on_size_rows_and_columns():
    wide = (",".join(f"c{i}" for i in range(10_000)) + "\n" + ",".join("1" * 10_000) + "\n").encode()
    assert code_of(wide) == "too_many_columns"
    assert code_of(b"a,b\n" + b"1,2\n" * 11, max_rows=10) == "too_many_rows"
    assert code_of(b"a,b\n1,2\n", max_bytes=4) == "file_too_large"


def test_target_rules(frame):
    X, y, info = binary_target(frame, "target")
    assert "target" not in X.columns and set(np.unique(y)) == {0, 1} and info["counts"]["1"] == int(y.sum())
    codes = {}
    for name, f, kw in [
        ("unknown", frame, {"target": "nope"}),
        ("one_class", frame.assign(target=1), {"target": "target"}),
        (
            "missing",
            frame.assign(target=frame["target"].astype(object).where(frame.index > 3, " ")),
            {"target": "target"},
        ),
        ("three", frame.assign(target=frame.index % 3), {"target": "target"}),
    ]:
        with pytest.raises(TabularDataError) as exc:
            binary_target(f, **kw)
        codes[name] = exc.value.code
    assert codes == {
        "unknown": "unknown_target",
        "one_class": "one_class_target",
        "missing": "target_missing_values",
        "three": "not_binary_target",
    }
    _, y3, info3 = binary_target(frame.assign(num=frame.index % 5), "num", binarise_threshold=0)
    assert y3.sum() == sum(1 for i in frame.index if i % 5 > 0) and info3["rule"] == "num > 0"
    _, yt, infot = binary_target(
        frame.assign(cls=np.where(frame["target"] == 1, "ckd\t", "notckd")), "cls", positive="ckd"
    )
    assert (yt == frame["target"].to_numpy()).all() and infot["labels"] == ["notckd", "ckd"]
