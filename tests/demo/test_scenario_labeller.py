"""The demo's data story must not leak: what the labeller feeds back was never trained or evaluated on,
and the labelled files are valid training data that land where the workflow reads."""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from demo import scenario
from demo.labeller import Labeller
from model.config import Settings
from pipelines.validate_data import load_validated


@pytest.fixture(scope="module")
def story(banking77: Path) -> scenario.Scenario:
    return scenario.build(load_validated("banking77:train"), load_validated("banking77:test"))


def test_launch_future_and_evaluation_rows_are_disjoint(story: scenario.Scenario) -> None:
    seed_train, seed_eval, future = (
        set(story.launch_train[0]),
        set(story.launch_eval[0]),
        set(story.campaign_live.texts),
    )
    assert not seed_train & future and not seed_train & seed_eval and not future & seed_eval
    assert not set(story.launch_train[1]) & set(story.new_intents)  # new intents do not exist at launch
    assert len(story.new_intents) == scenario.HELD_OUT and len(story.launch_intents) == 77 - scenario.HELD_OUT
    assert set(story.campaign_test.texts).isdisjoint(seed_train | future)  # the comparison set is unseen


def test_the_campaign_mix_is_the_one_described(story: scenario.Scenario) -> None:
    rng = random.Random(0)
    drawn = Counter(story.campaign_live.draw(rng)[1] for _ in range(20_000))
    new = sum(drawn[i] for i in story.new_intents) / 20_000
    campaign = sum(drawn[i] for i in story.campaign_intents) / 20_000
    assert abs(new - scenario.NEW_INTENT_SHARE) < 0.02 and abs(campaign - scenario.CAMPAIGN_SHARE) < 0.02


@pytest.fixture()
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        for bucket in ("capture", "data"):
            client.create_bucket(Bucket=bucket)
        yield client


def _capture(s3: Any, key: str, texts: list[str]) -> None:
    body = "\n".join(json.dumps({"text": t, "intent": "x", "confidence": 0.5, "model_version": "1"}) for t in texts)
    s3.put_object(
        Bucket="capture", Key=f"capture/model_version=1/dt=2026-11-24/hour=08/{key}.jsonl", Body=body.encode()
    )


def test_labeller_labels_only_new_known_traffic_and_splits_it(s3: Any, story: scenario.Scenario) -> None:
    settings = Settings.from_env()
    _capture(s3, "steady", story.steady.texts[:50])  # before the campaign: never labelled
    labeller = Labeller(s3, "s3://capture/capture/", "data", story.truth, settings, every=3600).start()
    campaign = story.campaign_live.texts[:400]
    _capture(s3, "a", [*campaign[:300], "a message nobody can label"])
    _capture(s3, "b", campaign[250:])  # 50 repeats: labelled once
    labeller.stop()  # labels the last batch
    assert labeller.labelled["train"] + labeller.labelled["eval"] == 400
    assert 40 <= labeller.labelled["eval"] <= 120  # ~20 %
    train = load_validated("s3://data/train/", settings=settings)
    evaluation = load_validated("s3://data/eval/", settings=settings)
    assert not set(train.texts) & set(evaluation.texts)
    assert all(story.truth[t] == label for t, label in zip(train.texts, train.labels, strict=True))
    assert all(f.startswith("s3://data/train/labelled/") for f in train.files)
