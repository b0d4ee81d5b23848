"""The service's state: the model it serves and how that model is swapped for another without a pause.

One object holds what every request needs (the model, the batcher, metrics, capture, the shadow mirror),
so the transport layers (model/serving/asgi.py, model/serving/http_protocol.py) and the predict core
(model/serving/predict.py) share it without globals.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from model.serving.batching import MicroBatcher
from model.serving.capture import CaptureWriter
from model.serving.contract import Contract
from model.serving.emf import Metrics
from model.serving.loader import LoadedModel, ModelLoadError, load
from model.serving.settings import ServingSettings
from model.serving.shadow import ShadowMirror

log = logging.getLogger("esteira.serving")


class ServingState:
    """Everything a request needs: the request contract, the current model and its loader status, the
    batcher, metrics, capture and the shadow mirror."""

    def __init__(self, settings: ServingSettings, loader: Callable[[str, bool], LoadedModel] | None = None):
        self.settings = settings
        self.contract = Contract(settings)
        self.model: LoadedModel | None = None
        self.status = "loading"
        self.reason: str | None = "model is loading"
        self.shutting_down = False
        self.reloading = False
        self.last_reload_error: str | None = None
        self._loader = loader or (
            lambda uri, first: load(
                uri, settings.mlflow_tracking_uri, fallback_version=settings.model_version, collect=first
            )
        )
        self.metrics = Metrics(settings.service_name, settings.low_confidence)
        self.shadow = ShadowMirror.from_settings(settings)  # None unless ESTEIRA_SHADOW_URL is set
        self.capture: CaptureWriter | None = None
        if settings.capture_s3_uri:
            self.capture = CaptureWriter(
                settings.capture_s3_uri,
                sample_rate=settings.capture_sample_rate,
                flush_s=settings.capture_flush_s,
                flush_records=settings.capture_flush_records,
                max_buffer=settings.capture_max_buffer,
                retries=settings.capture_retries,
                redaction=settings.capture_redaction,
                redaction_key=settings.capture_redaction_key,
                endpoint_url=settings.aws_endpoint_url,
                region=settings.aws_region,
            )
            capture = self.capture
            self.metrics.set_dropped_counter(lambda: capture.dropped)
        self.batcher: MicroBatcher | None = None
        self.in_flight = 0
        self.reloads = 0

    def _load_beside(self, uri: str) -> LoadedModel:
        return self._loader(uri, False)

    @property
    def version(self) -> str:
        return self.model.version if self.model else "none"

    def model_ref(self) -> tuple[str, Callable[[list[str], int], Any]]:
        model = self.model
        if model is None:
            raise ModelLoadError(self.reason or "model not loaded")
        return model.version, model.classifier.predict

    def record_batch(self, version: str, texts: list[str], preds: list[Any]) -> None:
        """Count a batch's predictions in its version's metrics (every prediction, shadow copies included)."""
        self.metrics.record_predictions(
            version, [p.intent for p in preds], [p.confidence for p in preds], [len(t) for t in texts]
        )

    async def load_initial(self) -> None:
        try:
            self.model = await asyncio.to_thread(self._loader, self.settings.model_uri, True)
        except Exception as exc:
            self.status, self.reason = "failed", str(exc) if isinstance(exc, ModelLoadError) else repr(exc)
            log.error("model load failed", extra={"reason": self.reason, "model_uri": self.settings.model_uri})
            return
        self.status, self.reason = "ready", None
        log.info(
            "model loaded",
            extra={
                "model_version": self.model.version,
                "model_uri": self.model.uri,
                "seconds": round(self.model.load_seconds, 2),
            },
        )

    async def reload(self, model_uri: str | None = None) -> bool:
        """Load a new model beside the current one, then swap the reference; on failure keep serving the old.

        Nothing heavy runs on the event loop: resolving, loading, the self-test (which warms the new model)
        and freezing happen in a worker thread while the old model answers every request; the swap is one
        reference assignment, so each batch is served whole by one model. The old model is freed by
        reference counting once its last batch is answered (no full GC on the loop: that stalled requests
        for seconds under load).
        """
        if self.reloading:
            return False
        self.reloading = True
        uri = model_uri or self.settings.model_uri
        started = time.perf_counter()
        try:
            new = await asyncio.to_thread(self._load_beside, uri)
        except Exception as exc:
            self.last_reload_error = str(exc)
            log.error("model reload failed; still serving the previous model", extra={"reason": str(exc)})
            if self.model is None:
                self.status, self.reason = "failed", str(exc)
            return False
        finally:
            self.reloading = False
        old = self.version
        self.model = new  # atomic: the next batch uses the new model, the running one finishes on the old
        self.reloads += 1
        self.status, self.reason, self.last_reload_error = "ready", None, None
        log.info(
            "model swapped",
            extra={
                "from_version": old,
                "model_version": new.version,
                "model_uri": new.uri,
                "seconds": round(time.perf_counter() - started, 3),
            },
        )
        return True
