"""Label the captured traffic and drop it where the next retraining reads it.

Reads the capture objects the service wrote to S3 (the same files the drift check reads), keeps the
messages an oracle can label (in the demo, the campaign's messages, whose BANKING77 label is known;
in production this is a labelling queue worked by people), and writes each batch as a CSV under
`s3://<data>/train/labelled/` or `s3://<data>/eval/labelled/` (split by a hash of the text; see
demo/scenario.py). The workflow trains on every file under `train/`, so nothing else has to change.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from demo.scenario import to_eval
from model.config import Settings
from pipelines.seed_data import write_labelled_csv


class Labeller:
    def __init__(
        self, s3: Any, capture_uri: str, data_bucket: str, truth: dict[str, str], settings: Settings, every: float = 5.0
    ) -> None:
        self.s3 = s3
        bucket, _, prefix = capture_uri[5:].partition("/")
        self.capture_bucket, self.capture_prefix = bucket, prefix
        self.data_bucket = data_bucket
        self.truth = truth
        self.settings = settings
        self.every = every
        self.labelled = {"train": 0, "eval": 0}
        self.files: list[str] = []
        self._seen: set[str] = set()
        self._done: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="labeller")

    def start(self) -> Labeller:
        # Captures that already exist (steady traffic) are not the campaign's: skip them.
        self._seen |= set(self._keys())
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop and label what has arrived so far (one last batch)."""
        self._stop.set()
        self._thread.join(30)

    def _keys(self) -> list[str]:
        keys: list[str] = []
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.capture_bucket, Prefix=self.capture_prefix):
            keys += [o["Key"] for o in page.get("Contents", [])]
        return keys

    def label_once(self) -> int:
        new = [k for k in self._keys() if k not in self._seen]
        batch: dict[str, tuple[list[str], list[str]]] = {"train": ([], []), "eval": ([], [])}
        for key in new:
            self._seen.add(key)
            body = self.s3.get_object(Bucket=self.capture_bucket, Key=key)["Body"].read().decode("utf-8")
            for line in body.splitlines():
                try:
                    text = json.loads(line)["text"]
                except (ValueError, KeyError, TypeError):
                    continue
                label = self.truth.get(text)
                if label is None or text in self._done:
                    continue
                self._done.add(text)
                side = "eval" if to_eval(text) else "train"
                batch[side][0].append(text)
                batch[side][1].append(label)
        written = 0
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        for side, (texts, labels) in batch.items():
            if texts:
                uri = f"s3://{self.data_bucket}/{side}/labelled/{stamp}-{len(self.files):03d}.csv"
                written += write_labelled_csv(uri, texts, labels, self.settings)
                self.labelled[side] += len(texts)
                self.files.append(uri)
        return written

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self.label_once()
        self.label_once()
