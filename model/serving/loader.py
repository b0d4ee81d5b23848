"""Load the model named by ESTEIRA_MODEL_URI and pin down which version it is.

Why resolve an alias before loading: `models:/name@champion` can move while we load; resolving it once to
a version number and loading `models:/name/<n>` means the version we report is the one we serve.
"""

from __future__ import annotations

import gc
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path

from model.classifier import IntentClassifier

_ALIAS = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[^/]+)$")
_VERSION = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>\d+)$")


@dataclass(frozen=True)
class LoadedModel:
    classifier: IntentClassifier
    version: str
    uri: str  # the concrete URI loaded (alias resolved)
    requested_uri: str
    load_seconds: float


class ModelLoadError(RuntimeError):
    """The model could not be loaded or failed its self-test; the message is shown on /ready."""


def resolve(model_uri: str, tracking_uri: str | None = None, fallback_version: str = "") -> tuple[str, str]:
    """Return (concrete_uri, version) for a registry alias/version URI, an s3:// URI or a local path."""
    if not model_uri:
        raise ModelLoadError("ESTEIRA_MODEL_URI is not set")
    if m := _ALIAS.match(model_uri):
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        try:
            mv = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri).get_model_version_by_alias(
                m["name"], m["alias"]
            )
        except MlflowException as exc:
            raise ModelLoadError(f"cannot resolve {model_uri}: {exc.message}") from exc
        return f"models:/{m['name']}/{mv.version}", str(mv.version)
    if m := _VERSION.match(model_uri):
        return model_uri, m["version"]
    if model_uri.startswith("models:/"):
        hint = "use models:/<name>@<alias> or models:/<name>/<n>"
        raise ModelLoadError(f"unsupported registry URI {model_uri!r}: {hint}")
    version = fallback_version or Path(model_uri.rstrip("/")).name or "unknown"
    return model_uri, version


def self_test(classifier: IntentClassifier) -> None:
    """A prediction and an explanation on a fixed text; also warms the caches the first request would fill."""
    preds = classifier.predict(["I want to check my card payment", "x"], top_k=3)
    if len(preds) != 2 or not all(p.intent in set(classifier.classes_) for p in preds):
        raise ModelLoadError("self-test: predictions do not name known intents")
    if not all(math.isfinite(p.confidence) and 0.0 <= p.confidence <= 1.0 for p in preds):
        raise ModelLoadError("self-test: confidences are not probabilities")
    classifier.explain("I want to check my card payment")


def load(
    model_uri: str, tracking_uri: str | None = None, fallback_version: str = "", *, collect: bool = True
) -> LoadedModel:
    """Resolve, load, self-test (which also warms the model's caches); then freeze the heap.

    Why gc.freeze: the imports and the model leave ~200k long-lived objects; a full collection over them
    took ~120 ms and set the p99. Frozen objects are skipped by every later collection.

    `collect=False` for a reload beside a serving model: the full collection before freezing holds the
    GIL for ~120 ms (the loop thread stalls with it), and is only worth it once, at start-up. A reload
    freezes without collecting; the few garbage cycles that may get frozen cost memory, not time.
    """
    from model.pyfunc import load_classifier

    start = time.perf_counter()
    concrete, version = resolve(model_uri, tracking_uri, fallback_version)
    if tracking_uri:
        import mlflow

        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)
    try:
        classifier = load_classifier(concrete)
    except ModelLoadError:
        raise
    except Exception as exc:  # any loader failure becomes the /ready reason
        raise ModelLoadError(f"cannot load {concrete}: {type(exc).__name__}: {exc}") from exc
    try:
        self_test(classifier)
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(f"self-test failed for {concrete}: {type(exc).__name__}: {exc}") from exc
    if collect:
        gc.collect()
    gc.freeze()
    return LoadedModel(classifier, version, concrete, model_uri, time.perf_counter() - start)
