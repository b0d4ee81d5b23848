"""Step: put a validated data set where the workflow reads it: `s3://<data bucket>/train/` and `eval/`.

The state machine trains on every file under `train/` and evaluates on every file under `eval/`
(model/data.py: folder sources). A new deployment is seeded once with BANKING77; later files (labelled
recent traffic) are added next to it. Data is validated before it is written, so the bucket never
holds a file the pipeline would refuse; `exclude_intents` seeds a subset (the demo launches with
fewer intents than BANKING77 has, so new ones can appear in traffic later).

The taxonomy goes with the data (`labels/categories.json`, all of BANKING77's intents, excluded ones
too): the steps in AWS validate labels against it and have no route to the internet to fetch it.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import Any

import pandas as pd

from model.config import Settings
from model.data import LABELS_KEY, banking77_labels, s3_client
from pipelines.validate_data import load_validated


def write_labelled_csv(uri: str, texts: Sequence[str], labels: Sequence[str], settings: Settings) -> int:
    """Write (text, category) rows as CSV to an s3:// URI or local path; returns the row count."""
    buf = io.StringIO()
    pd.DataFrame({"text": list(texts), "category": list(labels)}).to_csv(buf, index=False)
    body = buf.getvalue().encode("utf-8")
    if uri.startswith("s3://"):
        bucket, _, key = uri[5:].partition("/")
        s3_client(settings).put_object(Bucket=bucket, Key=key, Body=body, ContentType="text/csv")
    else:
        with open(uri, "wb") as fh:
            fh.write(body)
    return len(texts)


def write_labels(bucket: str, settings: Settings) -> dict[str, Any]:
    """Put BANKING77's intent list at `s3://<bucket>/labels/categories.json` (ESTEIRA_LABELS_URI in AWS)."""
    labels = banking77_labels(settings)
    body = json.dumps(labels).encode()
    s3_client(settings).put_object(Bucket=bucket, Key=LABELS_KEY, Body=body, ContentType="application/json")
    return {"uri": f"s3://{bucket}/{LABELS_KEY}", "intents": len(labels)}


def seed_data(
    bucket: str,
    *,
    train_source: str = "banking77:train",
    eval_source: str = "banking77:test",
    exclude_intents: Sequence[str] = (),
    settings: Settings | None = None,
) -> dict[str, Any]:
    settings = settings or Settings.from_env()
    excluded = set(exclude_intents)
    written: dict[str, Any] = {}
    for split, source in (("train", train_source), ("eval", eval_source)):
        data = load_validated(source, settings=settings)
        unknown = excluded - set(data.labels)
        if unknown:
            raise ValueError(f"--exclude-intent names intents not in {source}: {sorted(unknown)}")
        keep = [i for i, label in enumerate(data.labels) if label not in excluded]
        uri = f"s3://{bucket}/{split}/seed.csv"
        rows = write_labelled_csv(uri, [data.texts[i] for i in keep], [data.labels[i] for i in keep], settings)
        written[split] = {"uri": uri, "rows": rows, "intents": len({data.labels[i] for i in keep})}
    written["labels"] = write_labels(bucket, settings)
    return {"step": "seed-data", "status": "seeded", "bucket": bucket, "excluded_intents": sorted(excluded), **written}
