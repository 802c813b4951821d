"""Reading an uploaded table: ``read_table(path_or_bytes) -> Table``, and the target column.

Every refusal is one ``TabularDataError(code, message)``; the codes are stable (the web app
maps them to HTTP 400 answers), the messages are for people. Cells are read as text and only
columns whose every value parses as a number become numeric here: messy columns (stray tabs,
'?', spelling variants) are left as they are for the cleaner, which records what it changed.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

DEFAULT_MAX_BYTES = 50 * 1024 * 1024
DEFAULT_MAX_ROWS = 200_000
DEFAULT_MAX_COLUMNS = 500
DELIMITERS = ",;\t|"
# First bytes of files people upload instead of a CSV: named in the error message.
BINARY_SIGNATURES = {
    b"PK\x03\x04": "a ZIP archive (an .xlsx workbook is one): export the sheet as CSV",
    b"\xd0\xcf\x11\xe0": "a legacy Office file (.xls): export the sheet as CSV",
    b"%PDF": "a PDF document",
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"\x1f\x8b": "a gzip archive",
    b"SQLite format 3": "an SQLite database",
}

ERROR_CODES = (
    "empty_file",
    "not_text",
    "not_utf8",
    "file_too_large",
    "too_many_rows",
    "too_many_columns",
    "malformed_csv",
    "duplicate_columns",
    "unknown_target",
    "unknown_column",
    "target_missing_values",
    "one_class_target",
    "not_binary_target",
    "empty_column",
    "too_few_rows",
    "no_features",
    "training_failed",
)


class TabularDataError(ValueError):
    """A table or target the library refuses, with a stable machine-readable ``code``."""

    def __init__(self, code: str, message: str):
        assert code in ERROR_CODES, code
        super().__init__(message)
        self.code = code
        self.message = message

    def __reduce__(self):  # pickles whole (e.g. from a training child process, ml_core.child_process)
        return (type(self), (self.code, self.message))

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass
class Table:
    frame: pd.DataFrame
    encoding: str
    delimiter: str
    sha256: str  # of the bytes as uploaded: recorded with every model trained on them
    n_bytes: int
    notes: list[str] = field(default_factory=list)


def read_table(
    source: str | Path | bytes,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_rows: int = DEFAULT_MAX_ROWS,
    max_columns: int = DEFAULT_MAX_COLUMNS,
    strict_utf8: bool = False,
) -> Table:
    """Parse a delimited text file (path or bytes) into a ``Table``; raise ``TabularDataError``."""
    if isinstance(source, bytes):
        data = source
    else:
        path = Path(source)
        size = path.stat().st_size
        if size > max_bytes:
            raise TabularDataError("file_too_large", f"{path.name} is {size} bytes; the limit is {max_bytes}")
        data = path.read_bytes()
    if len(data) > max_bytes:
        raise TabularDataError("file_too_large", f"the file is {len(data)} bytes; the limit is {max_bytes}")
    if not data.strip():
        raise TabularDataError("empty_file", "the file is empty")
    text, encoding, notes = _decode(data, strict_utf8)
    delimiter = _sniff_delimiter(text)
    header = next(csv.reader(io.StringIO(text.split("\n", 1)[0]), delimiter=delimiter), [])
    if len(header) > max_columns:
        raise TabularDataError("too_many_columns", f"the header has {len(header)} columns; the limit is {max_columns}")
    names = [h.strip() for h in header]
    if any(not n for n in names):
        notes.append("unnamed header cells were named column_<position>")
        names = [n or f"column_{i + 1}" for i, n in enumerate(names)]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise TabularDataError("duplicate_columns", f"column names appear more than once: {dupes}")
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            sep=delimiter,
            header=0,
            names=names,
            dtype=str,
            keep_default_na=False,  # '' only: 'NA' may be a category; the cleaner knows the tokens
            na_values=[""],
            nrows=max_rows + 1,
            engine="c",
            skip_blank_lines=True,
        )
    except (pd.errors.ParserError, UnicodeError, ValueError) as exc:
        raise TabularDataError("malformed_csv", f"not a rectangular table: {exc}".strip()) from None
    if len(frame) > max_rows:
        raise TabularDataError("too_many_rows", f"the file has more than {max_rows} data rows")
    if frame.empty:
        raise TabularDataError("empty_file", "the file has a header but no data rows")
    if len(frame.columns) < 2:
        raise TabularDataError(
            "malformed_csv", f"found one column only (delimiter {delimiter!r}); expected features and a target"
        )
    return Table(
        frame=numeric_where_clean(frame),
        encoding=encoding,
        delimiter=delimiter,
        sha256=hashlib.sha256(data).hexdigest(),
        n_bytes=len(data),
        notes=notes,
    )


def _decode(data: bytes, strict_utf8: bool) -> tuple[str, str, list[str]]:
    for magic, what in BINARY_SIGNATURES.items():
        if data.startswith(magic):
            raise TabularDataError("not_text", f"this is {what}, not a delimited text file")
    head = data[:65536]
    if b"\x00" in head:  # also UTF-16/32, which no spreadsheet export needs
        raise TabularDataError("not_text", "the file contains NUL bytes: binary data or UTF-16, not a CSV text file")
    try:
        text = data.decode("utf-8-sig")
        encoding = "utf-8-sig" if data.startswith(b"\xef\xbb\xbf") else "utf-8"
        notes: list[str] = []
    except UnicodeDecodeError as exc:
        if strict_utf8:
            raise TabularDataError(
                "not_utf8", f"the file is not UTF-8 (byte {exc.start}: {data[exc.start : exc.start + 1]!r})"
            ) from None
        try:
            text, encoding = data.decode("cp1252"), "cp1252"
        except UnicodeDecodeError:
            text, encoding = data.decode("latin-1"), "latin-1"
        notes = [f"not UTF-8 (first bad byte at {exc.start}); decoded as {encoding}: check accented text"]
    controls = sum(1 for ch in text[:65536] if ord(ch) < 32 and ch not in "\t\r\n")
    if controls > max(10, len(text[:65536]) // 100):
        raise TabularDataError("not_text", f"{controls} control characters in the first 64 KiB: not a text table")
    return text.replace("\r\n", "\n").replace("\r", "\n"), encoding, notes


def _sniff_delimiter(text: str) -> str:
    sample = "\n".join(text[:65536].split("\n")[:50])
    try:
        return csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        first = sample.split("\n", 1)[0]
        return max(DELIMITERS, key=first.count) if any(d in first for d in DELIMITERS) else ","


def numeric_where_clean(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns whose every non-empty cell parses as a number become float; the rest stay text."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            parsed = pd.to_numeric(out[col], errors="coerce")
            text = out[col].dropna().astype(str)
            padded = bool((text != text.str.strip()).any())  # '\t6200': left for the cleaner to strip and report
            if not padded and parsed.notna().sum() == out[col].notna().sum():
                out[col] = parsed.astype(np.float64)
            else:
                out[col] = out[col].astype(object)
    return out


def read_frame(source: str | Path | bytes | pd.DataFrame, **limits) -> pd.DataFrame:
    """A DataFrame from a path, bytes or a frame (passed through): what the CLI and tests use."""
    if isinstance(source, pd.DataFrame):
        return source
    return read_table(source, **limits).frame


# --- the target ---------------------------------------------------------------------


def binary_target(
    frame: pd.DataFrame, target: str, *, positive: str | float | None = None, binarise_threshold: float | None = None
) -> tuple[pd.DataFrame, np.ndarray, dict]:
    """Split ``frame`` into features and a 0/1 target; refuse what cannot be a binary target.

    ``binarise_threshold``: a numeric target becomes ``target > threshold`` (e.g. heart ``num > 0``).
    ``positive``: the value that means 1 (compared as text after stripping); by default 1 for a
    0/1 column, otherwise the second of the two sorted values (said in the returned info).
    """
    if target not in frame.columns:
        raise TabularDataError("unknown_target", f"no column {target!r}; columns are {list(frame.columns)[:50]}")
    raw = frame[target]
    if not pd.api.types.is_numeric_dtype(raw):
        raw = raw.map(lambda v: v.strip() if isinstance(v, str) else v).replace("", np.nan)
    missing = int(raw.isna().sum())
    if missing:
        raise TabularDataError(
            "target_missing_values", f"the target {target!r} is empty in {missing} rows: fill or remove them"
        )
    features = frame.drop(columns=[target])
    if features.shape[1] == 0:
        raise TabularDataError("no_features", "the table has a target but no feature columns")
    if binarise_threshold is not None:
        values = pd.to_numeric(raw, errors="coerce")
        if values.isna().any():
            raise TabularDataError("not_binary_target", f"binarise_threshold needs a numeric target {target!r}")
        y = (values > binarise_threshold).to_numpy(dtype=np.int64)
        info = {"rule": f"{target} > {binarise_threshold}", "labels": ["0", "1"]}
    else:
        as_text = raw.map(_label_text)
        labels = sorted(as_text.unique(), key=_label_sort_key)
        if len(labels) > 2:
            raise TabularDataError(
                "not_binary_target",
                f"the target {target!r} has {len(labels)} values ({labels[:10]}); give binarise_threshold or positive",
            )
        if positive is not None:
            pos = _label_text(positive)
            if pos not in labels:
                raise TabularDataError("one_class_target", f"the positive value {pos!r} never occurs in {target!r}")
        else:
            pos = labels[-1]
        y = (as_text == pos).to_numpy(dtype=np.int64)
        negative = [v for v in labels if v != pos]
        info = {"rule": f"{target} == {pos!r}", "labels": [negative[0] if negative else "other", pos]}
    counts = np.bincount(y, minlength=2)
    if counts.min() == 0:
        raise TabularDataError(
            "one_class_target", f"the target {target!r} has one class only ({int(counts.max())} rows): nothing to learn"
        )
    info["counts"] = {"0": int(counts[0]), "1": int(counts[1])}
    return features, y, info


def _label_text(value) -> str:
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def _label_sort_key(text: str):
    try:
        return (0, float(text), text)
    except ValueError:
        return (1, 0.0, text)
