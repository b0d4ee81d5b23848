"""Lineage: who or what made a model version, from which data and code, why it was promoted, where it ran.

Every step that touches a version records its part here, as namespaced MLflow model-version tags
(`lineage.*`, JSON values), and then rewrites the version's lineage document (`lineage/lineage.json`)
and model card (`card/model_card.md`) among its training run's artifacts. The tags are the record;
the document and the card are rendered from the tags, the run and its artifacts, so either can be
regenerated at any time (`esteira lineage <version>` renders the document afresh).

Recording lineage fails the step when it cannot be written. An auditor needs the record of every
version that served a customer; a step that deployed a version and silently lost its record would
leave exactly the gap this exists to close. The write is idempotent (a retried step records the
same facts again), MLflow connection errors are TransientError to the Lambda runtime, so Step
Functions retries the step first; only a registry that stays unreachable fails it, and the workflow's
Catch then takes its failure path (before serving changes: notify; after: roll back) and says so.

The trigger and principal come with the execution input (`trigger`, set by whoever starts it:
pipelines/retrain_trigger.py, scripts/ci.py, `esteira start-training`). That copy is convenient, not
authoritative: the principal that really called states:StartExecution is in CloudTrail's record of
that call (docs/governance.md says how to find it).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from model.config import Settings
from pipelines import registry

SCHEMA = "esteira.lineage/v1"
DOCUMENT_PATH = "lineage/lineage.json"
PREFIX = "lineage."
# The tags this module writes on a model version (each value JSON, except execution_arn).
TAG_TRIGGER = "lineage.trigger"
TAG_EXECUTION = "lineage.execution_arn"
TAG_EXECUTIONS = "lineage.executions"
TAG_GATE = "lineage.gate"
TAG_PROMOTION = "lineage.promotion"
TAG_DEPLOYMENT = "lineage.deployment"
TAG_RELEASES = "lineage.releases"
TAG_REPLACED_BY = "lineage.replaced_by"
TAG_UPDATED = "lineage.updated_at"
# MLflow 3 allows 100,000 characters in a model-version tag, older servers (and run tags) 5,000-8,000.
# JSON cut in the middle is not JSON, so a list that outgrows this keeps its newest entries and says
# how many it dropped; the lineage document never drops any (it is rewritten from the full record).
MAX_TAG_CHARS = 5000
TRIGGER_KINDS = ("drift-alarm", "ci", "person", "unknown")
TRIGGER_FIELDS = ("kind", "alarm", "state_change_time", "run", "principal", "label")
UNKNOWN_TRIGGER_NOTE = "the execution input named no trigger; CloudTrail's StartExecution record names the caller"
REQUIRED = (
    "data.train.dataset_hash",
    "data.train.snapshot_uri",
    "data.eval.dataset_hash",
    "data.eval.snapshot_uri",
    "code.git_commit",
    "code.code_digest",
    "code.image",
    "execution.arn",
    "execution.trigger",
    "execution.principal",
    "gate",
)


class LineageError(RuntimeError):
    """The lineage of a version could not be recorded; the step must not pass as if it had been."""


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _short(value: Any, limit: int = 200) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------------------------------- triggers
def normalize_trigger(raw: Any) -> dict[str, str]:
    """The execution input's `trigger` as a small, known-shape object (it travels as one command-line
    argument to training, and SageMaker allows 256 characters per argument).

    Absent -> kind "unknown" with a note; a bare string (older CI inputs, "github-schedule") is kept
    as a label; an unknown kind becomes "unknown" with the kind kept as the label."""
    if raw is None or raw == "" or raw == {}:
        return {"kind": "unknown"}
    if isinstance(raw, str):
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict | str):  # the state machine passes States.JsonToString of the input's trigger
            return normalize_trigger(parsed)
        kind = "ci" if re.match(r"(github|jenkins|ci)\b", raw) else "unknown"
        return {"kind": kind, "label": _short(raw, 60)}
    if not isinstance(raw, dict):
        return {"kind": "unknown", "label": _short(json.dumps(raw, default=str), 60)}
    out = {k: _short(raw[k], 120) for k in TRIGGER_FIELDS if raw.get(k) not in (None, "")}
    if out.get("kind") not in TRIGGER_KINDS:
        if out.get("kind"):
            out["label"] = out.get("label") or out["kind"]
        out["kind"] = "unknown"
    return out


def trigger_argument(trigger: dict[str, Any]) -> str:
    """The compact JSON the state machine and the CLI pass around."""
    return json.dumps(normalize_trigger(trigger), separators=(",", ":"), sort_keys=True)


def caller_principal(settings: Settings | None = None) -> str:
    """The ARN of whoever runs this process (STS GetCallerIdentity needs no permission); "" if unknown."""
    from pipelines import aws

    try:
        return str(aws.client("sts", settings).get_caller_identity()["Arn"])
    except Exception:  # no credentials, or no route to STS: the trigger says "unknown" instead
        return ""


def ci_trigger(label: str = "", settings: Settings | None = None) -> dict[str, str]:
    """A CI job's trigger: the run's URL (GitHub Actions, Jenkins) or id, and the principal it runs as."""
    env = os.environ
    run = ""
    if env.get("GITHUB_RUN_ID"):
        server = env.get("GITHUB_SERVER_URL", "https://github.com")
        run = f"{server}/{env.get('GITHUB_REPOSITORY', '')}/actions/runs/{env['GITHUB_RUN_ID']}"
    elif env.get("BUILD_URL"):
        run = env["BUILD_URL"]
    elif env.get("BUILD_ID") or env.get("CI_RUN_ID"):
        run = env.get("BUILD_ID") or env.get("CI_RUN_ID", "")
    trigger = {"kind": "ci", "run": run or "unknown", "principal": caller_principal(settings) or "unknown"}
    if label:
        trigger["label"] = label
    return normalize_trigger(trigger)


def person_trigger(settings: Settings | None = None) -> dict[str, str]:
    return normalize_trigger({"kind": "person", "principal": caller_principal(settings) or "unknown"})


# ---------------------------------------------------------------------------------------- tags
def _load(tags: dict[str, str], key: str, default: Any = None) -> Any:
    raw = tags.get(key)
    if raw in (None, ""):
        return default
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _dump(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)


def _dump_list(items: list[dict[str, Any]]) -> str:
    """A JSON list that fits a tag: the newest entries, with how many older ones the document holds."""
    kept = list(items)
    text = _dump(kept)
    dropped = 0
    while len(text) > MAX_TAG_CHARS and len(kept) > 1:
        kept.pop(0)
        dropped += 1
        text = _dump([{"truncated": dropped, "see": DOCUMENT_PATH}, *kept])
    if len(text) > MAX_TAG_CHARS:  # one entry alone too large: keep its identity, drop the detail
        text = _dump([{"truncated": len(items), "see": DOCUMENT_PATH}])
    return text


def task_definition_revision(arn: str | None) -> int | None:
    match = re.search(r":(\d+)$", arn or "")
    return int(match.group(1)) if match else None


class _Version:
    """One model version's tags, read once, written key by key, then published."""

    def __init__(self, settings: Settings, version: str):
        self.settings = settings
        self.version = str(version)
        self.client = registry.client(settings)
        self.name = settings.registered_model_name
        self.entity = self.client.get_model_version(self.name, self.version)
        self.tags: dict[str, str] = dict(self.entity.tags or {})
        # Lists this process appended to: the document keeps them whole even when the tag drops old entries.
        self.full: dict[str, list[dict[str, Any]]] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return _load(self.tags, key, default)

    def set(self, key: str, value: Any) -> None:
        text = value if isinstance(value, str) else _dump(value)
        if len(text) > MAX_TAG_CHARS:
            text = _dump({"truncated": True, "see": DOCUMENT_PATH, "summary": _short(text, 500)})
        self.client.set_model_version_tag(self.name, self.version, key, text)
        self.tags[key] = text

    def set_list(self, key: str, items: list[dict[str, Any]]) -> None:
        text = _dump_list(items)
        self.client.set_model_version_tag(self.name, self.version, key, text)
        self.tags[key] = text
        self.full[key] = items

    def items(self, key: str) -> list[dict[str, Any]]:
        """A list tag's entries, merged with the document's (which keeps what the tag had to drop)."""
        tagged = [e for e in (self.get(key) or []) if isinstance(e, dict) and "truncated" not in e]
        if not any("truncated" in e for e in (self.get(key) or []) if isinstance(e, dict)):
            return tagged
        previous = _previous_document(self).get(_DOC_LIST_KEYS.get(key, ""), [])
        keep = [e for e in previous if isinstance(e, dict) and e not in tagged]
        return [*keep, *tagged]

    def publish(self) -> dict[str, Any]:
        self.set(TAG_UPDATED, now_iso())
        doc = build_document(self.settings, self.version, overrides=self.full)
        run_id = self.entity.run_id
        if not run_id:
            raise LineageError(f"model version {self.version} has no run to attach its lineage to")
        self.client.log_text(run_id, json.dumps(doc, indent=1, sort_keys=False, default=str), DOCUMENT_PATH)
        from pipelines import model_card

        model_card.publish(self.settings, self.version, doc)
        return doc


