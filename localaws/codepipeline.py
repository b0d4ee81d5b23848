"""CodePipeline runs here: moto 5.2.5 stores pipelines but marks every execution Succeeded at once.

Installed by LocalAWS.start(). StartPipelineExecution (called directly, or by an EventBridge rule whose
target is the pipeline, e.g. S3's "Object Created" event for the release zip) runs the stages in order
in a thread, as CodePipeline does, with the pipeline's role (`Enforcer.credentials(role,
"codepipeline.amazonaws.com")` when IAM is enforced, so what the actions do is authorised as in AWS):

- **Source / S3**: GetObject of the configured key (its VersionId is the revision); the object (a zip)
  becomes the output artifact and is copied to the artifact store (`artifactStore.location`).
- **Approval / Manual**: publishes the approval request to `NotificationArn` (if set), then waits for
  PutApprovalResult with the token GetPipelineState shows. Rejected fails the action.
- **Build / CodeBuild** (the stand-in): with the project's service role, the build creates its CloudWatch
  Logs stream (logsConfig; logs:CreateLogStream/PutLogEvents checked on the stream's ARN) and downloads
  the input artifact from the artifact store, as CodeBuild does (so the role's logs, S3 and KMS
  permissions are checked); then the project's buildspec phases (install,
  pre_build, build, post_build; each phase's commands in one `bash -e` shell) run as a LOCAL SUBPROCESS,
  not in a CodeBuild container image: the working directory is the unzipped input artifact (CODEBUILD_SRC_DIR),
  the environment is the emulator's (endpoint, region), the project's and the action's PLAINTEXT
  variables, CODEBUILD_* variables and the credentials of the project's service role. A non-zero exit
  fails the action; the log is <workdir>/codebuild/<build id>.log and goes to the log stream afterwards.
- **Invoke / StepFunctions**: DescribeStateMachine, then StartExecution of `StateMachineArn` (input
  Literal, or FilePath read from the input artifact), then DescribeExecution until it ends; the action
  fails unless the execution SUCCEEDED.

Actions run one runOrder group after another (actions sharing a runOrder run one after another here,
in parallel in AWS). GetPipelineExecution, ListPipelineExecutions, GetPipelineState,
ListActionExecutions, PutApprovalResult and StopPipelineExecution answer from this runner. Each
execution puts "CodePipeline Pipeline Execution State Change" events (STARTED, SUCCEEDED, FAILED) on
the default bus, so rules on them (the failure notification) fire.
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import threading
import time
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import yaml

log = logging.getLogger("localaws.codepipeline")
APPROVAL_TIMEOUT = float(os.environ.get("LOCALAWS_APPROVAL_TIMEOUT", "3600"))
PHASES = ("install", "pre_build", "build", "post_build")


class ActionFailed(RuntimeError):
    pass


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class ActionRun:
    stage: str
    name: str
    action: dict[str, Any]
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    status: str = "InProgress"
    summary: str = ""
    external_id: str = ""
    token: str = ""
    error: str = ""
    started: datetime = field(default_factory=_now)
    updated: datetime = field(default_factory=_now)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    decided: threading.Event = field(default_factory=threading.Event)
    approval: dict[str, str] = field(default_factory=dict)

    def finish(self, status: str, summary: str = "", error: str = "") -> None:
        self.status, self.summary, self.error, self.updated = status, summary, error, _now()


@dataclass
class Run:
    pipeline: dict[str, Any]
    moto_execution: Any  # moto's PipelineExecution: its status is kept current for moto's own answers
    trigger: dict[str, str]
    actions: list[ActionRun] = field(default_factory=list)
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {path, bucket, key}
    revisions: list[dict[str, Any]] = field(default_factory=list)
    stopped: bool = False
    current_stage: str = ""

    @property
    def id(self) -> str:
        return str(self.moto_execution.pipeline_execution_id)

    @property
    def status(self) -> str:
        return str(self.moto_execution.status)

    def set_status(self, status: str, summary: str = "") -> None:
        self.moto_execution.status = status
        self.moto_execution.status_summary = summary or None
        self.moto_execution.last_update_time = _now()


class Runner:
    def __init__(self, local: Any) -> None:
        self.local = local
        self.runs: dict[tuple[str, str], Run] = {}  # (pipeline name, execution id) -> run
        self.lock = threading.Lock()
        self.workdir = Path(local.workdir) / "codepipeline"

    # ---- identities
    def credentials(self, role_arn: str, service: str) -> dict[str, str]:
        enforcer = getattr(self.local, "iam", None)
        if enforcer is None:
            from localaws.server import CREDENTIALS

            return dict(CREDENTIALS)
        return dict(enforcer.credentials(role_arn, service, service.split(".")[0]))

    def authorize(self, role_arn: str, service: str, action: str, resource: str) -> None:
        """Permissions localaws.iam cannot see on the wire (the service acts on the backend directly)."""
        enforcer = getattr(self.local, "iam", None)
        if enforcer is not None:
            from localaws.iam import Check

            enforcer.authorize_role(role_arn, service, [Check(action, resource)])

    def client(self, service: str, creds: dict[str, str]) -> Any:
        make: Any = boto3.client
        return make(
            service,
            endpoint_url=self.local.endpoint_url,
            region_name=self.local.region,
            aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=creds.get("AWS_SESSION_TOKEN"),
        )

    # ---- starting
    def start(self, backend: Any, name: str, variables: Any, trigger: dict[str, str]) -> str:
        execution_id = backend.start_pipeline_execution(name, variables)
        pipeline = backend.pipelines[name]
        moto_execution = pipeline.executions[execution_id]
        run = Run(json.loads(json.dumps(pipeline.pipeline)), moto_execution, trigger)
        run.set_status("InProgress")
        with self.lock:
            self.runs[(name, execution_id)] = run
        arn = str(pipeline.metadata["pipelineArn"])
        threading.Thread(
            target=self._run, args=(backend, arn, run), daemon=True, name=f"codepipeline-{execution_id[:8]}"
        ).start()
        return str(execution_id)

    def find(self, name: str, execution_id: str) -> Run | None:
        with self.lock:
            return self.runs.get((name, execution_id))

    def latest(self, name: str) -> Run | None:
        with self.lock:
            runs = [r for (n, _), r in self.runs.items() if n == name]
        return runs[-1] if runs else None

    # ---- running
    def _run(self, backend: Any, arn: str, run: Run) -> None:
        pipeline = run.pipeline
        self._event(backend, arn, run, "STARTED")
        creds = self.credentials(pipeline["roleArn"], "codepipeline.amazonaws.com")
        failed = ""
        for stage in pipeline["stages"]:
            run.current_stage = stage["name"]
            for order in sorted({a.get("runOrder", 1) for a in stage["actions"]}):
                for action in [a for a in stage["actions"] if a.get("runOrder", 1) == order]:
                    if run.stopped:
                        failed = "stopped"
                        break
                    act = ActionRun(stage["name"], action["name"], action)
                    run.actions.append(act)
                    try:
                        self._action(run, act, creds)
                        if act.status == "InProgress":
                            act.finish("Succeeded", act.summary)
                    except Exception as exc:  # the action's failure is the execution's
                        log.warning("codepipeline %s %s/%s failed: %s", run.id, act.stage, act.name, exc)
                        act.finish("Failed", error=f"{type(exc).__name__}: {exc}"[:2000])
                        failed = f"Action {act.name} in stage {act.stage} failed: {exc}"[:2000]
                        break
                if failed:
                    break
            if failed:
                break
        if run.stopped:
            run.set_status("Stopped", "stopped by StopPipelineExecution")
            self._event(backend, arn, run, "STOPPED")
        elif failed:
            run.set_status("Failed", failed)
            self._event(backend, arn, run, "FAILED")
        else:
            run.set_status("Succeeded")
            self._event(backend, arn, run, "SUCCEEDED")

    def _action(self, run: Run, act: ActionRun, creds: dict[str, str]) -> None:
        kind = act.action["actionTypeId"]
        key = (kind["category"], kind["owner"], kind["provider"])
        config = act.action.get("configuration") or {}
        if key == ("Source", "AWS", "S3"):
            self._s3_source(run, act, config, creds)
        elif key == ("Approval", "AWS", "Manual"):
            self._approval(run, act, config, creds)
        elif key == ("Build", "AWS", "CodeBuild"):
            self._codebuild(run, act, config)
        elif key == ("Invoke", "AWS", "StepFunctions"):
            self._step_functions(run, act, config, creds)
        else:
            raise ActionFailed(f"localaws does not run {kind['category']}/{kind['provider']} actions")

    def _artifact_dir(self, run: Run, name: str) -> Path:
        """An input artifact unzipped (once per execution)."""
        artifact = run.artifacts[name]
        if "dir" not in artifact:
            target = self.workdir / run.id / "artifacts" / name
            target.mkdir(parents=True, exist_ok=True)
            with zipfile.ZipFile(artifact["path"]) as zf:
                zf.extractall(target)
            artifact["dir"] = target
        return Path(artifact["dir"])

    def _s3_source(self, run: Run, act: ActionRun, config: dict[str, str], creds: dict[str, str]) -> None:
        s3 = self.client("s3", creds)
        got = s3.get_object(Bucket=config["S3Bucket"], Key=config["S3ObjectKey"])
        body = got["Body"].read()
        version = str(got.get("VersionId") or "")
        if not zipfile.is_zipfile(io.BytesIO(body)):
            raise ActionFailed(f"s3://{config['S3Bucket']}/{config['S3ObjectKey']} is not a zip file")
        store = run.pipeline.get("artifactStore", {})
        for out in act.action.get("outputArtifacts", []):
            name = out["name"]
            path = self.workdir / run.id / f"{name}.zip"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(body)
            record: dict[str, Any] = {"name": name, "path": path}
            if store.get("location"):  # CodePipeline keeps every artifact in the artifact store
                key = f"{run.pipeline['name'][:20]}/{name[:10]}/{uuid.uuid4().hex[:7]}"
                s3.put_object(Bucket=store["location"], Key=key, Body=body)
                record |= {"bucket": store["location"], "key": key}
            run.artifacts[name] = record
            act.outputs.append(record)
        run.revisions.append(
            {
                "name": act.name,
                "revisionId": version,
                "revisionUrl": f"s3://{config['S3Bucket']}/{config['S3ObjectKey']}",
            }
        )
        act.external_id, act.summary = version, f"Amazon S3 version id: {version}"

    def _approval(self, run: Run, act: ActionRun, config: dict[str, str], creds: dict[str, str]) -> None:
        act.token = str(uuid.uuid4())
        if config.get("NotificationArn"):
            message = {
                "region": self.local.region,
                "approval": {
                    "pipelineName": run.pipeline["name"],
                    "stageName": act.stage,
                    "actionName": act.name,
                    "token": act.token,
                    "customData": config.get("CustomData", ""),
                    "externalEntityLink": config.get("ExternalEntityLink", ""),
                },
            }
            self.client("sns", creds).publish(
                TopicArn=config["NotificationArn"],
                Subject=f"APPROVAL NEEDED: AWS CodePipeline {run.pipeline['name']} for action {act.name}",
                Message=json.dumps(message),
            )
        if not act.decided.wait(APPROVAL_TIMEOUT) or run.stopped:
            raise ActionFailed("the approval was not answered in time" if not run.stopped else "stopped")
        if act.approval.get("status") != "Approved":
            raise ActionFailed(f"Rejected: {act.approval.get('summary', '')}")
        act.summary = act.approval.get("summary", "")

    def _codebuild(self, run: Run, act: ActionRun, config: dict[str, str]) -> None:
        from moto.codebuild.models import codebuild_backends

        backend = codebuild_backends[self.local_account()][self.local.region]
        project_name = config["ProjectName"]
        if project_name not in backend.codebuild_projects:
            raise ActionFailed(f"CodeBuild project {project_name} does not exist")
        project = backend.codebuild_projects[project_name].project_metadata
        self.authorize(run.pipeline["roleArn"], "codepipeline.amazonaws.com", "codebuild:StartBuild", project["arn"])
        self.authorize(
            run.pipeline["roleArn"], "codepipeline.amazonaws.com", "codebuild:BatchGetBuilds", project["arn"]
        )
        inputs = [a["name"] for a in act.action.get("inputArtifacts", [])]
        if config.get("PrimarySource"):
            inputs = [config["PrimarySource"]] + [i for i in inputs if i != config["PrimarySource"]]
        if not inputs:
            raise ActionFailed("a CodeBuild action needs an input artifact")
        build_uuid = str(uuid.uuid4())
        build_id = f"{project_name}:{build_uuid}"
        act.external_id = build_id
        build_creds = self.credentials(project["serviceRole"], "codebuild.amazonaws.com")
        # As CodeBuild does, with the project's role: the log stream first (a role that may not create it
        # fails the build before it starts), then the input artifact from the artifact store.
        logs = self._build_log_stream(project, build_uuid, project["serviceRole"])
        src = self._build_source(run, inputs[0], build_uuid, build_creds)
        spec_text = (project.get("source") or {}).get("buildspec") or ""
        if not spec_text or ("\n" not in spec_text and (src / spec_text).is_file()):
            spec_text = (src / (spec_text or "buildspec.yml")).read_text()
        spec = yaml.safe_load(spec_text) or {}
        env = dict(self.local.process_env())
        for var in (project.get("environment") or {}).get("environmentVariables", []) or []:
            if var.get("type", "PLAINTEXT") == "PLAINTEXT":
                env[var["name"]] = str(var["value"])
        env.update({k: str(v) for k, v in ((spec.get("env") or {}).get("variables") or {}).items()})
        for var in json.loads(config.get("EnvironmentVariables") or "[]"):
            if var.get("type", "PLAINTEXT") == "PLAINTEXT":
                env[var["name"]] = str(var["value"])
        env.update(
            {
                "CODEBUILD_BUILD_ID": build_id,
                "CODEBUILD_SRC_DIR": str(src),
                "CODEBUILD_INITIATOR": f"codepipeline/{run.pipeline['name']}",
                "CODEBUILD_RESOLVED_SOURCE_VERSION": run.revisions[0]["revisionId"] if run.revisions else "",
                "CODEBUILD_BUILD_SUCCEEDING": "1",
                "CODEPIPELINE_EXECUTION_ID": run.id,
            }
        )
        env.update(build_creds)
        timeout = float(project.get("timeoutInMinutes") or 60) * 60
        log_path = self.workdir.parent / "codebuild" / f"{build_id.replace(':', '-')}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + timeout
        try:
            self._build_phases(spec, src, env, deadline, build_id, log_path)
        finally:
            if logs is not None:
                self._send_log(logs, log_path)
        act.summary = f"Build {build_id} succeeded"

    def _build_phases(
        self, spec: dict[str, Any], src: Path, env: dict[str, str], deadline: float, build_id: str, log_path: Path
    ) -> None:
        with log_path.open("w") as out:
            for phase in PHASES:
                commands = ((spec.get("phases") or {}).get(phase) or {}).get("commands") or []
                if not commands:
                    continue
                out.write(f"[Container] Entering phase {phase.upper()}\n")
                out.flush()
                try:
                    proc = subprocess.run(
                        ["bash", "-e", "-c", "\n".join(commands)],
                        cwd=src,
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        timeout=max(1.0, deadline - time.monotonic()),
                        check=False,
                    )
                except subprocess.TimeoutExpired as exc:
                    raise ActionFailed(f"Build {build_id} timed out in phase {phase}; log {log_path}") from exc
                if proc.returncode != 0:
                    raise ActionFailed(
                        f"Build {build_id} failed in phase {phase.upper()} (exit {proc.returncode}); log {log_path}"
                    )

    def _build_source(self, run: Run, name: str, build_uuid: str, creds: dict[str, str]) -> Path:
        """The input artifact as the build downloads it: from the artifact store with the project's role
        (s3:GetObject, and kms:Decrypt for an SSE-KMS store), unzipped into the build's own directory."""
        artifact = run.artifacts[name]
        if artifact.get("bucket"):
            got = self.client("s3", creds).get_object(Bucket=artifact["bucket"], Key=artifact["key"])
            body = got["Body"].read()
        else:
            body = Path(artifact["path"]).read_bytes()
        target = self.workdir / run.id / "builds" / build_uuid
        target.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(io.BytesIO(body)) as zf:
            zf.extractall(target)
        return target

    def _build_log_stream(self, project: dict[str, Any], build_uuid: str, role_arn: str) -> tuple[Any, str, str] | None:
        """The build's CloudWatch Logs stream (logsConfig; default group /aws/codebuild/<project>):
        (client, group, stream), or None when the project's logs are disabled. CodeBuild writes it with the
        project's role; the checks are made here (as for an ECS task's awslogs stream, localaws.iam), because
        the wire call's resource is not known to the enforcer, and a refusal fails the build before it starts."""
        from localaws.server import CREDENTIALS

        config = (project.get("logsConfig") or {}).get("cloudWatchLogs") or {}
        if config.get("status", "ENABLED") != "ENABLED":
            return None
        group = config.get("groupName") or f"/aws/codebuild/{project['name']}"
        stream = f"{config['streamName']}/{build_uuid}" if config.get("streamName") else build_uuid
        group_arn = f"arn:aws:logs:{self.local.region}:{self.local_account()}:log-group:{group}"
        service = "codebuild.amazonaws.com"
        for action in ("logs:CreateLogStream", "logs:PutLogEvents"):
            self.authorize(role_arn, service, action, f"{group_arn}:log-stream:{stream}")
        logs = self.client("logs", dict(CREDENTIALS))
        try:
            logs.create_log_stream(logGroupName=group, logStreamName=stream)
        except logs.exceptions.ResourceNotFoundException:  # CodeBuild creates a missing group
            self.authorize(role_arn, service, "logs:CreateLogGroup", f"{group_arn}:log-stream:")
            logs.create_log_group(logGroupName=group)
            logs.create_log_stream(logGroupName=group, logStreamName=stream)
        return logs, group, stream

    @staticmethod
    def _send_log(target: tuple[Any, str, str], log_path: Path) -> None:
        logs, group, stream = target
        stamp = int(time.time() * 1000)
        lines = [line for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
        for start in range(0, len(lines), 5000):
            events = [{"timestamp": stamp, "message": line[:200_000]} for line in lines[start : start + 5000]]
            logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events)

    def _step_functions(self, run: Run, act: ActionRun, config: dict[str, str], creds: dict[str, str]) -> None:
        if config.get("InputType", "Literal") == "FilePath":
            inputs = [a["name"] for a in act.action.get("inputArtifacts", [])]
            if not inputs:
                raise ActionFailed("InputType FilePath needs an input artifact")
            path = self._artifact_dir(run, inputs[0]) / config.get("Input", "")
            if not path.is_file():
                raise ActionFailed(f"the input artifact has no file {config.get('Input')}")
            payload = path.read_text()
        else:
            payload = config.get("Input") or "{}"
        sfn = self.client("stepfunctions", creds)
        # The action reads the state machine first (its type decides how the execution is followed): the
        # pipeline's role needs states:DescribeStateMachine as well as StartExecution and DescribeExecution.
        sfn.describe_state_machine(stateMachineArn=config["StateMachineArn"])
        name = f"{config.get('ExecutionNamePrefix') or act.name}-{run.id}"[:80]
        arn = sfn.start_execution(stateMachineArn=config["StateMachineArn"], name=name, input=payload)["executionArn"]
        act.external_id = arn
        while True:
            desc = sfn.describe_execution(executionArn=arn)
            if desc["status"] != "RUNNING":
                break
            if run.stopped:
                raise ActionFailed("stopped")
            time.sleep(1.0)
        act.summary = f"Execution {desc['status']}"
        if desc["status"] != "SUCCEEDED":
            raise ActionFailed(
                f"Execution {arn} {desc['status']}: {desc.get('error', '')} {desc.get('cause', '')}"[:1500]
            )

    def local_account(self) -> str:
        from moto.core import DEFAULT_ACCOUNT_ID

        return str(DEFAULT_ACCOUNT_ID)

    def _event(self, backend: Any, arn: str, run: Run, state: str) -> None:
        """The execution state change CodePipeline puts on the default bus."""
        from moto.events.models import events_backends

        detail = {
            "pipeline": run.pipeline["name"],
            "execution-id": run.id,
            "state": state,
            "version": run.pipeline.get("version", 1),
            "execution-trigger": run.trigger,
        }
        try:
            events_backends[backend.account_id][backend.region_name].put_events(
                [
                    {
                        "Source": "aws.codepipeline",
                        "DetailType": "CodePipeline Pipeline Execution State Change",
                        "Detail": json.dumps(detail),
                        "Resources": [arn],
                    }
                ]
            )
        except Exception:  # EventBridge delivery is asynchronous in AWS: never fails the pipeline
            log.exception("codepipeline: could not put the %s event", state)

    # ---- answers
    def state(self, name: str, pipeline: dict[str, Any], version: int) -> dict[str, Any]:
        run = self.latest(name)
        stages = []
        for stage in pipeline["stages"]:
            actions = []
            for action in stage["actions"]:
                latest = next(
                    (a for a in reversed(run.actions) if a.stage == stage["name"] and a.name == action["name"]), None
                ) if run else None  # fmt: skip
                entry: dict[str, Any] = {"actionName": action["name"]}
                if latest is not None:
                    execution: dict[str, Any] = {
                        "actionExecutionId": latest.id,
                        "status": latest.status,
                        "summary": latest.summary,
                        "lastStatusChange": latest.updated.isoformat(),
                        "externalExecutionId": latest.external_id,
                    }
                    if latest.token and latest.status == "InProgress":
                        execution["token"] = latest.token
                    if latest.error:
                        execution["errorDetails"] = {"code": "JobFailed", "message": latest.error}
                    entry["latestExecution"] = execution
                actions.append(entry)
            stage_state: dict[str, Any] = {
                "stageName": stage["name"],
                "inboundTransitionState": {"enabled": True},
                "actionStates": actions,
            }
            ran = [a for a in run.actions if a.stage == stage["name"]] if run else []
            if run and ran:
                status = "Failed" if any(a.status == "Failed" for a in ran) else "InProgress"
                if (status == "InProgress" and run.current_stage != stage["name"]) or run.status == "Succeeded":
                    status = "Succeeded"
                if run.status == "Stopped":
                    status = "Stopped"
                stage_state["latestExecution"] = {"pipelineExecutionId": run.id, "status": status}
            stages.append(stage_state)
        return {"pipelineName": name, "pipelineVersion": version, "stageStates": stages}

    def action_executions(self, name: str, execution_id: str | None) -> list[dict[str, Any]]:
        with self.lock:
            runs = [r for (n, _), r in self.runs.items() if n == name and (execution_id in (None, r.id))]
        out = []
        for run in reversed(runs):
            for a in reversed(run.actions):
                out.append(
                    {
                        "pipelineExecutionId": run.id,
                        "actionExecutionId": a.id,
                        "pipelineVersion": run.pipeline.get("version", 1),
                        "stageName": a.stage,
                        "actionName": a.name,
                        "startTime": a.started.isoformat(),
                        "lastUpdateTime": a.updated.isoformat(),
                        "status": a.status,
                        "input": {
                            "actionTypeId": a.action["actionTypeId"],
                            "configuration": a.action.get("configuration") or {},
                            "resolvedConfiguration": a.action.get("configuration") or {},
                            "roleArn": run.pipeline["roleArn"],
                            "region": self.local.region,
                            "inputArtifacts": [{"name": i["name"]} for i in a.action.get("inputArtifacts", [])],
                        },
                        "output": {
                            "outputArtifacts": [
                                {
                                    "name": o["name"],
                                    "s3location": {"bucket": o.get("bucket", ""), "key": o.get("key", "")},
                                }
                                for o in a.outputs
                            ],
                            "executionResult": {
                                "externalExecutionId": a.external_id,
                                "externalExecutionSummary": a.summary or a.error,
                            },
                        },
                    }
                )
        return out


