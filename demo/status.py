"""Live progress: a status table on a terminal, a status line every 15 s otherwise (CI logs).

Shows the phase, the workflow executions, the serving model version, the alarm states and the
traffic (requests/s, p99, failed). It also records alarm transitions and version changes as events
for the report's timeline, so it polls even when nobody watches.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table


class Status:
    def __init__(self, ctx: Any, every: float = 1.0) -> None:
        self.ctx = ctx
        self.every = every
        self.console = Console(soft_wrap=True)
        self.tty = sys.stdout.isatty()
        self.alarms: dict[str, str] = {}
        self.history: list[dict[str, Any]] = []  # alarm states over time, for the report
        self.executions: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._live: Live | None = None
        self._thread = threading.Thread(target=self._loop, daemon=True, name="status")
        self._last_line = 0.0
        ctx.state["status"] = self

    def start(self) -> Status:
        if self.tty:
            self._live = Live(self.table(), console=self.console, refresh_per_second=2, transient=True)
            self._live.start()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        if self._live is not None:
            self._live.stop()

    def phase_started(self, i: int, n: int, name: str) -> None:
        self.console.print(f"[bold][{i}/{n}] {name}[/bold] ...", highlight=False)

    def phase_done(self, name: str, line: str, seconds: float) -> None:
        self.console.print(f"      {line}  [dim]({seconds:.1f}s)[/dim]", highlight=False)

    # ---- polling
    def poll(self) -> None:
        aws, stack = self.ctx.state.get("aws"), self.ctx.state.get("stack")
        if aws is None or stack is None or not stack.outputs.get("alarms"):
            return
        cw = aws.client("cloudwatch")
        for alarm in cw.describe_alarms(AlarmNames=stack.outputs["alarms"])["MetricAlarms"]:
            name, state = alarm["AlarmName"], alarm["StateValue"]
            if self.alarms.get(name) != state:
                if name in self.alarms:
                    self.ctx.event("alarm-state", f"{name}: {self.alarms[name]} -> {state}")
                self.alarms[name] = state
            self.history.append({"t": round(self.ctx.now(), 1), "alarm": name, "state": state})
        sfn = aws.client("stepfunctions")
        self.executions = sfn.list_executions(stateMachineArn=stack.outputs["state_machine_arn"])["executions"]

    def traffic(self) -> dict[str, Any]:
        traffic = self.ctx.state.get("traffic")
        if traffic is None:
            return {}
        recent = traffic.window(5.0)
        lat = sorted(r.latency_ms for r in recent)
        return {
            "rps": len(recent) / 5.0,
            "p99": lat[int(0.99 * (len(lat) - 1))] if lat else 0.0,
            "failed": len(traffic.failed()),
            "versions": sorted({r.version for r in recent if r.version}),
        }

    def table(self) -> Table:
        t = Table(title=f"esteira demo: {self.ctx.phase} ({self.ctx.now():.0f} s)", show_header=False, expand=False)
        t.add_column("what", style="bold")
        t.add_column("value")
        traffic = self.traffic()
        if traffic:
            t.add_row(
                "traffic",
                f"{traffic['rps']:.0f} req/s, p99 {traffic['p99']:.0f} ms, {traffic['failed']} failed, "
                f"serving version(s) {', '.join(traffic['versions']) or '-'}",
            )
        for e in self.executions[:4]:
            t.add_row("execution", f"{e['name']}: {e['status']}")
        for name, state in sorted(self.alarms.items()):
            colour = {"ALARM": "red", "OK": "green"}.get(state, "yellow")
            t.add_row("alarm", f"{name}: [{colour}]{state}[/{colour}]")
        labeller = self.ctx.state.get("labeller")
        if labeller is not None:
            t.add_row("labelled", f"{labeller.labelled['train']} train + {labeller.labelled['eval']} eval messages")
        return t

    def _line(self) -> str:
        traffic = self.traffic()
        prefix = f"{getattr(self.ctx.state.get('stack'), 'cluster', 'esteira')}-"
        alarms = ", ".join(f"{k.removeprefix(prefix)}={v}" for k, v in sorted(self.alarms.items()))
        runs = ", ".join(f"{e['name']}={e['status']}" for e in self.executions[:3])
        rps = f"{traffic['rps']:.0f} req/s p99 {traffic['p99']:.0f} ms failed {traffic['failed']}" if traffic else "-"
        head = f"  [{self.ctx.now():5.0f}s] {self.ctx.phase}"
        return f"{head}: traffic {rps}; executions {runs or '-'}; alarms {alarms or '-'}"

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.poll()
            except Exception:  # the emulator may be going away at shutdown
                continue
            if self._live is not None:
                self._live.update(self.table())
            elif time.monotonic() - self._last_line >= 15:
                self._last_line = time.monotonic()
                print(self._line(), flush=True)
