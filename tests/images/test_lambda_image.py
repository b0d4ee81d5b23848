"""The Lambda image (docker/lambda.Dockerfile) built with a real OCI builder and run as Lambda runs a function.

What is real here: the image, built by oci.build (buildah; the stand-in Lambda Python base where
public.ecr.aws cannot be pulled, docker/standin/lambda-python.Dockerfile); the runtime path inside it
(/lambda-entrypoint.sh -> aws-lambda-rie -> /var/runtime/bootstrap -> awslambdaric -> the handler); the
function's configuration, from a `tofu plan` of infra/terraform with envs/dev.tfvars (tests/infra/planned.py):
image_config.command, memory_size, timeout, the log group, and the DynamoDB lock table's name and key;
the container started as Lambda starts one (oci/function.py: read-only root, a 512 MB /tmp, uid 993,
memory_size as the memory limit, Lambda's rlimits); DynamoDB answered by a moto server on this host.

What the plan cannot give and where it comes from instead: the function's environment variables are
unknown in a plan (some values name resources created at apply: the ALB listener and target groups,
the SNS topic). They are the plan's `workflow_environment` output, whose known values are the same
expressions, plus contract.yaml's image_variable naming the image (as the module sets it); the test
checks that these are exactly the names Terraform gives the function, less the ones unknown at plan.
The lock function is the one run: of the workflow's handlers it is the one whose dependency (a DynamoDB
table) an emulator on this host satisfies completely; the others need MLflow, ECS or the serving ALB.

Every handler module is imported inside the image (one `python -c`, as the function's user on a read-only
root: the bytecode must be in the image), and GIT_COMMIT inside equals the commit the image was built from.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from oci import build, function
from tests.infra.conftest import Moto, moto_server
from tests.infra.planned import dev_plan, resources

REPO = Path(__file__).resolve().parents[2]
FUNCTION = 'module.workflow.aws_lambda_function.this["lock"]'
LOCK_TABLE = "module.workflow.aws_dynamodb_table.lock"
# The execution role's credentials, as Lambda passes them; moto accepts any.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing"}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        bool(build.missing_tools()),
        reason=f"building and running the Lambda image needs {', '.join(build.missing_tools())} "
        "(buildah, podman, runc, mmdebstrap: scripts/apt-packages-images.txt)",
    ),
]


@pytest.fixture(scope="module")
def image() -> build.BuiltImage:
    """The lambdas image for the code as it is: reused when build/images-local.json has this commit's
    (a clean tree), else built (buildah's layer cache makes an unchanged rebuild quick)."""
    try:
        return build.ensure("lambdas")
    except build.BuildError as exc:
        pytest.fail(f"the lambdas image did not build:\n{exc}")


@pytest.fixture(scope="module")
def contract() -> dict[str, Any]:
    return dict(yaml.safe_load((REPO / "contract.yaml").read_text()))


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return dev_plan(tmp_path_factory)


@pytest.fixture(scope="module")
def lock_config(plan: dict[str, Any], contract: dict[str, Any], image: build.BuiltImage) -> function.FunctionConfig:
    """The lock function as Terraform configures it, its environment completed from the plan's outputs."""
    values = resources(plan, "aws_lambda_function")[FUNCTION]
    outputs = plan["output_changes"]
    environment = dict(outputs["workflow_environment"]["after"])
    unknown = set(outputs["workflow_environment"]["after_unknown"])
    environment[contract["image_variable"]] = image.ref  # what modules/workflow sets to lambda_image_uri
    names = set(outputs["lambda_environment_names"]["after"]["lock"])
    assert set(environment) == names - unknown, (
        f"the environment built here differs from what Terraform gives the function: "
        f"missing {sorted(names - unknown - set(environment))}, extra {sorted(set(environment) - names)}"
    )
    return function.FunctionConfig.from_terraform(values, environment=environment)


@pytest.fixture(scope="module")
def moto(plan: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    """moto on this host's loopback, holding the lock table as the plan declares it (name, hash key)."""
    table = resources(plan, "aws_dynamodb_table")[LOCK_TABLE]
    with moto_server(tmp_path_factory.mktemp("moto") / "moto.log") as server:
        _dynamodb(server.url).create_table(
            TableName=table["name"],
            KeySchema=[{"AttributeName": table["hash_key"], "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": a["name"], "AttributeType": a["type"]} for a in table["attribute"]],
            BillingMode=table["billing_mode"],
        )
        yield server


@pytest.fixture(scope="module")
def dynamodb(moto: Moto) -> Any:
    return _dynamodb(moto.url)


def _dynamodb(url: str) -> Any:
    return boto3.client(
        "dynamodb",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture(scope="module")
def lock_function(
    image: build.BuiltImage, lock_config: function.FunctionConfig, moto: Moto
) -> Iterator[function.LambdaContainer]:
    """The lock function's container: started once, invoked by the tests below in order."""
    fn = function.start(image.ref, lock_config, credentials=CREDENTIALS, environment={"AWS_ENDPOINT_URL": moto.url})
    try:
        yield fn
    finally:
        fn.stop()


@pytest.mark.infra
def test_the_configuration_is_terraforms(lock_config: function.FunctionConfig, plan: dict[str, Any]) -> None:
    """The handler, the lock table and the log group the function is given are the ones the plan creates."""
    assert lock_config.command == ["lambdas.lock.handler"]  # contract.yaml: key k runs lambdas.<k>.handler
    assert lock_config.environment["ESTEIRA_LOCK_TABLE"] == resources(plan, "aws_dynamodb_table")[LOCK_TABLE]["name"]
    log_group = resources(plan, "aws_cloudwatch_log_group")['module.workflow.aws_cloudwatch_log_group.lambda["lock"]']
    assert lock_config.log_group == log_group["name"]
    assert lock_config.name == "esteira-dev-lock"


@pytest.mark.infra
def test_the_lock_handler_answers_through_the_runtime_interface(
    lock_function: function.LambdaContainer, lock_config: function.FunctionConfig, dynamodb: Any
) -> None:
    acquired = lock_function.invoke({"action": "acquire", "owner": "execution-1"})
    assert acquired == {
        "step": "lock",
        "acquired": True,
        "owner": "execution-1",
        "holder": "execution-1",
        "status": "acquired",
    }
    assert lock_function.first_answer is not None and lock_function.first_answer < lock_config.timeout

    held = lock_function.invoke({"action": "acquire", "owner": "execution-2"})
    assert held == {
        "step": "lock",
        "acquired": False,
        "owner": "execution-2",
        "holder": "execution-1",
        "status": "already-running",
    }
    table = lock_config.environment["ESTEIRA_LOCK_TABLE"]
    item = dynamodb.get_item(TableName=table, Key={"lock_id": {"S": "train-evaluate-deploy"}})["Item"]
    assert item["owner"] == {"S": "execution-1"}

    assert lock_function.invoke({"action": "release", "owner": "execution-1"})["released"] is True
    assert "Item" not in dynamodb.get_item(TableName=table, Key={"lock_id": {"S": "train-evaluate-deploy"}})

    with pytest.raises(function.FunctionError) as failed:
        lock_function.invoke({"action": "acquire"})
    assert "ValueError: event needs 'owner'" in str(failed.value)
    assert failed.value.setting == "handler lambdas.lock.handler"


# Run in the function's container, as its user: what may be written, who runs, what Lambda set.
PROBE = """
import json, os
out = {"uid": os.getuid(), "gid": os.getgid(), "writable": {}, "env": {}}
for d in ("/", "/var/task", "/var/task/lambdas", "/var/runtime", "/var/lang", "/etc", "/opt", "/tmp"):
    try:
        with open(os.path.join(d, ".probe"), "w") as f:
            f.write("x")
        os.remove(os.path.join(d, ".probe"))
        out["writable"][d] = "yes"
    except OSError as exc:
        out["writable"][d] = exc.strerror
st = os.statvfs("/tmp")
out["tmp_mb"] = st.f_blocks * st.f_frsize // 2**20
for k in ("AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_REGION", "GIT_COMMIT", "LANG", "TZ"):
    out["env"][k] = os.environ.get(k)
out["memory_limit"] = next(
    (open(p).read().strip() for p in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
     if os.path.exists(p)), None)
print(json.dumps(out))
"""


@pytest.mark.infra
def test_the_function_runs_read_only_but_for_tmp_as_an_unprivileged_user(
    lock_function: function.LambdaContainer, lock_config: function.FunctionConfig, image: build.BuiltImage
) -> None:
    proc = lock_function.exec(["python", "-c", PROBE])
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    assert (seen["uid"], seen["gid"]) == (function.LAMBDA_UID, function.LAMBDA_GID)
    writable = seen["writable"]
    assert writable.pop("/tmp") == "yes"
    assert writable == dict.fromkeys(writable, "Read-only file system"), writable
    assert seen["tmp_mb"] == lock_config.ephemeral_storage == 512
    assert int(seen["memory_limit"]) == lock_config.memory_size * 2**20
    assert seen["env"] == {
        "AWS_LAMBDA_FUNCTION_NAME": "esteira-dev-lock",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_REGION": "us-east-1",
        "GIT_COMMIT": image.commit,
        "LANG": "en_US.UTF-8",
        "TZ": ":/etc/localtime",
    }


@pytest.mark.infra
def test_cold_start(
    image: build.BuiltImage,
    lock_config: function.FunctionConfig,
    moto: Moto,
    record_property: Any,
) -> None:
    """A new container, timed from `podman run` to the first invocation answered (a release of a lock
    nobody holds: one real DynamoDB call, no state change)."""
    seconds = function.cold_start_seconds(
        image.ref,
        lock_config,
        {"action": "release", "owner": "cold-start"},
        credentials=CREDENTIALS,
        environment={"AWS_ENDPOINT_URL": moto.url},
    )
    record_property("lambda_cold_start_s", round(seconds, 3))
    print(f"\nlambda cold start ({lock_config.name}, {lock_config.memory_size} MB): {seconds:.2f} s")
    assert 0 < seconds < lock_config.timeout


# One interpreter, as the function's user on a read-only root: every handler module imports, its
# bytecode (and that of everything it imports from /var/task) is in the image and current, and the
# image says which commit it was built from.
IMPORTS = """
import importlib, json, os, sys
names = json.loads(sys.argv[1])
failed = {}
for name in names:
    try:
        importlib.import_module(f"lambdas.{name}")
    except Exception as exc:
        failed[name] = f"{type(exc).__name__}: {exc}"
stale = []
for module in list(sys.modules.values()):
    source = getattr(module, "__file__", None) or ""
    if not source.startswith("/var/task/") or not source.endswith(".py"):
        continue
    cached = importlib.util.cache_from_source(source)
    try:
        header = open(cached, "rb").read(16)
    except OSError:
        stale.append(source)
        continue
    st = os.stat(source)
    flags = int.from_bytes(header[4:8], "little")
    if flags == 0 and (int.from_bytes(header[8:12], "little"), int.from_bytes(header[12:16], "little")) != (
        int(st.st_mtime) & 0xFFFFFFFF, st.st_size & 0xFFFFFFFF):
        stale.append(source)
print(json.dumps({"failed": failed, "stale": stale, "git_commit": os.environ.get("GIT_COMMIT")}))
"""


def test_every_handler_in_the_contract_imports_in_the_image(image: build.BuiltImage, contract: dict[str, Any]) -> None:
    names = list(contract["lambda_functions"])
    argv = ["podman", *build.RUNTIME, "run", "--rm", "--pull=never", "--network", "none", *function.LAMBDA_ULIMITS]
    argv += ["--read-only", "--read-only-tmpfs=false", "--tmpfs", "/tmp:rw,mode=1777"]
    argv += ["--user", f"{function.LAMBDA_UID}:{function.LAMBDA_GID}", "--entrypoint", "python"]
    argv += [image.ref, "-c", IMPORTS, json.dumps(names)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["failed"] == {}, f"handlers that do not import in {image.ref}: {seen['failed']}"
    assert seen["stale"] == [], f"imported without current bytecode in the image (compileall): {seen['stale'][:20]}"
    assert seen["git_commit"] == image.commit


def test_the_image_records_its_commit(image: build.BuiltImage) -> None:
    labels = build.inspect(image.ref)["Labels"]
    assert isinstance(labels, dict)
    assert labels["org.opencontainers.image.revision"] == image.commit
