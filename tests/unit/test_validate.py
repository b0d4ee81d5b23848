"""Every class of bad input stops before training, with a message naming file, row and column."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest

from model.config import Settings
from model.data import DataSourceError, RawTable, read_raw
from model.validate import DataValidationError, dataset_hash, validate_table

LABELS = ["card_arrival", "lost_or_stolen_card", "top_up_failed"]
SETTINGS = Settings().replace(min_rows=3, max_rows=100, max_text_chars=200, max_file_bytes=10_000)


def csv(rows: list[tuple[str, str]], header: str = "text,category") -> RawTable:
    buf = io.StringIO()
    pd.DataFrame(rows, columns=header.split(",")).to_csv(buf, index=False)
    return RawTable("data.csv", buf.getvalue().encode(), "csv")


GOOD = [
    ("where is my card", "card_arrival"),
    ("my card was stolen", "lost_or_stolen_card"),
    ("top up did not work", "top_up_failed"),
    ("card still not here", "card_arrival"),
]


def errors_of(raw: RawTable, **kw: object) -> list[str]:
    with pytest.raises(DataValidationError) as info:
        validate_table(raw, LABELS, settings=SETTINGS, **kw)  # type: ignore[arg-type]
    return [str(i) for i in info.value.issues if i.severity == "error"]


def test_good_file_passes_with_hash() -> None:
    data = validate_table(csv(GOOD), LABELS, settings=SETTINGS)
    assert len(data.texts) == 4 and data.dataset_hash.startswith("sha256:")


def test_missing_columns_are_named() -> None:
    errs = errors_of(csv(GOOD, header="message,category"))
    assert errs == ["data.csv column 'text': required column is missing (found: message, category)"]
    errs = errors_of(csv(GOOD, header="text,klass"))
    assert "column 'category or label or intent'" in errs[0]


@pytest.mark.parametrize("text", ["", "   ", "\t"])
def test_empty_text_names_row(text: str) -> None:
    errs = errors_of(csv([*GOOD, (text, "card_arrival")]))
    assert errs == ["data.csv row 5 column 'text': empty or whitespace-only text"]


def test_unknown_label_and_declared_new_label() -> None:
    rows = [*GOOD, ("I want crypto", "crypto_request")]
    errs = errors_of(csv(rows))
    assert errs[0].startswith("data.csv row 5 column 'category': unknown label 'crypto_request'")
    data = validate_table(csv(rows), LABELS, new_labels=["crypto_request"], settings=SETTINGS)
    assert "crypto_request" in data.labels


def test_empty_label() -> None:
    assert errors_of(csv([*GOOD, ("hello there", "")])) == ["data.csv row 5 column 'category': empty label"]


def test_duplicates_dropped_and_conflicts_rejected() -> None:
    data = validate_table(csv([*GOOD, ("Where is  my CARD", "card_arrival")]), LABELS, settings=SETTINGS)
    assert data.dropped_duplicates == 1 and len(data.texts) == 4
    assert "duplicate of row 1" in str(data.warnings[0])
    errs = errors_of(csv([*GOOD, ("where is my card", "top_up_failed")]))
    assert errs == [
        "data.csv row 5 column 'category': conflicting label 'top_up_failed': "
        "the same text has label 'card_arrival' at row 1"
    ]


def test_size_limits() -> None:
    assert "exceeds the limit 200" in errors_of(csv([*GOOD, ("x" * 201, "card_arrival")]))[0]
    assert "at least 3 are required" in errors_of(csv(GOOD[:2]))[0]
    many = [(f"card question number {i}", "card_arrival") for i in range(101)]
    assert "exceeds the limit of 100" in errors_of(csv(many))[0]
    big = RawTable("big.csv", b"text,category\n" + b"a" * 10_001, "csv")
    assert "exceeds the limit" in errors_of(big)[0]


def test_bad_encoding_names_the_row() -> None:
    body = b"text,category\nwhere is my card,card_arrival\nmy card was stolen,lost_or_stolen_card\n"
    raw = RawTable("latin.csv", body + "caf\xe9 card,card_arrival\n".encode("latin-1"), "csv")
    errs = errors_of(raw)
    assert errs[0].startswith("latin.csv row 3: not valid UTF-8 at byte")


def test_control_and_replacement_characters() -> None:
    assert "U+FFFD" in errors_of(csv([*GOOD, ("caf\ufffd card", "card_arrival")]))[0]
    assert "control character U+0007" in errors_of(csv([*GOOD, ("bell\x07 card", "card_arrival")]))[0]


def test_all_errors_reported_not_only_the_first() -> None:
    errs = errors_of(csv([*GOOD, ("", "card_arrival"), ("ok text", "nope"), ("  ", "")]))
    assert len(errs) == 4


def test_unparseable_and_unsupported(tmp_path: Path) -> None:
    raw = RawTable("broken.parquet", b"not parquet at all", "parquet")
    assert "cannot be parsed as parquet" in errors_of(raw)[0]
    with pytest.raises(DataSourceError, match="unsupported file type"):
        read_raw(str(tmp_path / "data.json"), SETTINGS)
    with pytest.raises(DataSourceError, match="no such file"):
        read_raw(str(tmp_path / "missing.csv"), SETTINGS)


def test_parquet_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "data.parquet"
    pd.DataFrame(GOOD, columns=["text", "label"]).to_parquet(path)
    data = validate_table(read_raw(str(path), SETTINGS), LABELS, settings=SETTINGS)
    assert data.label_column == "label" and len(data.texts) == 4
    pd.DataFrame([*GOOD, (None, "card_arrival")], columns=["text", "label"]).to_parquet(path)
    assert errors_of(read_raw(str(path), SETTINGS))[0] == (
        f"{path} row 5 column 'text': expected a string, found NoneType"
    )


def test_hash_ignores_order_but_not_content() -> None:
    texts, labels = [t for t, _ in GOOD], [lbl for _, lbl in GOOD]
    h = dataset_hash(texts, labels)
    assert h == dataset_hash(texts[::-1], labels[::-1])
    assert h != dataset_hash([*texts[:-1], texts[-1] + "!"], labels)
    assert h != dataset_hash(texts, [*labels[:-1], "top_up_failed"])
    assert h != dataset_hash(texts[:-1], labels[:-1])
    a = validate_table(csv(GOOD), LABELS, settings=SETTINGS)
    b = validate_table(csv([*GOOD[::-1], GOOD[0]]), LABELS, settings=SETTINGS)
    assert a.dataset_hash == b.dataset_hash
