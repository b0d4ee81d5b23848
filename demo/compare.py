"""Old vs new model on campaign messages that neither trained on (the test split, campaign mix)."""

from __future__ import annotations

import random
from typing import Any

from demo.scenario import Scenario
from model.config import Settings
from model.pyfunc import load_classifier
from pipelines import registry

SAMPLE = 2000


def compare(story: Scenario, old_version: str, new_version: str, seed: int = 3) -> dict[str, Any]:
    settings = Settings.from_env()
    rng = random.Random(seed)
    texts, truth = zip(*(story.campaign_test.draw(rng) for _ in range(SAMPLE)), strict=True)
    new_intents = set(story.new_intents)
    models = []
    for version in (old_version, new_version):
        clf = load_classifier(registry.model_uri(settings, version))
        predicted, confidence = clf.predict_top1(list(texts))
        hits = [p == t for p, t in zip(predicted, truth, strict=True)]
        on_new = [h for h, t in zip(hits, truth, strict=True) if t in new_intents]
        on_old = [h for h, t in zip(hits, truth, strict=True) if t not in new_intents]
        models.append(
            {
                "version": version,
                "accuracy": sum(hits) / len(hits),
                "new_intents_accuracy": sum(on_new) / max(1, len(on_new)),
                "launch_intents_accuracy": sum(on_old) / max(1, len(on_old)),
                "mean_confidence": sum(confidence) / len(confidence),
            }
        )
    return {"sample": SAMPLE, "models": models}
