"""EventBridge schedule rules that fire: `rate(N minutes|hours|days)` delivers a "Scheduled Event".

moto stores a rule's ScheduleExpression and never fires it. Here a thread checks every rule on the
default bus once a second and delivers to its targets through the same path alarm events take
(alarms.py). A demo cannot wait six hours for a drift check, so `time_scale` (LOCALAWS_TIME_SCALE,
default 1) divides every period: with 4, `rate(1 minute)` fires every 15 s. cron() expressions are
not evaluated (they are kept, and `skipped` says so).

A compressed schedule can fire a rule again before its previous delivery has ended, which the real
period never does (a drift check every 6 hours takes seconds; at x1440 it is due every 15 s, and
checks that pile up on two cores slow every other part of the loop). So with a time scale above 1 a
rule does not fire while its previous firing is still being delivered; `deferred` counts those.
At the real time scale, firings may overlap, as in AWS.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def period_seconds(expression: str) -> float | None:
    """Seconds between firings of a rate() expression; None for anything else (cron)."""
    match = _RATE.match(expression.strip())
    if not match:
        return None
    return int(match.group(1)) * _SECONDS[match.group(2).rstrip("s")]


def scheduled_event(rule: Any, account: str, region: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [rule.arn],
        "detail": {},
    }


class Scheduler:
    def __init__(self, local: Any, time_scale: float = 1.0) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be > 0")
        self.local = local
        self.time_scale = time_scale
        self.fired: list[dict[str, Any]] = []
        self.skipped: set[str] = set()
        self.deferred: dict[str, int] = {}  # rule -> firings not made while its previous one still ran
        self._running: dict[str, list[threading.Thread]] = {}
        self._next: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="localaws-schedule")

    def start(self) -> Scheduler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def tick(self, now: float | None = None) -> None:
        """Fire every enabled schedule rule that is due; the first firing is one period after creation."""
        from moto.events.models import events_backends

        now = time.monotonic() if now is None else now
        for account, regions in list(events_backends.items()):
            for region, backend in list(regions.items()):
                bus = backend.event_buses.get("default")
                for rule in list(bus.rules.values()) if bus else []:
                    expression = getattr(rule, "scheduled_expression", None)
                    if not expression or rule.state != "ENABLED":
                        continue
                    period = period_seconds(expression)
                    if period is None:
                        self.skipped.add(rule.name)
                        continue
                    due = self._next.setdefault(rule.arn, now + period / self.time_scale)
                    if now < due:
                        continue
                    self._next[rule.arn] = now + period / self.time_scale
                    if self.time_scale > 1 and any(t.is_alive() for t in self._running.get(rule.arn, [])):
                        self.deferred[rule.name] = self.deferred.get(rule.name, 0) + 1
                        continue
                    event = scheduled_event(rule, account, region)
                    threads = [
                        threading.Thread(target=self.local.deliver, args=(rule, target, event), daemon=True)
                        for target in list(rule.targets)
                    ]
                    for thread in threads:
                        thread.start()
                    self._running[rule.arn] = threads
                    self.fired.append({"rule": rule.name, "at": time.time()})

    def _loop(self) -> None:
        while not self._stop.wait(1.0):
            try:
                self.tick()
            except Exception as exc:  # keep firing; the next tick retries
                print(f"localaws schedule: {exc!r}", flush=True)
