"""Embedded Metric Format → CloudWatch metrics, as CloudWatch Logs does for an ECS task's awslogs stream.

In AWS the serving container prints EMF JSON on stdout, the awslogs driver ships it, and CloudWatch
extracts the metrics; the alarms read those. Locally the container's stdout goes to a log file, so
this thread tails the log files of service tasks and turns every EMF document into PutMetricData
through the emulator's own API (which is also what makes localaws evaluate the alarms). Lines that are
not EMF (plain structured logs) are ignored, as CloudWatch ignores them.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def metric_data(doc: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    """(namespace, MetricData) pairs for one EMF document; [] if it is not one."""
    meta = doc.get("_aws")
    if not isinstance(meta, dict):
        return []
    stamp = datetime.fromtimestamp(float(meta.get("Timestamp", 0)) / 1000, UTC)
    out: list[tuple[str, list[dict[str, Any]]]] = []
    for directive in meta.get("CloudWatchMetrics", []):
        data = []
        for dims in directive.get("Dimensions", []):
            if not all(isinstance(doc.get(d), str) for d in dims):
                continue
            dimensions = [{"Name": d, "Value": doc[d]} for d in dims]
            for metric in directive.get("Metrics", []):
                value = doc.get(metric.get("Name"))
                if isinstance(value, int | float):
                    datum = {"MetricName": metric["Name"], "Dimensions": dimensions, "Timestamp": stamp}
                    data.append({**datum, "Value": float(value), "Unit": metric.get("Unit", "None")})
        if data:
            out.append((directive.get("Namespace", "aws-embedded-metrics"), data))
    return out


class EmfShipper:
    """Tails `<workdir>/logs/*.log` (every local task's output) and ships EMF documents."""

    def __init__(self, local: Any, logs_dir: Path, interval: float = 1.0) -> None:
        self.local = local
        self.logs_dir = logs_dir
        self.interval = interval
        self.shipped = 0
        self._offsets: dict[Path, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="localaws-emf")

    def start(self) -> EmfShipper:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.ship_once()

    def ship_once(self) -> int:
        """Ship every complete EMF line written since the last pass, batched by namespace (one
        PutMetricData per 500 datapoints, as the 1 MB request limit allows; a call per line would make
        the emulator evaluate every alarm per line and fall behind a busy service)."""
        cloudwatch = None
        sent = 0
        batches: dict[str, list[dict[str, Any]]] = {}
        for path in sorted(self.logs_dir.glob("*.log")) if self.logs_dir.is_dir() else []:
            offset = self._offsets.get(path, 0)
            with path.open("rb") as fh:
                fh.seek(offset)
                chunk = fh.read()
            end = chunk.rfind(b"\n") + 1  # only whole lines; the rest next time
            self._offsets[path] = offset + end
            for line in chunk[:end].splitlines():
                if b'"_aws"' not in line:
                    continue
                try:
                    doc = json.loads(line)
                except ValueError:
                    continue
                for namespace, data in metric_data(doc):
                    batches.setdefault(namespace, []).extend(data)
        for namespace, data in batches.items():
            cloudwatch = cloudwatch or self.local.client("cloudwatch")
            for i in range(0, len(data), 500):
                cloudwatch.put_metric_data(Namespace=namespace, MetricData=data[i : i + 500])
            sent += len(data)
        self.shipped += sent
        return sent

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.ship_once()
            except Exception as exc:  # keep shipping; the next pass retries
                print(f"localaws emf: {exc!r}", flush=True)