_DOC_LIST_KEYS = {TAG_RELEASES: "releases", TAG_EXECUTIONS: "executions"}


def _previous_document(v: _Version) -> dict[str, Any]:
    try:
        text = v.client.download_artifacts(v.entity.run_id or "", DOCUMENT_PATH, tempfile.mkdtemp(prefix="lineage-"))
        return dict(json.loads(Path(text).read_text()))
    except Exception:  # no document yet
        return {}


def _record(settings: Settings | None, version: str | None, fn: Callable[[_Version], None]) -> dict[str, Any]:
    """Read the version, let `fn` set its tags, publish; any failure is the step's failure."""
    settings = settings or Settings.from_env()
    if version in (None, ""):
        raise LineageError("no model version to record lineage for")
    v = _Version(settings, str(version))
    fn(v)
    return v.publish()


# ---------------------------------------------------------------------------------------- steps
def record_training(
    version: str,
    *,
    status: str,
    execution_arn: str | None,
    trigger: Any,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Training made (status "trained") or reused ("reused") this version for an execution."""
    trig = normalize_trigger(trigger)
    arn = execution_arn or ""

    def fn(v: _Version) -> None:
        entry = {
            "execution_arn": arn or "none (not run by the workflow)",
            "status": status,
            "trigger": trig,
            "at": now_iso(),
        }
        executions = v.items(TAG_EXECUTIONS)
        if not any(e.get("execution_arn") == entry["execution_arn"] for e in executions):
            v.set_list(TAG_EXECUTIONS, [*executions, entry])
        if status == "trained" or TAG_EXECUTION not in v.tags:
            v.set(TAG_EXECUTION, entry["execution_arn"])
            v.set(TAG_TRIGGER, trig)

    return _record(settings, version, fn)


def record_gate(
    version: str,
    *,
    passed: bool,
    reasons: list[str],
    champion_version: str | None,
    eval_dataset_hash: str,
    eval_snapshot_uri: str | None = None,
    execution_arn: str | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    gate = {
        "passed": bool(passed),
        "reasons": [_short(r, 300) for r in reasons],
        "decided_at": now_iso(),
        "compared_with_champion": champion_version,
        "eval_dataset_hash": eval_dataset_hash,
        "eval_snapshot_uri": eval_snapshot_uri,
        "execution_arn": execution_arn,
    }
    return _record(settings, version, lambda v: v.set(TAG_GATE, gate))


def record_promotion(
    version: str,
    *,
    status: str,
    previous_champion: str | None,
    execution_arn: str | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """The champion alias moved to this version (or did not); the version it replaces learns it too."""
    at = now_iso()
    promotion = {"status": status, "previous_champion": previous_champion, "at": at, "execution_arn": execution_arn}
    doc = _record(settings, version, lambda v: v.set(TAG_PROMOTION, promotion))
    if status == "promoted" and previous_champion and previous_champion != str(version):
        replaced = {"version": str(version), "at": at, "execution_arn": execution_arn, "status": "replaced"}
        _record(settings, previous_champion, lambda v: v.set(TAG_REPLACED_BY, replaced))
    return doc


def _release(v: _Version, execution_arn: str | None, strategy: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(all releases, this execution's release of the version) - created if new."""
    releases = v.items(TAG_RELEASES)
    key = execution_arn or "none (not run by the workflow)"
    for r in releases:
        if r.get("execution_arn") == key and r.get("strategy") == strategy:
            return releases, r
    release: dict[str, Any] = {
        "execution_arn": key,
        "strategy": strategy,
        "started_at": now_iso(),
        "outcome": "in_progress",
        "traffic": [],
        "rollbacks": [],
    }
    releases.append(release)
    return releases, release


def record_release(
    version: str,
    *,
    strategy: str,
    event: str,
    execution_arn: str | None = None,
    settings: Settings | None = None,
    **facts: Any,
) -> dict[str, Any]:
    """One event of a release: "deploy", "stable", "smoke", "start", "shift", "finalize", "abort",
    "shadow" or "rollback". Facts: task_definition, previous_task_definition, steps, weight, outcome,
    reason, champion, check (...), recorded on this execution's release of the version."""

    def fn(v: _Version) -> None:
        releases, r = _release(v, execution_arn, strategy)
        at = now_iso()
        td = facts.get("task_definition")
        if td:
            r["task_definition"] = td
            r["task_definition_revision"] = task_definition_revision(td)
        for key in ("previous_task_definition", "steps"):
            if facts.get(key) is not None:
                r[key] = facts[key]
        if event == "shift" and facts.get("weight") is not None:
            r["traffic"].append({"weight": int(facts["weight"]), "at": at})
        if event == "deploy":
            r["traffic"] = [*r["traffic"], {"weight": 100, "at": at}] if not r["traffic"] else r["traffic"]
        if event == "smoke":
            r["smoke"] = {"passed": bool(facts.get("passed")), "at": at, "detail": _short(facts.get("detail", ""))}
        if event == "check" and facts.get("check") is not None:
            r.setdefault("checks", []).append({"at": at, **facts["check"]})
        if event == "rollback":
            r["rollbacks"].append(
                {
                    "at": at,
                    "reason": _short(facts.get("reason", ""), 500),
                    "task_definition": facts.get("rollback_task_definition"),
                    "champion": facts.get("champion"),
                }
            )
        outcome = facts.get("outcome")
        if outcome:
            r["outcome"] = outcome
            if outcome != "in_progress":
                r["ended_at"] = at
            if facts.get("reason"):
                r["reason"] = _short(facts["reason"], 500)
        v.set_list(TAG_RELEASES, releases)
        if td and event in ("deploy", "finalize"):
            v.set(
                TAG_DEPLOYMENT,
                {
                    "task_definition": td,
                    "revision": task_definition_revision(td),
                    "previous_task_definition": facts.get("previous_task_definition"),
                    "strategy": strategy,
                    "at": at,
                    "execution_arn": execution_arn,
                },
            )

    doc = _record(settings, version, fn)
    if event == "rollback":
        restored = (facts.get("champion") or {}).get("to")
        if restored and restored != str(version):
            back = {
                "version": str(version),
                "at": now_iso(),
                "execution_arn": execution_arn,
                "status": "restored",
                "note": f"version {version} was rolled back; {restored} is champion again",
            }
            _record(settings, str(restored), lambda v: v.set(TAG_REPLACED_BY, back))
    return doc


# ---------------------------------------------------------------------------------------- document
def _get_run(settings: Settings, run_id: str) -> Any:
    return registry.client(settings).get_run(run_id) if run_id else None


def build_document(
    settings: Settings, version: str, *, overrides: dict[str, list[dict[str, Any]]] | None = None
) -> dict[str, Any]:
    """The lineage document of a version, rendered from its tags and its training run."""
    client = registry.client(settings)
    mv = client.get_model_version(settings.registered_model_name, str(version))
    run = _get_run(settings, mv.run_id or "")
    return document_from(
        name=settings.registered_model_name,
        version=str(mv.version),
        tags=dict(mv.tags or {}),
        run_tags=dict(run.data.tags) if run else {},
        run_id=mv.run_id or "",
        created=int(mv.creation_timestamp or 0),
        aliases=list(getattr(mv, "aliases", []) or []),
        overrides=overrides,
    )


def document_from(
    *,
    name: str,
    version: str,
    tags: dict[str, str],
    run_tags: dict[str, str],
    run_id: str,
    created: int,
    aliases: list[str],
    overrides: dict[str, list[dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """Pure: the document from a version's tags and its run's tags (unit-tested without MLflow)."""
    overrides = overrides or {}

    def tag(key: str) -> str | None:
        return tags.get(key) or run_tags.get(key) or None

    trigger = _load(tags, TAG_TRIGGER)
    execution_arn = tags.get(TAG_EXECUTION)
    execution: dict[str, Any] = {
        "arn": execution_arn,
        "trigger": trigger,
        "principal": (trigger or {}).get("principal") if isinstance(trigger, dict) else None,
        "principal_source": "the execution input's trigger; authoritative: CloudTrail StartExecution",
    }
    if isinstance(trigger, dict) and trigger.get("kind") == "unknown":
        execution["note"] = UNKNOWN_TRIGGER_NOTE
    releases = overrides.get(TAG_RELEASES) or [e for e in _load(tags, TAG_RELEASES, []) if isinstance(e, dict)]
    executions = overrides.get(TAG_EXECUTIONS) or [e for e in _load(tags, TAG_EXECUTIONS, []) if isinstance(e, dict)]
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "model": {
            "name": name,
            "version": version,
            "run_id": run_id,
            "model_uri": f"models:/{name}/{version}",
            "registered_at": dt.datetime.fromtimestamp(created / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            if created
            else None,
            "aliases": sorted(aliases),
        },
        "data": {
            "train": {
                "dataset_hash": tag("dataset_hash"),
                "snapshot_uri": tag("dataset_snapshot"),
                "source": run_tags.get("train_uri"),
            },
            "eval": {"dataset_hash": tag("eval_dataset_hash"), "snapshot_uri": tag("eval_dataset_snapshot")},
        },
        "code": {
            "git_commit": tag("git_commit"),
            "code_digest": tag("code_digest"),
            "image": tag("image"),
            "training_key": tag("training_key"),
            "params_hash": tag("params_hash"),
        },
        "reference": {k.removeprefix("reference."): v for k, v in tags.items() if k.startswith("reference.")},
        "execution": execution,
        "executions": executions,
        "gate": _load(tags, TAG_GATE)
        or (
            {"passed": tags["gate_passed"] == "true", "reasons": tags.get("gate_reasons", "").split("; ")}
            if "gate_passed" in tags
            else None
        ),
        "promotion": _load(tags, TAG_PROMOTION),
        "deployment": _load(tags, TAG_DEPLOYMENT),
        "releases": releases,
        "replaced": tags.get("previous_champion"),
        "replaced_by": _load(tags, TAG_REPLACED_BY),
        "updated_at": tags.get(TAG_UPDATED),
    }
    doc["missing"] = missing(doc)
    return doc


def missing(doc: dict[str, Any]) -> list[str]:
    """Required facts the document lacks (an empty list is a complete record)."""
    out = []
    for path in REQUIRED:
        node: Any = doc
        for part in path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node in (None, "", [], {}):
            out.append(path)
        elif path == "execution.trigger" and isinstance(node, dict) and node.get("kind") == "unknown":
            out.append("execution.trigger (unknown)")
    return out


def render_text(doc: dict[str, Any]) -> str:
    """The document for a person reading a terminal."""
    m, d, c, e = doc["model"], doc["data"], doc["code"], doc["execution"]
    lines = [
        f"model {m['name']} version {m['version']}  (run {m['run_id']}, registered {m['registered_at']})",
        f"  aliases now: {', '.join(m['aliases']) or 'none'}",
        "data",
        f"  train: {d['train']['dataset_hash']}  snapshot {d['train']['snapshot_uri']}",
        f"  eval:  {d['eval']['dataset_hash']}  snapshot {d['eval']['snapshot_uri']}",
        "code",
        f"  commit {c['git_commit']}  digest {c['code_digest']}",
        f"  image  {c['image']}",
        "started by",
        f"  execution {e['arn']}",
        f"  trigger   {json.dumps(e['trigger'])}",
        f"  principal {e['principal']}  ({e['principal_source']})",
    ]
    if e.get("note"):
        lines.append(f"  note      {e['note']}")
    gate = doc.get("gate")
    lines.append("gate")
    if gate:
        lines.append(f"  {'PASSED' if gate.get('passed') else 'REJECTED'} at {gate.get('decided_at', '?')}")
        lines += [f"  - {r}" for r in gate.get("reasons", [])]
    else:
        lines.append("  pending")
    p = doc.get("promotion")
    if p:
        lines.append(f"promotion: {p['status']} at {p['at']} (previous champion {p['previous_champion']})")
    dep = doc.get("deployment")
    if dep:
        lines.append(f"deployment: {dep['task_definition']} (revision {dep['revision']}) at {dep['at']}")
    lines.append(f"releases: {len(doc['releases'])}")
    for r in doc["releases"]:
        traffic = " -> ".join(f"{t['weight']}%" for t in r.get("traffic", [])) or "-"
        lines.append(
            f"  {r['strategy']} {r['outcome']} {r['started_at']} .. {r.get('ended_at', '')}  traffic {traffic}"
        )
        if r.get("reason"):
            lines.append(f"    reason: {r['reason']}")
        for rb in r.get("rollbacks", []):
            lines.append(f"    rolled back at {rb['at']}: {rb['reason']}")
    lines.append(f"replaced: {doc['replaced'] or 'nothing (first champion or never promoted)'}")
    rb = doc.get("replaced_by")
    lines.append(f"replaced by: {json.dumps(rb) if rb else 'nothing yet'}")
    lines.append(f"missing: {', '.join(doc['missing']) or 'nothing'}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------- serving
def _ready(url: str, timeout: float) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/ready", timeout=timeout) as resp:
            body = json.loads(resp.read() or b"{}")
            return {"status": resp.status, **(body if isinstance(body, dict) else {})}
    except urllib.error.HTTPError as exc:
        return {"status": exc.code, "error": exc.read().decode(errors="replace")[:200]}
    except OSError as exc:
        return {"status": None, "error": str(exc)[:200]}


def serving(
    settings: Settings | None = None, url: str | None = None, samples: int = 10, timeout: float = 5.0
) -> dict[str, Any]:
    """Which version answers traffic now (asked of the service: behind a load balancer each request
    reaches one task, so several are sampled; a canary shows two), the champion alias, whether they
    agree, and why the serving version serves (its gate decision and last release)."""
    from pipelines import aws

    settings = settings or Settings.from_env()
    url = url or aws.WorkflowSettings.from_env().serving_url
    answers = [_ready(url, timeout) for _ in range(max(1, samples))]
    seen = Counter(str(a["model_version"]) for a in answers if a.get("model_version") not in (None, ""))
    champion = registry.version_by_alias(settings, registry.CHAMPION)
    champ = None if champion is None else str(champion.version)
    versions: dict[str, Any] = {}
    for v in seen:
        try:
            doc = build_document(settings, v)
        except Exception as exc:  # a version the registry does not know: say so, do not hide it
            versions[v] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        last = doc["releases"][-1] if doc["releases"] else None
        versions[v] = {
            "answers": seen[v],
            "gate": doc["gate"],
            "promotion": doc["promotion"],
            "deployment": doc["deployment"],
            "last_release": last,
            "execution": doc["execution"],
            "missing": doc["missing"],
        }
    errors = [a.get("error") for a in answers if a.get("model_version") in (None, "")]
    return {
        "url": url,
        "samples": len(answers),
        "serving_versions": dict(seen),
        "unanswered": len(errors),
        "errors": sorted({str(e) for e in errors if e})[:3],
        "champion": champ,
        "agree": bool(seen) and set(seen) == {champ},
        "versions": versions,
        "asked_at": now_iso(),
        "elapsed_note": f"{len(answers)} GET /ready at {time.strftime('%H:%M:%S', time.gmtime())} UTC",
    }


def render_serving_text(report: dict[str, Any]) -> str:
    lines = [f"serving at {report['url']} ({report['samples']} answers sampled, {report['unanswered']} unanswered)"]
    for v, n in report["serving_versions"].items():
        lines.append(f"  version {v}: {n} answer(s)")
    lines.append(f"champion alias: {report['champion']}")
    lines.append("agree: yes" if report["agree"] else "agree: NO - the alias and the running service differ")
    for v, info in report["versions"].items():
        lines.append(f"why version {v} serves:")
        if "error" in info:
            lines.append(f"  {info['error']}")
            continue
        gate = info.get("gate") or {}
        lines.append(
            f"  gate: {'passed' if gate.get('passed') else 'not passed'}: {'; '.join(gate.get('reasons', []))}"
        )
        r = info.get("last_release")
        if r:
            lines.append(f"  last release: {r['strategy']} {r['outcome']} ({r.get('execution_arn')})")
        lines.append(f"  trigger: {json.dumps((info.get('execution') or {}).get('trigger'))}")
    return "\n".join(lines) + "\n"
