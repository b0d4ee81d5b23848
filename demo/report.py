"""The loop report: one self-contained HTML file (plots inlined as PNG) at reports/loop-<timestamp>.html.

`collect` turns a finished demo into plain data (JSON-serialisable, also saved next to the HTML);
`render` turns that data into HTML. Keeping the two apart lets tests render a report from stored data
without running the loop.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

STATE_LEVEL = {"OK": 0.0, "INSUFFICIENT_DATA": 0.5, "ALARM": 1.0}


# ---------------------------------------------------------------- data
def collect(ctx: Any) -> dict[str, Any]:
    from model.config import Settings
    from pipelines import model_card, registry

    traffic = ctx.state.get("traffic")
    t0 = ctx.state.get("traffic_t0", 0.0)
    records = [
        {"t": round(r.t + t0, 3), "ms": round(r.latency_ms, 2), "status": r.status, "version": r.version,
         "ok": r.predicted == r.truth, "pool": r.pool}
        for r in (traffic.records if traffic is not None else [])
    ]  # fmt: skip
    status = ctx.state.get("status")
    settings = Settings.from_env()
    client = registry.client(settings)
    versions = []
    for v in sorted({r["version"] for r in records if r["version"]}, key=int):
        mv = client.get_model_version(settings.registered_model_name, v)
        metrics = client.get_run(mv.run_id).data.metrics if mv.run_id else {}
        versions.append(
            {
                "version": v,
                "eval_accuracy": metrics.get("accuracy"),
                "eval_f1": metrics.get("macro_f1"),
                # The version's model card (pipelines/model_card.py), served by the demo's MLflow.
                "card_url": model_card.card_url(settings.mlflow_tracking_uri, mv.run_id) if mv.run_id else None,
            }
        )
    return {
        "generated": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "phases": ctx.phases,
        "events": ctx.events,
        "records": records,
        "alarm_history": status.history if status is not None else [],
        "drift": _drift_reports(ctx),
        "versions": versions,
        "compare": ctx.results.get("compare", {}),
        "canary": ctx.results.get("canary", {}),
        "loop": ctx.results.get("loop", {}),
        "convergence": ctx.results.get("convergence", {}),
        "total_seconds": round(ctx.now(), 1),
        "infrastructure": ctx.results.get("infrastructure", {}),
        "retraining": {k: v for k, v in ctx.results.get("retraining", {}).items() if k in ("name", "labelled")},
    }


def _drift_reports(ctx: Any) -> list[dict[str, Any]]:
    stack = ctx.state.get("stack")
    if stack is None:
        return []
    s3, bucket = ctx.state["aws"].client("s3"), stack.buckets["artifacts"]
    out = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="drift-reports/"):
        for obj in page.get("Contents", []):
            doc = json.loads(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
            metrics = doc.get("metrics", {})
            if "DriftScore" not in metrics:
                continue  # too few requests for a verdict
            end = dt.datetime.fromisoformat(doc["window"]["end"])
            out.append({
                "version": doc["model_version"], "score": metrics["DriftScore"], "time": end.timestamp(),
                "prediction": metrics.get("PredictionDrift", 0.0), "input": metrics.get("InputDrift", 0.0),
            })  # fmt: skip
    if out:  # wall-clock -> demo seconds: the newest report was written moments ago
        now_wall, now_demo = dt.datetime.now(dt.UTC).timestamp(), ctx.now()
        for d in out:
            d["t"] = round(now_demo - (now_wall - d.pop("time")), 1)
    return sorted(out, key=lambda d: d["t"])


# ---------------------------------------------------------------- plots
def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _mark_events(ax: Any, data: dict[str, Any]) -> None:
    for e in data["events"]:
        if e["kind"] in ("shift", "alarm", "deploy"):
            ax.axvline(e["t"], color={"shift": "tab:purple", "alarm": "tab:red", "deploy": "tab:green"}[e["kind"]],
                       linestyle="--", linewidth=1)  # fmt: skip


def plot_timeline(data: dict[str, Any]) -> str:
    fig, ax = plt.subplots(figsize=(10, 3.2))
    phases = data["phases"]
    for i, p in enumerate(phases):
        end = p.get("end", p["start"])
        colour = "tab:red" if p.get("status") == "failed" else "tab:blue"
        ax.barh(i, end - p["start"], left=p["start"], color=colour)
        ax.text(end + 1, i, f"{end - p['start']:.0f} s", va="center", fontsize=8)
    ax.set_yticks(range(len(phases)), [p["name"] for p in phases])
    ax.invert_yaxis()
    _mark_events(ax, data)
    ax.set_xlabel("seconds since start (dashed: shift, alarm, new model serving)")
    ax.set_title("Phases")
    return _png(fig)


def _bins(records: list[dict[str, Any]], width: float = 2.0) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = {}
    for r in records:
        out.setdefault(int(r["t"] // width), []).append(r)
    return out


def plot_latency(data: dict[str, Any]) -> str:
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(10, 5), sharex=True)
    bins = _bins(data["records"])
    xs = sorted(bins)
    for q, style in ((0.5, "-"), (0.99, ":")):
        ys = []
        for x in xs:
            lat = sorted(r["ms"] for r in bins[x])
            ys.append(lat[int(q * (len(lat) - 1))])
        ax.plot([x * 2 for x in xs], ys, style, label=f"p{int(q * 100)}")
    failed = [r for r in data["records"] if r["status"] != 200]
    if failed:
        ax.scatter([r["t"] for r in failed], [r["ms"] for r in failed], color="red", marker="x", label="failed")
    ax.set_ylabel("latency ms (2 s bins)")
    ax.set_yscale("log")
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(f"Latency over time ({len(data['records'])} requests, {len(failed)} failed)")
    for version in sorted({r["version"] for r in data["records"] if r["version"]}, key=int):
        pts = [(x * 2, sum(r["ok"] for r in bins[x] if r["version"] == version) / n)
               for x in xs if (n := sum(1 for r in bins[x] if r["version"] == version))]  # fmt: skip
        ax2.plot([p[0] for p in pts], [p[1] for p in pts], ".", markersize=3, label=f"version {version}")
    ax2.set_ylabel("live accuracy")
    ax2.set_ylim(0, 1.05)
    ax2.set_xlabel("seconds since start")
    ax2.legend(loc="lower left", fontsize=8)
    for a in (ax, ax2):
        _mark_events(a, data)
    return _png(fig)


def plot_versions(data: dict[str, Any]) -> str:
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.4))
    versions = data["versions"]
    names = [f"v{v['version']}" for v in versions]
    live = []
    for v in versions:
        rs = [r for r in data["records"] if r["version"] == v["version"] and r["status"] == 200]
        live.append(sum(r["ok"] for r in rs) / len(rs) if rs else 0.0)
    xs = range(len(versions))
    ax.bar([x - 0.2 for x in xs], [v["eval_accuracy"] or 0 for v in versions], 0.4, label="on its evaluation set")
    ax.bar([x + 0.2 for x in xs], live, 0.4, label="live (traffic it served)")
    ax.set_xticks(list(xs), names)
    ax.set_ylim(0, 1.05)
    ax.set_title("Accuracy per model version")
    ax.legend(fontsize=8, loc="lower right")
    for version in sorted({d["version"] for d in data["drift"]}, key=int):
        pts = [d for d in data["drift"] if d["version"] == version]
        ts = [d["t"] for d in pts]
        ax2.plot(ts, [d["score"] for d in pts], "o", label=f"v{version} DriftScore (1 = drift verdict)")
        mix = [d.get("prediction", 0.0) for d in pts]
        ax2.plot(ts, mix, "--", label=f"v{version} predicted-intent mix, JS divergence (bits)")
    ax2.axhline(1.0, color="tab:red", linewidth=1, label="alarm threshold")
    ax2.set_ylim(0, 1.2)
    ax2.set_title("Drift checks (scheduled)")
    ax2.set_xlabel("seconds since start")
    ax2.legend(fontsize=7, loc="lower right")
    _mark_events(ax2, data)
    return _png(fig)


def plot_alarms(data: dict[str, Any]) -> str:
    fig, ax = plt.subplots(figsize=(10, 2.8))
    names = sorted({h["alarm"] for h in data["alarm_history"]})
    for i, name in enumerate(names):
        pts = [h for h in data["alarm_history"] if h["alarm"] == name]
        ax.step([h["t"] for h in pts], [i + 0.8 * STATE_LEVEL.get(h["state"], 0.5) for h in pts], where="post")
        ax.text(pts[0]["t"] if pts else 0, i + 0.85, name, fontsize=8)
    ax.set_yticks([])
    ax.set_xlabel("seconds since start (each line: low = OK, middle = insufficient data, high = ALARM)")
    ax.set_title("Alarm history")
    _mark_events(ax, data)
    return _png(fig)


def plot_compare(data: dict[str, Any]) -> str:
    fig, ax = plt.subplots(figsize=(7, 3.2))
    models = data["compare"].get("models", [])
    groups = [("accuracy", "all campaign messages"), ("new_intents_accuracy", "new intents"),
              ("launch_intents_accuracy", "launch intents")]  # fmt: skip
    width = 0.8 / max(1, len(models))
    for j, m in enumerate(models):
        xs = [i + j * width for i in range(len(groups))]
        bars = ax.bar(xs, [m[k] for k, _ in groups], width, label=f"version {m['version']}")
        ax.bar_label(bars, fmt="%.2f", fontsize=8)
    ax.set_xticks([i + width * (len(models) - 1) / 2 for i in range(len(groups))], [g for _, g in groups])
    ax.set_ylim(0, 1.1)
    ax.set_title(f"Old vs new model on {data['compare'].get('sample', 0)} campaign messages neither trained on")
    ax.legend(fontsize=8)
    return _png(fig)


# ---------------------------------------------------------------- html
def render(data: dict[str, Any]) -> str:
    loop = data.get("loop", {})
    failed = sum(1 for r in data["records"] if r["status"] != 200)
    facts = [
        ("the loop (to the new model serving under traffic)", f"{loop.get('loop_seconds', '-')} s"),
        ("the whole demo", f"{data['total_seconds']:.0f} s"),
        ("alarm -> new model serving", f"{loop.get('alarm_to_new_model_s', '-')} s"),
        ("requests / failed", f"{len(data['records'])} / {failed}"),
        ("retraining run", data.get("retraining", {}).get("name", "-")),
        ("labelled messages", json.dumps(data.get("retraining", {}).get("labelled", {}))),
        ("infrastructure", data.get("infrastructure", {}).get("bootstrap", "-")),
    ]
    quiet = data.get("convergence") or {}
    if quiet:
        effect = quiet.get("retrain_effect", {})
        facts += [
            (
                f"after the retrain: version {quiet.get('model_version')}'s drift checks",
                ", ".join(f"{h['status']}{' ' + '+'.join(h['fired']) if h['fired'] else ''}" for h in quiet["checks"]),
            ),
            (
                "did the retrain absorb the drift?",
                f"{effect.get('outcome')} (watched {effect.get('watch')} over {len(effect.get('windows', []))} "
                f"window(s)); drift alarm {quiet.get('alarm')}; retraining runs {quiet.get('retraining_runs')}",
            ),
        ]
    for kind, run in (data.get("canary") or {}).items():
        load = run.get("load", {})
        facts.append(
            (
                f"canary release ({'healthy' if kind == 'good' else 'degraded'} candidate)",
                f"{run.get('status')} at steps {run.get('weights')} %, champion {run.get('champion', {}).get('before')}"
                f" -> {run.get('champion', {}).get('after')}, breaches {run.get('breaches', [])}, "
                f"{load.get('ok')} requests, {load.get('failed')} failed",
            )
        )
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in facts)
    cards = "".join(
        f'<li><a href="{html.escape(v["card_url"])}">model card of version {html.escape(str(v["version"]))}</a>'
        f" (Markdown, from the MLflow server while the demo runs)</li>"
        for v in data.get("versions", [])
        if v.get("card_url")
    )
    if cards:
        rows += f"<tr><th>model cards</th><td><ul>{cards}</ul></td></tr>"
    plots = [
        ("Timeline", plot_timeline(data)),
        ("Accuracy and drift per model version", plot_versions(data)),
        ("Alarms", plot_alarms(data)),
        ("Latency and live accuracy", plot_latency(data)),
        ("Old vs new model", plot_compare(data)),
    ]
    figures = "".join(
        f'<section><h2>{html.escape(t)}</h2><img alt="{html.escape(t)}" src="data:image/png;base64,{png}"></section>'
        for t, png in plots
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>esteira loop report {html.escape(data["generated"])}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em auto;max-width:1000px;color:#222}}
table{{border-collapse:collapse}}th,td{{text-align:left;padding:.2em .8em;border-bottom:1px solid #ddd}}
img{{max-width:100%}}h1{{margin-bottom:.2em}}</style></head>
<body><h1>esteira: the whole loop</h1><p>{html.escape(data["generated"])}</p>
<table>{rows}</table>{figures}</body></html>
"""


def write_report(data: dict[str, Any], reports: Path) -> Path:
    reports.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = reports / f"loop-{stamp}.html"
    path.write_text(render(data), encoding="utf-8")
    (reports / f"loop-{stamp}.json").write_text(json.dumps(data, default=str), encoding="utf-8")
    return path