# CodePipeline speaks awsJson1_1: timestamps are epoch seconds (JSON numbers). moto 5.2.5 writes ISO strings,
# which boto3 reads leniently but the Terraform provider (Go SDK) refuses ("expected Timestamp to be a JSON
# Number"): every answer here goes through _epochs.
TIMESTAMPS = frozenset(
    {"created", "updated", "startTime", "lastUpdateTime", "lastStatusChange", "approvedAt", "pollingDisabledAt"}
)


def _epoch(value: str | datetime) -> float:
    when = value if isinstance(value, datetime) else datetime.fromisoformat(value.replace("Z", "+00:00"))
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _epochs(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _epoch(v) if k in TIMESTAMPS and isinstance(v, str | datetime) else _epochs(v) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_epochs(v) for v in value]
    return value


def _json_epochs(method: Callable[[Any], str]) -> Callable[[Any], str]:
    def answer(self: Any) -> str:
        return json.dumps(_epochs(json.loads(method(self))))

    answer.__name__ = method.__name__
    return answer


# UpdateProject fields stored as given (AWS: an absent field is left as it is).
PROJECT_FIELDS = (
    "description", "source", "secondarySources", "sourceVersion", "secondarySourceVersions", "artifacts",
    "secondaryArtifacts", "cache", "environment", "serviceRole", "timeoutInMinutes", "queuedTimeoutInMinutes",
    "encryptionKey", "tags", "vpcConfig", "logsConfig", "fileSystemLocations", "buildBatchConfig",
    "concurrentBuildLimit", "autoRetryLimit",
)  # fmt: skip


