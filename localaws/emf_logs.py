"""CloudWatch Logs' EMF extraction for local tasks: EMF lines a task prints become metric data.

In AWS the serving container's stdout goes to CloudWatch Logs (awslogs driver) and every line in
Embedded Metric Format becomes metrics automatically. Local ECS tasks write stdout to log files
(localaws.ecs); this thread tails those files and turns the EMF lines into PutMetricData calls on
the emulator, which is what lets alarms (localaws.alarms) and the canary checks see live traffic.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3


def metric_data(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The PutMetricData entries one EMF document stands for (one per metric per dimension set)."""
    meta = doc.get("_aws") or {}
    ts = datetime.fromtimestamp(int(meta.get("Timestamp", 0)) / 1000, UTC)
    out: list[dict[str, Any]] = []
    for directive in meta.get("CloudWatchMetrics") or []:
        for dimset in directive.get("Dimensions") or [[]]:
            if any(name not in doc for name in dimset):
                continue
            dims = [{"Name": name, "Value": str(doc[name])} for name in dimset]
            for metric in directive.get("Metrics") or []:
                value = doc.get(metric["Name"])
                if isinstance(value, bool) or not isinstance(value, int | float):
                    continue
                out.append(
                    {
                        "MetricName": metric["Name"],
                        "Dimensions": dims,
                        "Value": float(value),
                        "Unit": metric.get("Unit", "None"),
                        "Timestamp": ts,
                        "_namespace": directive.get("Namespace", ""),
                    }
                )
    return out


class EmfShipper:
    def __init__(self, logs_dir: Path, env: dict[str, str], interval: float = 0.5) -> None:
        self.logs_dir = logs_dir
        self.env = env
        self.interval = interval
        self._offsets: dict[Path, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.shipped = 0

    def _client(self) -> Any:
        return boto3.client(
            "cloudwatch",
            endpoint_url=self.env["AWS_ENDPOINT_URL"],
            region_name=self.env.get("AWS_DEFAULT_REGION", "us-east-1"),
            aws_access_key_id=self.env.get("AWS_ACCESS_KEY_ID", "localaws"),
            aws_secret_access_key=self.env.get("AWS_SECRET_ACCESS_KEY", "localaws"),
            aws_session_token=self.env.get("AWS_SESSION_TOKEN", "localaws"),
        )

    def poll(self) -> int:
        """Ship every complete EMF line written since the last poll; return how many data points."""
        by_ns: dict[str, list[dict[str, Any]]] = {}
        for path in sorted(self.logs_dir.glob("*.log")) if self.logs_dir.exists() else []:
            offset = self._offsets.get(path, 0)
            with path.open("rb") as fh:
                fh.seek(offset)
                chunk = fh.read()
            end = chunk.rfind(b"\n")
            if end < 0:
                continue
            self._offsets[path] = offset + end + 1
            for line in chunk[: end + 1].splitlines():
                if not line.startswith(b"{") or b'"_aws"' not in line:
                    continue
                try:
                    doc = json.loads(line)
                except ValueError:
                    continue
                for datum in metric_data(doc):
                    by_ns.setdefault(datum.pop("_namespace"), []).append(datum)
        sent = 0
        if by_ns:
            cw = self._client()
            for ns, data in by_ns.items():
                for i in range(0, len(data), 500):
                    cw.put_metric_data(Namespace=ns, MetricData=data[i : i + 500])
                    sent += len(data[i : i + 500])
        self.shipped += sent
        return sent

    def start(self) -> EmfShipper:
        self._thread = threading.Thread(target=self._loop, daemon=True, name="localaws-emf")
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll()
            except Exception as exc:  # keep shipping; the next pass retries the rest
                print(f"localaws emf: {exc!r}", flush=True)

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(5)
