"""A data source may be a folder (local directory or S3 prefix): all its files form one data set.

This is how labelled recent traffic joins the training data, so the cross-file rules matter: a text
labelled two ways in two files stops the pipeline naming both places, and a duplicate is kept once.
"""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from model.config import Settings
from model.data import DataSourceError, list_data_files
from model.validate import DataValidationError
from pipelines.validate_data import load_validated

BASE = "text,category\n" + "".join(f"where is my card number {i},card_arrival\n" for i in range(25))


@pytest.fixture()
def settings(banking77: Path) -> Settings:
    return Settings().replace(data_dir=str(banking77), aws_endpoint_url=None)


def test_folder_is_the_union_of_its_files_in_name_order(tmp_path: Path, settings: Settings) -> None:
    (tmp_path / "base.csv").write_text(BASE)
    (tmp_path / "labelled").mkdir()
    (tmp_path / "labelled" / "batch-1.csv").write_text(
        "text,category\nmy card got declined abroad,declined_card_payment\n"
    )
    (tmp_path / "notes.txt").write_text("not data")
    data = load_validated(str(tmp_path), settings=settings)
    assert len(data.texts) == 26 and data.labels[-1] == "declined_card_payment"
    assert [Path(f).name for f in data.files] == ["base.csv", "batch-1.csv"]
    alone = load_validated(str(tmp_path / "base.csv"), settings=settings)
    assert data.dataset_hash != alone.dataset_hash  # a new labelled file is a new data version


def test_a_conflict_across_files_names_both(tmp_path: Path, settings: Settings) -> None:
    (tmp_path / "a.csv").write_text(BASE)
    (tmp_path / "b.csv").write_text("text,category\nwhere is my card number 3,lost_or_stolen_card\n")
    with pytest.raises(DataValidationError) as err:
        load_validated(str(tmp_path), settings=settings)
    message = str(err.value)
    assert "b.csv row 1 column 'category'" in message and "a.csv row 4" in message


def test_a_duplicate_across_files_is_kept_once(tmp_path: Path, settings: Settings) -> None:
    (tmp_path / "a.csv").write_text(BASE)
    (tmp_path / "b.csv").write_text("text,category\nWhere is my card  number 3,card_arrival\n")
    data = load_validated(str(tmp_path), settings=settings)
    assert len(data.texts) == 25 and data.dropped_duplicates == 1


def test_row_limits_apply_to_the_whole_folder(tmp_path: Path, settings: Settings) -> None:
    (tmp_path / "tiny.csv").write_text("text,category\nhello there,card_arrival\n")
    with pytest.raises(DataValidationError, match="1 rows in all files; at least 20"):
        load_validated(str(tmp_path), settings=settings)
    with pytest.raises(DataValidationError, match="at least 20 are required"):
        load_validated(str(tmp_path / "tiny.csv"), settings=settings)  # a single file keeps its own limit


def test_an_empty_folder_is_a_clear_error(tmp_path: Path, settings: Settings) -> None:
    with pytest.raises(DataSourceError, match="no data files"):
        list_data_files(str(tmp_path), settings)


@mock_aws
def test_s3_prefix(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="data")
    s3.put_object(Bucket="data", Key="train/base.csv", Body=BASE.encode())
    s3.put_object(
        Bucket="data", Key="train/labelled/2026-11-24.csv", Body=b"text,category\nnew phrasing,card_arrival\n"
    )
    s3.put_object(Bucket="data", Key="trainee/other.csv", Body=b"text,category\nnot mine,card_arrival\n")
    data = load_validated("s3://data/train/", settings=settings)
    assert len(data.texts) == 26
    assert data.files == ["s3://data/train/base.csv", "s3://data/train/labelled/2026-11-24.csv"]
    with pytest.raises(DataSourceError, match="no data files"):
        load_validated("s3://data/nothing/", settings=settings)


@mock_aws
def test_seed_data_writes_validated_splits_where_the_workflow_reads(
    monkeypatch: pytest.MonkeyPatch, settings: Settings, tmp_path: Path
) -> None:
    from pipelines.cli import main
    from pipelines.seed_data import seed_data

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="data")
    out = seed_data("data", exclude_intents=["card_arrival", "pin_blocked"], settings=settings)
    assert out["train"]["uri"] == "s3://data/train/seed.csv" and out["train"]["intents"] == 75
    train = load_validated("s3://data/train/", settings=settings)
    assert "card_arrival" not in train.labels and len(train.texts) == out["train"]["rows"]
    with pytest.raises(ValueError, match="not in"):
        seed_data("data", exclude_intents=["no_such_intent"], settings=settings)
    bad = tmp_path / "bad.csv"
    bad.write_text("text,category\n,card_arrival\n")
    assert main(["seed-data", "--bucket", "data", "--train-data", str(bad)]) == 2  # invalid: nothing written