def _codebuild_projects(undo: list[Callable[[], None]]) -> None:
    """CodeBuild projects as AWS keeps them, where moto 5.2.5 does not:

    - CreateProject validates as AWS does: CODEPIPELINE and NO_SOURCE sources, and CODEPIPELINE and
      NO_ARTIFACTS artifacts, have no location (moto requires one and refuses the provider's call);
    - CreateProject keeps the project's `encryptionKey` (moto answers alias/aws/s3 whatever was asked,
      so every later plan would show a change to the key);
    - UpdateProject exists (moto has none): the fields given replace the stored ones, `badgeEnabled` sets
      the badge, and an unknown project is ResourceNotFoundException. The provider calls it for any
      change to an aws_codebuild_project, including its tags."""
    from moto.codebuild import responses
    from moto.codebuild.exceptions import ResourceNotFoundException
    from moto.codebuild.responses import CodeBuildResponse
    from moto.core.responses import ActionResult
    from moto.core.utils import unix_time

    from localaws.missing_apis import _patch

    check_source = responses._validate_required_params_source
    check_artifacts = responses._validate_required_params_artifacts

    def source(source: dict[str, Any]) -> None:
        if source.get("type") in ("CODEPIPELINE", "NO_SOURCE") and not source.get("location"):
            return
        check_source(source)

    def artifacts(artifacts: dict[str, Any]) -> None:
        if artifacts.get("type") in ("CODEPIPELINE", "NO_ARTIFACTS") and not artifacts.get("location"):
            return
        check_artifacts(artifacts)

    responses._validate_required_params_source = source
    responses._validate_required_params_artifacts = artifacts

    def restore() -> None:
        responses._validate_required_params_source = check_source
        responses._validate_required_params_artifacts = check_artifacts

    undo.append(restore)
    moto_create = CodeBuildResponse.create_project

    def create_project(self: Any) -> Any:
        result = moto_create(self)
        key = self._get_param("encryptionKey")
        if key:
            self.codebuild_backend.codebuild_projects[self._get_param("name")].project_metadata["encryptionKey"] = key
        return result

    def update_project(self: Any) -> Any:
        name = str(self._get_param("name") or "")
        projects = self.codebuild_backend.codebuild_projects
        project = projects.get(name) or next((p for p in projects.values() if p.arn == name), None)
        if project is None:
            raise ResourceNotFoundException(
                f"Project cannot be found: arn:aws:codebuild:{self.region}:{self.current_account}:project/{name}"
            )
        if self._get_param("source") is not None:
            source(self._get_param("source"))
        if self._get_param("artifacts") is not None:
            artifacts(self._get_param("artifacts"))
        meta = project.project_metadata
        for param in PROJECT_FIELDS:
            value = self._get_param(param)
            if value is not None:
                meta[param] = value
        if self._get_param("badgeEnabled") is not None:
            meta["badge"] = {"badgeEnabled": bool(self._get_param("badgeEnabled"))}
        if self._get_param("tags") is not None:
            project.tags = self._get_param("tags")
        if self._get_param("serviceRole"):
            project.service_role = self._get_param("serviceRole")
        meta["lastModifiedDate"] = unix_time()
        return ActionResult({"project": meta})

    _patch(CodeBuildResponse, "create_project", create_project, undo)
    _patch(CodeBuildResponse, "update_project", update_project, undo)


