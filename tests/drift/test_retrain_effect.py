"""The retrain-effect watch: decided once, on the new model's first windows; pause before notify."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from pipelines import drift_state, retrain_effect
from pipelines.retrain_trigger import PAUSE_KEY

TAGS = {retrain_effect.TAG_REASON: "drift", retrain_effect.TAG_TESTS: "input,oov", retrain_effect.TAG_PREVIOUS: "1"}
NOW = dt.datetime(2026, 12, 6, 8, 0, tzinfo=dt.UTC)


def test_only_a_drift_triggered_release_is_followed() -> None:
    assert retrain_effect.begin({}) is None
    assert retrain_effect.begin({retrain_effect.TAG_REASON: "manual"}) is None
    rec = retrain_effect.begin(TAGS, windows=3)
    assert rec is not None and rec["watch"] == ["input", "oov"] and rec["previous_version"] == "1"


def test_quiet_first_windows_mean_absorbed_and_a_new_kind_of_drift_is_not_held_against_it() -> None:
    rec = retrain_effect.begin(TAGS, windows=3)
    assert rec is not None
    rec = retrain_effect.observe(rec, [], "s3://r/1.json")
    rec = retrain_effect.observe(rec, ["prediction"], "s3://r/2.json")  # not a watched test
    assert rec["outcome"] is None
    rec = retrain_effect.observe(rec, [], "s3://r/3.json")
    assert rec["outcome"] == "absorbed" and len(rec["windows"]) == 3
    assert retrain_effect.observe(rec, ["oov"], None) == rec  # decided once


def test_the_same_test_firing_again_is_not_absorbed_at_once() -> None:
    rec = retrain_effect.begin(TAGS, windows=3)
    assert rec is not None
    rec = retrain_effect.observe(rec, ["oov", "prediction"], "s3://r/1.json")
    assert rec["outcome"] == "not_absorbed" and rec["windows"][0]["still_firing"] == ["oov"]


@pytest.fixture()
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any, str]]:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        ddb.create_table(
            TableName="lock",
            KeySchema=[{"AttributeName": "lock_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "lock_id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        sns = boto3.client("sns", region_name="us-east-1")
        topic = sns.create_topic(Name="notify")["TopicArn"]
        yield ddb, sns, topic


def test_not_absorbed_pauses_retraining_and_says_a_person_is_needed(aws: tuple[Any, Any, str]) -> None:
    ddb, sns, topic = aws
    rec = retrain_effect.observe(retrain_effect.begin(TAGS) or {}, ["input"], "s3://r/1.json")
    done = retrain_effect.act(rec, "2", ddb=ddb, sns=sns, table="lock", topic_arn=topic, now=NOW)
    assert done == ["paused", "notified"]
    item = ddb.get_item(TableName="lock", Key={"lock_id": {"S": PAUSE_KEY}})["Item"]
    assert item["model_version"]["S"] == "2" and "paused_until" not in item  # until a person removes it
    assert retrain_effect.act(rec, "2", ddb=ddb, sns=sns, table="lock", topic_arn=topic, now=NOW) == []  # once
    subject, body = retrain_effect.message(rec, "2")
    assert "did not absorb" in subject and len(subject) <= 100
    assert json.loads(body)["windows"][0]["report_uri"] == "s3://r/1.json"


def test_absorbed_does_nothing(aws: tuple[Any, Any, str]) -> None:
    ddb, sns, topic = aws
    rec = retrain_effect.observe(retrain_effect.begin(TAGS, windows=1) or {}, [], None)
    assert retrain_effect.act(rec, "2", ddb=ddb, sns=sns, table="lock", topic_arn=topic, now=NOW) == []
    assert "Item" not in ddb.get_item(TableName="lock", Key={"lock_id": {"S": PAUSE_KEY}})


def test_state_starts_where_the_previous_check_ended_and_never_beyond_the_lookback() -> None:
    week = dt.timedelta(days=7)
    fresh = drift_state.DriftState("3")
    assert fresh.window_start(NOW, 1.0, week) == NOW - dt.timedelta(hours=1)
    later = drift_state.DriftState("3", last_check_end=(NOW - dt.timedelta(hours=6)).isoformat())
    assert later.window_start(NOW, 1.0, week) == NOW - dt.timedelta(hours=6)
    stale = drift_state.DriftState("3", last_check_end=(NOW - dt.timedelta(days=30)).isoformat())
    assert stale.window_start(NOW, 1.0, week) == NOW - week


def test_state_round_trips_and_another_versions_state_is_not_taken() -> None:
    state = drift_state.DriftState("3", last_check_end=NOW.isoformat(), checks=2, evidence={"a": 1})
    for i in range(30):
        state.remember({"i": i})
    again = drift_state.DriftState.from_json(state.to_json(), "3")
    assert again == state and len(again.history) == drift_state.DriftState.HISTORY
    assert drift_state.DriftState.from_json(state.to_json(), "4") == drift_state.DriftState("4")
