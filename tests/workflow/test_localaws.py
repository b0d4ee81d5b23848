"""localaws pieces on their own: the .sync rewrite, Lambda invoke modes, local ECS tasks."""

from __future__ import annotations

import io
import json
import sys
import time
import zipfile
from pathlib import Path

import pytest

from localaws import LocalAWS
from localaws.sfn import REWRITES, rewrite
from tests.unit.test_asl_validation import rendered


def test_rewrite_touches_only_sync_resources() -> None:
    original = json.dumps(rendered())  # the template filled as templatefile() would
    out = json.loads(rewrite(original, "123", "eu-west-1"))
    src = json.loads(original)
    for name, state in src["States"].items():
        if state.get("Resource") in REWRITES:
            fn = REWRITES[state["Resource"]]
            assert out["States"][name]["Resource"] == f"arn:aws:lambda:eu-west-1:123:function:{fn}"
            assert out["States"][name]["Parameters"] == state["Parameters"]
        else:
            assert out["States"][name] == state


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("README", "code comes from the checkout")
    return buf.getvalue()


def test_subprocess_lambda_reports_errors_like_aws(tmp_path: Path) -> None:
    with LocalAWS(workdir=tmp_path, lambda_mode="subprocess") as aws:
        role = aws.client("iam").create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        lam = aws.client("lambda")
        # Timeout: AWS's default of 3 s is shorter than a first boto3 client in a fresh venv on a busy
        # machine (CI, 2026-12-04: the handler's ValueError lost to Sandbox.Timedout); this is about errors.
        lam.create_function(FunctionName="lock", Runtime="python3.11", Role=role, Handler="lambdas.lock.handler",
                            Code={"ZipFile": _zip()}, Timeout=60)  # fmt: skip
        resp = lam.invoke(FunctionName="lock", Payload=json.dumps({"action": "steal", "owner": "x"}).encode())
        assert resp["FunctionError"] == "Unhandled"
        body = json.loads(resp["Payload"].read())
        assert body["errorType"] == "ValueError" and "unknown action" in body["errorMessage"]


def test_run_task_runs_the_command_with_its_environment(tmp_path: Path) -> None:
    with LocalAWS(workdir=tmp_path) as aws:
        ecs = aws.client("ecs")
        ecs.create_cluster(clusterName="c")
        # A RunTask task is batch work: it runs at the lowest CPU priority so serving tasks never wait on it.
        script = "import os, sys; print(os.environ['GREETING'], os.nice(0)); sys.exit(int(os.environ['CODE']))"
        env = [{"name": "GREETING", "value": "hello"}, {"name": "CODE", "value": "0"}]
        container = {
            "name": "main",
            "image": "x",
            "memory": 128,
            "command": [sys.executable, "-c", script],
            "environment": env,
        }
        td = ecs.register_task_definition(family="job", containerDefinitions=[container])["taskDefinition"][
            "taskDefinitionArn"
        ]
        ec2 = aws.client("ec2")
        vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24")["Subnet"]["SubnetId"]
        net = {"awsvpcConfiguration": {"subnets": [subnet]}}
        arns = []
        for code in ("0", "3"):
            override = {"containerOverrides": [{"name": "main", "environment": [{"name": "CODE", "value": code}]}]}
            started = ecs.run_task(
                cluster="c", taskDefinition=td, overrides=override, launchType="FARGATE", networkConfiguration=net
            )
            arns.append(started["tasks"][0]["taskArn"])
        deadline = time.monotonic() + 30
        while True:
            tasks = ecs.describe_tasks(cluster="c", tasks=arns)["tasks"]
            if all(t["lastStatus"] == "STOPPED" for t in tasks):
                break
            assert time.monotonic() < deadline
            time.sleep(0.2)
        codes = {t["taskArn"]: t["containers"][0]["exitCode"] for t in tasks}
        assert [codes[a] for a in arns] == [0, 3]
        logs = sorted((tmp_path / "logs").glob("*.log"))
        assert logs and all(p.read_text().strip() == "hello 19" for p in logs)