def _s3_eventbridge_readback(undo: list[Callable[[], None]]) -> None:
    """GetBucketNotificationConfiguration names EventBridgeConfiguration when it is on (moto 5.2.5 stores it
    and sends the events, but leaves it out of the answer, so every plan after the apply wants
    aws_s3_bucket_notification.eventbridge false -> true)."""
    from moto.s3.responses import S3Response

    from localaws.missing_apis import _patch

    moto_get = S3Response.get_bucket_notification

    def get_bucket_notification(self: Any) -> Any:
        config = self.backend.get_bucket_notification_configuration(self.bucket_name)
        if config is None or config.event_bridge is None:
            return moto_get(self)
        from moto.core.responses import ActionResult

        result = {
            "TopicConfigurations": [_notification(t, "TopicArn") for t in config.topic],
            "QueueConfigurations": [_notification(q, "QueueArn") for q in config.queue],
            "LambdaFunctionConfigurations": [_notification(f, "LambdaFunctionArn") for f in config.cloud_function],
            "EventBridgeConfiguration": {},
        }
        self.data["Action"] = "GetBucketNotificationConfiguration"
        return self.serialized(ActionResult(result))

    _patch(S3Response, "get_bucket_notification", get_bucket_notification, undo)


def _notification(item: Any, arn_key: str) -> dict[str, Any]:
    out: dict[str, Any] = {"Id": item.id, arn_key: item.arn, "Events": item.events}
    if item.filters:
        out["Filter"] = {"Key": {"FilterRules": item.filters["S3Key"]["FilterRule"]}}
    return out


