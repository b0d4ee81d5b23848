"""Check a labelled text file before anything trains on it, and fingerprint what passed.

Every problem is reported with the file, the row and the column, so a person can fix the file without
guessing. Rows are numbered from 1 for the first data row (the CSV header is not a row); for CSV files
the message also gives the line in the file when no field spans several lines.

The dataset hash is a content hash of the validated rows that does NOT depend on row order: each row
(text, label) is hashed and the sorted row digests are hashed again. Shuffling a file keeps its version;
changing, adding or removing any row changes it. Exact duplicates are dropped before hashing, so a file
and the same file with a row repeated train the same model and share a version.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

import pandas as pd

from model.config import Settings
from model.data import LABEL_COLUMNS, RawTable, parse_table

MAX_REPORTED_ISSUES = 20


@dataclass(frozen=True)
class Issue:
    severity: str  # "error" stops the pipeline; "warning" is reported and handled
    file: str
    row: int | None
    column: str | None
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.row is not None:
            where += f" row {self.row}"
        if self.column is not None:
            where += f" column '{self.column}'"
        return f"{where}: {self.message}"


class DataValidationError(ValueError):
    """The file must not be trained on. `issues` holds every error found (not only the first)."""

    def __init__(self, issues: list[Issue]):
        self.issues = issues
        errors = [i for i in issues if i.severity == "error"]
        shown = "\n".join(f"  - {i}" for i in errors[:MAX_REPORTED_ISSUES])
        more = f"\n  ... and {len(errors) - MAX_REPORTED_ISSUES} more" if len(errors) > MAX_REPORTED_ISSUES else ""
        super().__init__(f"data validation failed with {len(errors)} error(s):\n{shown}{more}")


@dataclass
class ValidatedData:
    """Rows that passed validation, with their version and what was noticed on the way."""

    source: str
    texts: list[str]
    labels: list[str]
    dataset_hash: str
    label_column: str
    warnings: list[Issue] = field(default_factory=list)
    dropped_duplicates: int = 0
    rows: list[int] = field(default_factory=list)  # 1-based row of each kept text in its file
    files: list[str] = field(default_factory=list)  # the files of a folder source, else empty

    def summary(self) -> dict[str, object]:
        return {
            "source": self.source,
            **({"files": self.files} if self.files else {}),
            "rows": len(self.texts),
            "labels": len(set(self.labels)),
            "dataset_hash": self.dataset_hash,
            "dropped_duplicates": self.dropped_duplicates,
            "warnings": [asdict(w) for w in self.warnings[:MAX_REPORTED_ISSUES]],
        }


def dataset_hash(texts: Iterable[str], labels: Iterable[str]) -> str:
    """Order-independent SHA-256 of (text, label) rows; see the module docstring."""
    row_digests = sorted(
        hashlib.sha256(f"{text}\x1f{label}".encode()).digest() for text, label in zip(texts, labels, strict=True)
    )
    outer = hashlib.sha256()
    for digest in row_digests:
        outer.update(digest)
    return "sha256:" + outer.hexdigest()


def _line_of_offset(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _check_encoding(raw: RawTable) -> list[Issue]:
    if raw.fmt != "csv":
        return []
    try:
        raw.data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = _line_of_offset(raw.data, exc.start)
        return [
            Issue(
                "error",
                raw.source,
                line - 1 if line > 1 else None,
                None,
                f"not valid UTF-8 at byte {exc.start} (line {line} of the file): {exc.reason}",
            )
        ]
    return []


def _bad_characters(text: str) -> str | None:
    if "\ufffd" in text:
        return "contains U+FFFD replacement characters (the file was decoded with the wrong encoding)"
    for ch in text:
        if unicodedata.category(ch) == "Cc" and ch not in "\t\n\r":
            return f"contains control character U+{ord(ch):04X}"
    return None


def _pick_label_column(frame: pd.DataFrame, label_column: str | None) -> str | None:
    if label_column:
        return label_column if label_column in frame.columns else None
    return next((c for c in LABEL_COLUMNS if c in frame.columns), None)


def validate_table(
    raw: RawTable,
    known_labels: Iterable[str],
    *,
    new_labels: Iterable[str] = (),
    label_column: str | None = None,
    settings: Settings | None = None,
) -> ValidatedData:
    """Validate one file; raise DataValidationError naming every bad row, or return the clean rows."""
    settings = settings or Settings.from_env()
    src = raw.source
    issues = _check_encoding(raw)
    if issues:
        raise DataValidationError(issues)
    if len(raw.data) > settings.max_file_bytes:
        raise DataValidationError(
            [
                Issue(
                    "error",
                    src,
                    None,
                    None,
                    f"{len(raw.data)} bytes exceeds the limit {settings.max_file_bytes}",
                )
            ]
        )
    try:
        frame = parse_table(raw)
    except Exception as exc:  # pandas/pyarrow raise many types; all mean "unreadable"
        raise DataValidationError([Issue("error", src, None, None, f"cannot be parsed as {raw.fmt}: {exc}")]) from exc

    missing: list[str] = []
    if "text" not in frame.columns:
        missing.append("text")
    label_col = _pick_label_column(frame, label_column)
    if label_col is None:
        missing.append(label_column or " or ".join(LABEL_COLUMNS))
    if missing:
        raise DataValidationError(
            [
                Issue(
                    "error",
                    src,
                    None,
                    col,
                    f"required column is missing (found: {', '.join(map(str, frame.columns))})",
                )
                for col in missing
            ]
        )
    assert label_col is not None

    n_rows = len(frame)
    if n_rows < settings.min_rows:
        issues.append(Issue("error", src, None, None, f"{n_rows} rows; at least {settings.min_rows} are required"))
    if n_rows > settings.max_rows:
        issues.append(Issue("error", src, None, None, f"{n_rows} rows exceeds the limit of {settings.max_rows}"))

    allowed = set(known_labels) | set(new_labels)
    texts: list[str] = []
    labels: list[str] = []
    kept_rows: list[int] = []
    first_seen: dict[str, tuple[int, str]] = {}
    warnings: list[Issue] = []
    dropped = 0
    for idx, (text, label) in enumerate(zip(frame["text"].tolist(), frame[label_col].tolist(), strict=True)):
        row = idx + 1
        row_ok = True
        if not isinstance(text, str):
            issues.append(Issue("error", src, row, "text", f"expected a string, found {type(text).__name__}"))
            row_ok = False
        elif not text.strip():
            issues.append(Issue("error", src, row, "text", "empty or whitespace-only text"))
            row_ok = False
        elif len(text) > settings.max_text_chars:
            issues.append(
                Issue(
                    "error",
                    src,
                    row,
                    "text",
                    f"{len(text)} characters exceeds the limit {settings.max_text_chars}",
                )
            )
            row_ok = False
        elif (problem := _bad_characters(text)) is not None:
            issues.append(Issue("error", src, row, "text", problem))
            row_ok = False
        if not isinstance(label, str) or not label.strip():
            issues.append(Issue("error", src, row, label_col, "empty label"))
            row_ok = False
        elif label not in allowed:
            issues.append(
                Issue(
                    "error",
                    src,
                    row,
                    label_col,
                    f"unknown label {label!r}; declare it with --new-label if it is a new intent",
                )
            )
            row_ok = False
        if not row_ok:
            continue
        assert isinstance(text, str) and isinstance(label, str)
        key = " ".join(text.split()).casefold()
        if key in first_seen:
            first_row, first_label = first_seen[key]
            if first_label != label:
                issues.append(
                    Issue(
                        "error",
                        src,
                        row,
                        label_col,
                        f"conflicting label {label!r}: the same text has label {first_label!r} at row {first_row}",
                    )
                )
            else:
                warnings.append(Issue("warning", src, row, "text", f"duplicate of row {first_row}; dropped"))
                dropped += 1
            continue
        first_seen[key] = (row, label)
        texts.append(text)
        labels.append(label)
        kept_rows.append(row)

    if any(i.severity == "error" for i in issues):
        raise DataValidationError(issues + warnings)
    return ValidatedData(
        source=src,
        texts=texts,
        labels=labels,
        dataset_hash=dataset_hash(texts, labels),
        label_column=label_col,
        warnings=warnings,
        dropped_duplicates=dropped,
        rows=kept_rows,
    )


def merge_validated(source: str, parts: list[ValidatedData]) -> ValidatedData:
    """One data set from several validated files: the same duplicate and conflict rules as within a
    file, applied across files (first file in name order wins a duplicate), naming both places."""
    issues: list[Issue] = []
    warnings = [w for p in parts for w in p.warnings]
    first_seen: dict[str, tuple[str, int, str]] = {}
    texts: list[str] = []
    labels: list[str] = []
    rows: list[int] = []
    dropped = sum(p.dropped_duplicates for p in parts)
    label_column = parts[0].label_column if parts else "category"
    for part in parts:
        for text, label, row in zip(part.texts, part.labels, part.rows, strict=True):
            key = " ".join(text.split()).casefold()
            if key in first_seen:
                where, first_row, first_label = first_seen[key]
                if first_label != label:
                    issues.append(
                        Issue(
                            "error",
                            part.source,
                            row,
                            part.label_column,
                            f"conflicting label {label!r}: the same text has label {first_label!r} "
                            f"in {where} row {first_row}",
                        )
                    )
                else:
                    warnings.append(Issue("warning", part.source, row, "text", f"duplicate of {where} row {first_row}"))
                    dropped += 1
                continue
            first_seen[key] = (part.source, row, label)
            texts.append(text)
            labels.append(label)
            rows.append(row)
    if issues:
        raise DataValidationError(issues + warnings)
    return ValidatedData(
        source=source,
        texts=texts,
        labels=labels,
        dataset_hash=dataset_hash(texts, labels),
        label_column=label_column,
        warnings=warnings,
        dropped_duplicates=dropped,
        rows=rows,
        files=[p.source for p in parts],
    )