def test_a_batch_container_gets_the_lowest_cpu_weight() -> None:
    from oci.run import from_definition

    definition = {"name": "train", "image": "i", "memory": 512}
    argv = from_definition(definition, name="t", env={}, ports={}, cpu_shares=2).argv()
    assert argv[argv.index("--cpu-shares") + 1] == "2"
    assert "--cpu-shares" not in from_definition(definition, name="s", env={}, ports={}).argv()


def test_a_task_says_which_container_settings_it_cannot_honour() -> None:
    from localaws.ecs import unhonoured

    definition = {"name": "serving", "image": "i", "readonlyRootFilesystem": True, "user": "10001", "essential": True}
    assert unhonoured(definition) == {"readonlyRootFilesystem": True, "user": "10001"}
    assert unhonoured({"name": "plain", "readonlyRootFilesystem": False}) == {}


def test_cloud_map_names_resolve_per_request_through_the_private_dns(tmp_path: Path) -> None:
    """As Terraform creates them: the namespace is given inside DnsConfig, the service is bound to a
    process outside the emulator after its task started, and the name resolves on the next request."""
    import http.server
    import threading
    import urllib.request

    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "5")
            self.end_headers()
            self.wfile.write(b"hello")

        def log_message(self, *args: object) -> None:
            return

    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    with LocalAWS(workdir=tmp_path / "localaws") as aws:
        sd, ecs = aws.client("servicediscovery"), aws.client("ecs")
        op = sd.create_private_dns_namespace(Name="ns.internal", Vpc="vpc-1")["OperationId"]
        ns = sd.get_operation(OperationId=op)["Operation"]["Targets"]["NAMESPACE"]
        registry = sd.create_service(
            Name="mlflow", DnsConfig={"NamespaceId": ns, "DnsRecords": [{"Type": "A", "TTL": 10}]}
        )["Service"]["Arn"]
        ecs.create_cluster(clusterName="c")
        td = ecs.register_task_definition(
            family="m", containerDefinitions=[{"name": "m", "image": "i", "command": ["true"], "memory": 128}]
        )["taskDefinition"]["taskDefinitionArn"]
        proxy = urllib.request.ProxyHandler({"http": aws.dns.url})
        opener = urllib.request.build_opener(proxy)
        with pytest.raises(urllib.error.HTTPError) as refused:
            opener.open("http://mlflow.ns.internal:5000/health", timeout=10)
        assert refused.value.code == 502  # not registered yet: the name does not resolve
        aws.ecs.bind_external("c", "mlflow", f"http://127.0.0.1:{upstream.server_address[1]}")
        ecs.create_service(
            cluster="c", serviceName="mlflow", taskDefinition=td, desiredCount=1,
            serviceRegistries=[{"registryArn": registry}],
        )  # fmt: skip
        assert opener.open("http://mlflow.ns.internal:5000/health", timeout=10).read() == b"hello"
    upstream.shutdown()


def test_subprocess_lambda_times_init_apart_from_the_handler(tmp_path: Path) -> None:
    """AWS gives init (the module import) its own 10 s: a slow import within it does not eat the Timeout."""
    (tmp_path / "slow_init.py").write_text(
        "import time\ntime.sleep(2.5)\n\n\ndef handler(event, context):\n"
        "    time.sleep(event['sleep'])\n    return 'ok'\n"
    )
    with LocalAWS(workdir=tmp_path / "aws", lambda_mode="subprocess") as aws:
        role = aws.client("iam").create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        lam = aws.client("lambda")
        lam.create_function(FunctionName="slow", Runtime="python3.11", Role=role, Handler="slow_init.handler",
                            Code={"ZipFile": _zip()}, Timeout=2,
                            Environment={"Variables": {"PYTHONPATH": str(tmp_path)}})  # fmt: skip
        fast = lam.invoke(FunctionName="slow", Payload=json.dumps({"sleep": 0}).encode())
        assert "FunctionError" not in fast and json.loads(fast["Payload"].read()) == "ok"
        slow = lam.invoke(FunctionName="slow", Payload=json.dumps({"sleep": 3}).encode())
        assert slow["FunctionError"] == "Unhandled"
        assert json.loads(slow["Payload"].read())["errorType"] == "Sandbox.Timedout"