def install(local: Any) -> Callable[[], None]:
    from moto.codepipeline.exceptions import InvalidStructureException
    from moto.codepipeline.responses import CodePipelineResponse
    from moto.events.models import Rule

    from localaws.missing_apis import _patch

    runner = local.codepipeline = Runner(local)
    undo: list[Callable[[], None]] = []
    _codebuild_projects(undo)
    _s3_eventbridge_readback(undo)

    def start_pipeline_execution(self: Any) -> str:
        name = self._get_param("name")
        execution_id = runner.start(
            self.codepipeline_backend, name, self._get_param("variables"),
            {"triggerType": "StartPipelineExecution", "triggerDetail": ""},
        )  # fmt: skip
        return json.dumps({"pipelineExecutionId": execution_id})

    def get_pipeline_execution(self: Any) -> str:
        name, execution_id = self._get_param("pipelineName"), self._get_param("pipelineExecutionId")
        execution = self.codepipeline_backend.get_pipeline_execution(name, execution_id)
        body = execution.to_dict()
        run = runner.find(name, execution_id)
        if run is not None:
            body["artifactRevisions"] = run.revisions
            body["trigger"] = run.trigger
        return json.dumps({"pipelineExecution": body})

    def list_pipeline_executions(self: Any) -> str:
        name = self._get_param("pipelineName")
        summaries = self.codepipeline_backend.list_pipeline_executions(name, self._get_param("maxResults"))
        for summary in summaries:
            run = runner.find(name, summary["pipelineExecutionId"])
            if run is not None:
                summary["trigger"] = run.trigger
                summary["sourceRevisions"] = [
                    {"actionName": r["name"], "revisionId": r["revisionId"], "revisionUrl": r["revisionUrl"]}
                    for r in run.revisions
                ]
        return json.dumps({"pipelineExecutionSummaries": summaries})

    def get_pipeline_state(self: Any) -> str:
        name = self._get_param("name")
        pipeline, metadata = self.codepipeline_backend.get_pipeline(name)
        state = runner.state(name, pipeline, pipeline.get("version", 1))
        state["created"], state["updated"] = metadata["created"], metadata["updated"]
        return json.dumps(state)

    def put_approval_result(self: Any) -> str:
        name = self._get_param("pipelineName")
        stage, action, token = self._get_param("stageName"), self._get_param("actionName"), self._get_param("token")
        result = self._get_param("result") or {}
        run = runner.latest(name)
        act = next(
            (a for a in (run.actions if run else []) if a.stage == stage and a.name == action and a.token == token),
            None,
        )
        if act is None or act.status != "InProgress" or act.decided.is_set():
            raise InvalidStructureException(f"Approval token {token} is not valid for {name}/{stage}/{action}")
        if result.get("status") not in ("Approved", "Rejected"):
            raise InvalidStructureException("result.status must be Approved or Rejected")
        act.approval = {"status": result["status"], "summary": str(result.get("summary", ""))}
        act.decided.set()
        return json.dumps({"approvedAt": _now().isoformat()})

    def list_action_executions(self: Any) -> str:
        name = self._get_param("pipelineName")
        execution_id = (self._get_param("filter") or {}).get("pipelineExecutionId")
        return json.dumps({"actionExecutionDetails": runner.action_executions(name, execution_id)})

    def stop_pipeline_execution(self: Any) -> str:
        run = runner.find(self._get_param("pipelineName"), self._get_param("pipelineExecutionId"))
        if run is None:
            raise InvalidStructureException("no such pipeline execution")
        run.stopped = True
        for act in run.actions:
            act.decided.set()
        return json.dumps({"pipelineExecutionId": run.id})

    for method in (
        start_pipeline_execution, get_pipeline_execution, list_pipeline_executions, get_pipeline_state,
        put_approval_result, list_action_executions, stop_pipeline_execution,
        CodePipelineResponse.get_pipeline, CodePipelineResponse.list_pipelines,
    ):  # fmt: skip
        _patch(CodePipelineResponse, method.__name__, _json_epochs(method), undo)

    # EventBridge rules whose target is a pipeline start it with the target's role (as AWS does); the other
    # targets go to the delivery installed before (localaws.alarms).
    previous_send = Rule.send_to_targets

    class _Others:
        def __init__(self, rule: Any, targets: list[dict[str, Any]]) -> None:
            self._rule, self.targets = rule, targets

        def __getattr__(self, attr: str) -> Any:
            return getattr(self._rule, attr)

    def send_to_targets(rule: Any, event: Any, transform_input: bool = True) -> None:
        pipelines = [t for t in rule.targets if t["Arn"].split(":")[2] == "codepipeline"]
        if not pipelines:
            return previous_send(rule, event, transform_input)
        others = [t for t in rule.targets if t not in pipelines]
        if others:
            previous_send(_Others(rule, others), event, transform_input)  # type: ignore[arg-type]
        if (
            rule.state != "ENABLED"
            or not rule.event_pattern.get_pattern()
            or not rule.event_pattern.matches_event(event)
        ):
            return None
        for target in pipelines:
            threading.Thread(target=_start_from_event, args=(rule, target, dict(event)), daemon=True).start()
        return None

    def _start_from_event(rule: Any, target: dict[str, Any], event: dict[str, Any]) -> None:
        from moto.codepipeline.models import codepipeline_backends

        arn = target["Arn"]
        _, _, _, region, account, name = arn.split(":", 5)
        record: dict[str, Any] = {"rule": rule.name, "target": arn, "event": event, "ok": True}
        try:
            runner.authorize(
                target.get("RoleArn", ""), "events.amazonaws.com", "codepipeline:StartPipelineExecution", arn
            )
            rule_arn = f"arn:aws:events:{region}:{account}:rule/{rule.name}"
            trigger = {"triggerType": "CloudWatchEvent", "triggerDetail": rule_arn}
            record["execution"] = runner.start(codepipeline_backends[account][region], name, None, trigger)
        except Exception as exc:  # recorded, like EventBridge's failed-invocation metric
            record["ok"], record["error"] = False, repr(exc)
        getattr(local, "deliveries", []).append(record)

    Rule.send_to_targets = send_to_targets  # type: ignore[method-assign,assignment]

    def restore() -> None:
        Rule.send_to_targets = previous_send  # type: ignore[method-assign]
        for step in reversed(undo):
            step()
        for run in list(runner.runs.values()):
            run.stopped = True
            for act in run.actions:
                act.decided.set()

    return restore
