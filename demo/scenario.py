"""The story the demo tells with BANKING77, and the data each act uses.

Launch: the service ships with 67 of the 77 intents. Ten intents are held back (they "do not exist
yet"), and 15 % of the launch intents' training rows are reserved as future traffic, so that nothing
the demo later labels was ever trained or evaluated on.

Steady traffic: test-split messages of the launch intents, uniform.
Campaign (the shift): a campaign changes the intent mix (ten launch intents carry most of it) and
messages of the ten new intents appear: new phrasing the first model has never seen.
Labelling: the campaign's traffic is labelled as it arrives (here by an oracle that knows the
BANKING77 label; in production, people) and split by a hash of the text, 80 % into the training
prefix and 20 % into the evaluation prefix, so the next retraining learns it and the gate measures it.
After retraining: campaign traffic drawn from the test split, which neither model trained on.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

from model.validate import ValidatedData

HELD_OUT = 10  # intents that appear only with the campaign
CAMPAIGN_INTENTS = 10  # launch intents whose share the campaign raises
CAMPAIGN_SHARE = 0.45  # of campaign traffic, to the campaign intents
NEW_INTENT_SHARE = 0.35  # of campaign traffic, to the new intents
RESERVED = 0.15  # of the launch intents' training rows, kept back as future traffic
EVAL_SHARE = 0.2  # of labelled traffic, to the evaluation prefix


@dataclass
class Pool:
    """Messages to send, with their true labels and a sampling weight per intent."""

    name: str
    texts: list[str]
    labels: list[str]
    weights: dict[str, float] = field(default_factory=dict)

    def draw(self, rng: random.Random) -> tuple[str, str]:
        if not self.weights:
            i = rng.randrange(len(self.texts))
            return self.texts[i], self.labels[i]
        intent = rng.choices(list(self.weights), weights=list(self.weights.values()))[0]
        idx = self._by_intent[intent]
        i = idx[rng.randrange(len(idx))]
        return self.texts[i], self.labels[i]

    def __post_init__(self) -> None:
        self._by_intent: dict[str, list[int]] = {}
        for i, label in enumerate(self.labels):
            self._by_intent.setdefault(label, []).append(i)
        self.weights = {k: v for k, v in self.weights.items() if k in self._by_intent}


def to_eval(text: str) -> bool:
    """Stable 80/20 split of labelled traffic by text, so a message never lands on both sides."""
    return hashlib.sha256(text.encode()).digest()[0] < 256 * EVAL_SHARE


@dataclass
class Scenario:
    launch_intents: list[str]
    new_intents: list[str]
    campaign_intents: list[str]
    launch_train: tuple[list[str], list[str]]
    launch_eval: tuple[list[str], list[str]]
    steady: Pool
    campaign_live: Pool  # sent before retraining, and labelled
    campaign_test: Pool  # sent after retraining starts, and used to compare old and new model

    @property
    def truth(self) -> dict[str, str]:
        return dict(zip(self.campaign_live.texts, self.campaign_live.labels, strict=True))


def _campaign_weights(campaign: list[str], new: list[str], launch: list[str]) -> dict[str, float]:
    rest = [i for i in launch if i not in campaign]
    weights = {i: CAMPAIGN_SHARE / len(campaign) for i in campaign}
    weights |= {i: NEW_INTENT_SHARE / len(new) for i in new}
    weights |= {i: (1 - CAMPAIGN_SHARE - NEW_INTENT_SHARE) / len(rest) for i in rest}
    return weights


def build(train: ValidatedData, test: ValidatedData, seed: int = 7) -> Scenario:
    intents = sorted(set(train.labels))
    new = intents[:: len(intents) // HELD_OUT][:HELD_OUT]
    launch = [i for i in intents if i not in new]
    rng = random.Random(seed)
    campaign = sorted(rng.sample(launch, CAMPAIGN_INTENTS))
    order = list(range(len(train.texts)))
    rng.shuffle(order)
    reserved: set[int] = set()
    per_intent: dict[str, int] = {}
    for i in order:
        label = train.labels[i]
        if label in new:
            reserved.add(i)  # every row of a new intent is future traffic
        elif per_intent.get(label, 0) < RESERVED * train.labels.count(label):
            per_intent[label] = per_intent.get(label, 0) + 1
            reserved.add(i)
    seed_rows = [i for i in range(len(train.texts)) if i not in reserved]
    future = sorted(reserved)
    weights = _campaign_weights(campaign, new, launch)
    eval_rows = [i for i, label in enumerate(test.labels) if label in launch]
    return Scenario(
        launch_intents=launch,
        new_intents=new,
        campaign_intents=campaign,
        launch_train=([train.texts[i] for i in seed_rows], [train.labels[i] for i in seed_rows]),
        launch_eval=([test.texts[i] for i in eval_rows], [test.labels[i] for i in eval_rows]),
        steady=Pool("steady", [test.texts[i] for i in eval_rows], [test.labels[i] for i in eval_rows]),
        campaign_live=Pool("campaign", [train.texts[i] for i in future], [train.labels[i] for i in future], weights),
        campaign_test=Pool("campaign (unseen)", list(test.texts), list(test.labels), weights),
    )
