data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.region
  arn_prefix = "${local.partition}:%s:${local.region}:${local.account_id}"

  state_machine_name         = "${var.name}-train-evaluate-deploy"
  release_state_machine_name = "${var.name}-release"
  # Built from its name, not read from the resource: the Lambdas need it in their environment and
  # the state machine needs the Lambda ARNs, which would otherwise be a cycle.
  state_machine_arn = "arn:${format(local.arn_prefix, "states")}:stateMachine:${local.state_machine_name}"
  # The release machine's, likewise: the role's policy must name it before the machine exists.
  release_state_machine_arn = "arn:${format(local.arn_prefix, "states")}:stateMachine:${local.release_state_machine_name}"
  serving_service_arn       = "arn:${format(local.arn_prefix, "ecs")}:service/${var.cluster_name}/${var.serving_service_name}"
  canary_service_arn        = "arn:${format(local.arn_prefix, "ecs")}:service/${var.cluster_name}/${var.canary_service_name}"
  # Per-version canary alarms the canary_check Lambda creates and deletes (never "-model-": no retraining).
  canary_alarm_prefix = "${var.name}${var.alarm_prefixes.canary}"
  lock_table_name     = "${var.name}-workflow-lock"

  # The Lambdas by key: the contract's keys (var.function_keys), sized by var.functions.
  functions = { for k in var.function_keys : k => lookup(var.functions, k, null) }

  # One place for the runtime configuration every step reads (model/config.py documents the names):
  # exactly the contract's names (var.environment_names); extra_environment only adds names.
  contract_environment = {
    ESTEIRA_ENV              = var.name
    MLFLOW_TRACKING_URI      = var.mlflow_tracking_uri
    ESTEIRA_MODEL_NAME       = var.model_name
    ESTEIRA_DATA_BUCKET      = var.bucket_names["data"]
    ESTEIRA_ARTIFACTS_BUCKET = var.bucket_names["artifacts"]
    # The intent taxonomy travels with the data (pipelines/seed_data.py): no step reaches the internet.
    # Validated data is kept there too, once per dataset hash (pipelines/snapshot.py).
    ESTEIRA_LABELS_URI               = "s3://${var.bucket_names["data"]}/${var.labels_key}"
    ESTEIRA_SNAPSHOT_URI             = "s3://${var.bucket_names["data"]}/${var.snapshots_prefix}/"
    ESTEIRA_CAPTURE_S3_URI           = var.capture_s3_uri
    ESTEIRA_ECS_CLUSTER              = var.cluster_name
    ESTEIRA_ECS_SERVICE              = var.serving_service_name
    ESTEIRA_TASK_FAMILY              = var.serving_task_family
    ESTEIRA_SERVING_URL              = var.serving_url
    ESTEIRA_STATE_MACHINE_ARN        = local.state_machine_arn
    ESTEIRA_SNS_TOPIC_ARN            = var.sns_topic_arn
    ESTEIRA_LOCK_TABLE               = local.lock_table_name
    ESTEIRA_METRICS_NAMESPACE        = var.metrics_namespace
    ESTEIRA_RETRAIN_COOLDOWN_SECONDS = tostring(var.retrain_cooldown_seconds)
    # The monitoring module names model-health alarms "<name>-model-*"; only those start retraining.
    ESTEIRA_RETRAIN_ALARM_PREFIX = "${var.name}${var.alarm_prefixes.retrain}"
    ESTEIRA_SERVICE_NAME         = var.serving_service_name
    # Canary and shadow releases (pipelines/release/).
    ESTEIRA_CANARY_SERVICE                 = var.canary_service_name
    ESTEIRA_LISTENER_ARN                   = var.listener_arn
    ESTEIRA_STABLE_TARGET_GROUP_ARN        = var.stable_target_group_arn
    ESTEIRA_CANARY_TARGET_GROUP_ARN        = var.canary_target_group_arn
    ESTEIRA_CANARY_ALARM_PREFIX            = local.canary_alarm_prefix
    ESTEIRA_METRICS_SERVICE                = var.serving_service_name
    ESTEIRA_CANARY_MAX_5XX_RATE            = tostring(var.canary_thresholds.max_5xx_rate)
    ESTEIRA_CANARY_MAX_5XX_COUNT           = tostring(var.canary_thresholds.max_5xx_count)
    ESTEIRA_CANARY_MAX_P99_MS              = tostring(var.canary_thresholds.max_p99_ms)
    ESTEIRA_CANARY_MAX_LOW_CONFIDENCE_RATE = tostring(var.canary_thresholds.max_low_confidence_rate)
    ESTEIRA_CANARY_MAX_PREDICTION_DRIFT    = tostring(var.canary_thresholds.max_prediction_drift)
    ESTEIRA_CANARY_MIN_REQUESTS            = tostring(var.canary_thresholds.min_requests)
  }
  environment = merge(var.extra_environment, local.contract_environment)
  # Names set here but not in the contract, or in the contract but not set (a precondition checks it is empty).
  environment_mismatch = setunion(
    setsubtract(keys(local.contract_environment), var.environment_names),
    setsubtract(var.environment_names, keys(local.contract_environment)),
  )
  # Each resource also gets the image it runs, as contract.yaml image_variable: the Lambdas run
  # lambda_image_uri, the training task (and SageMaker job, through the ASL) training_image_uri, so
  # it is not in the shared environment above nor in workflow_environment (a precondition keeps it
  # out), and it wins over extra_environment and a function's own environment.
  train_environment = merge(local.environment, { (var.image_variable) = var.training_image_uri })
  function_environments = {
    for k, f in local.functions : k => merge(
      local.environment, try(f.environment, {}), { (var.image_variable) = var.lambda_image_uri },
      contains(keys(local.mlflow_users), k) ? { ESTEIRA_MLFLOW_CREDENTIALS_SECRET = var.mlflow_credential_secret_arns[local.mlflow_users[k]] } : {},
    )
  }
  # Which MLflow user each function calls the registry as (modules/mlflow, docs/deploy.md "Who may move
  # an alias"): lambdas/_runtime.py reads that user's secret at a cold start. `workflow` may write
  # (register, tag, move aliases); `reader` may only read. A function not listed never calls MLflow
  # and can read neither secret.
  mlflow_users = {
    evaluate     = "workflow" # the challenger's evaluation run and tags
    promote      = "workflow" # moves `champion`
    deploy       = "workflow" # the release in the version's lineage, and the smoke test's outcome (RecordRelease)
    rollback     = "workflow" # moves `champion` back
    canary_check = "workflow" # release steps in the lineage
    drift_check  = "reader"   # the champion's reference profile and tags
  }
}

# ---- network identity shared by the Lambdas and the training task
resource "aws_security_group" "workflow" {
  name        = "${var.name}-workflow"
  description = "Workflow Lambdas and training tasks: outbound only"
  vpc_id      = var.vpc_id
  tags        = merge(var.tags, { Name = "${var.name}-workflow" })
}

resource "aws_vpc_security_group_egress_rule" "workflow_https" {
  security_group_id = aws_security_group.workflow.id
  description       = "HTTPS to AWS APIs (VPC endpoints, S3 and DynamoDB gateways)"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_vpc_security_group_egress_rule" "workflow_http_vpc" {
  security_group_id = aws_security_group.workflow.id
  description       = "MLflow (5000) and the serving tasks (8080) inside the VPC"
  cidr_ipv4         = var.vpc_cidr_block
  ip_protocol       = "tcp"
  from_port         = 5000
  to_port           = 8080
}

# ---- lock table: one workflow execution at a time
resource "aws_dynamodb_table" "lock" {
  name                        = local.lock_table_name
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "lock_id"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "lock_id"
    type = "S"
  }

  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }

  tags = var.tags
}

# ---- Lambdas: one image, one handler module per function, one role per function
data "aws_iam_policy_document" "lambda_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

locals {
  function_names = { for k in var.function_keys : k => "${var.name}-${replace(k, "_", "-")}" }
  in_vpc         = [for k in var.function_keys : k if !contains(var.functions_outside_vpc, k)]

  # What each function's code calls: lambdas/<key>.py and the pipelines/ and model/ code it runs,
  # each boto3 method as its IAM action, plus the permissions AWS checks implicitly (KMS for objects
  # in the SSE-KMS buckets, the DynamoDB table and the state machine under the stack's key;
  # ecs:TagResource for RegisterTaskDefinition with tags; iam:PassRole for the task definition's
  # roles; cloudwatch:TagResource for PutMetricAlarm with Tags). MLflow is HTTP inside the VPC and
  # the server proxies its artifacts: a function that calls it needs only its MLflow user's secret
  # (mlflow_workflow or mlflow_reader, local.mlflow_users) and the key it is under. Every role also gets
  # its own log group, X-Ray and its environment's key (data.aws_iam_policy_document.lambda below);
  # in-VPC roles get AWSLambdaVPCAccessExecutionRole. No two functions share a role (validate_data and
  # evaluate need the same today, but what they call will diverge and a role is free).
  # docs/deploy.md has this table in prose; tests/infra/test_first_apply.py pins it.
  function_grants = {
    validate_data  = ["read_data", "decrypt", "write_snapshots", "encrypt"]                                          # read_raw/list_data_files/known_labels; pipelines/snapshot.py
    evaluate       = ["read_data", "decrypt", "mlflow_workflow"]                                                     # the evaluation set and labels; models via MLflow
    promote        = ["mlflow_workflow", "decrypt"]                                                                  # MLflow only
    deploy         = ["serving_service", "revisions", "tag_revisions", "pass_serving", "mlflow_workflow", "decrypt"] # pipelines/deploy.py
    service_stable = ["describe_serving"]                                                                            # pipelines/service_stable.py
    smoke_test     = ["read_data", "decrypt"]                                                                        # optional smoke_data s3:// rows and labels; HTTP to the ALB (no MLflow: it may run outside the VPC)
    rollback       = ["serving_service", "mlflow_workflow", "decrypt"]                                               # pipelines/rollback.py; the alias via MLflow
    # pipelines/drift_check.py: the capture window; the per-version state drift-reports/model_version=<v>/state.json
    # (read, then written with the report; ListBucket so a first check's missing state is NoSuchKey, not
    # AccessDenied); when a drift retrain did not absorb the shift, the SNS notice and the "retrain-paused"
    # lock item. The topic, the objects and the table are under the stack's key: decrypt and encrypt.
    drift_check = [
      "read_capture", "read_drift_state", "list_drift_reports", "write_drift_reports", "decrypt", "encrypt",
      "publish_metrics", "notify", "pause_retraining", "mlflow_reader",
    ]
    retrain_trigger = ["lock_items", "decrypt", "start_workflow", "encrypt"] # DynamoDB and the state machine under the CMK
    lock            = ["lock_items", "decrypt"]
    canary_check = [
      "serving_service", "canary_service", "revisions", "tag_revisions", "pass_serving",
      "shift_traffic", "mark_shadow", "canary_alarms", "read_metrics", "publish_metrics", "mlflow_workflow", "decrypt",
    ]
  }

  # The grants, each one statement: sid, actions, resources and conditions ([test, variable, values]).
  grants = {
    read_data = {
      sid       = "ReadData"
      actions   = ["s3:GetObject", "s3:ListBucket"]
      resources = [var.bucket_arns["data"], "${var.bucket_arns["data"]}/*"]
    }
    # pipelines/snapshot.py: add the validated rows under snapshots/sha256=<hash>/ (PutObject with
    # If-None-Match: *, so an existing snapshot is never replaced). Reading them back is read_data; no
    # role in the workflow has s3:DeleteObject on the data bucket. Training and evaluation only read:
    # the workflow gives them the snapshots ValidateData wrote (a CLI run keeps its own snapshot with
    # the caller's credentials).
    # The MLflow credential a function calls the registry with (local.mlflow_users); the secrets are
    # under the stack's key, which is the decrypt grant.
    mlflow_workflow = {
      sid       = "ReadMlflowWorkflowCredential"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = [var.mlflow_credential_secret_arns["workflow"]]
    }
    mlflow_reader = {
      sid       = "ReadMlflowReaderCredential"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = [var.mlflow_credential_secret_arns["reader"]]
    }
    write_snapshots = {
      sid       = "WriteSnapshots"
      actions   = ["s3:PutObject"]
      resources = ["${var.bucket_arns["data"]}/${var.snapshots_prefix}/*"]
    }
    read_capture = {
      sid       = "ReadCapture"
      actions   = ["s3:GetObject", "s3:ListBucket"]
      resources = [var.bucket_arns["capture"], "${var.bucket_arns["capture"]}/*"]
    }
    read_drift_state = {
      sid       = "ReadDriftState"
      actions   = ["s3:GetObject"]
      resources = ["${var.bucket_arns["artifacts"]}/drift-reports/*"]
    }
    # Listing only under drift-reports/ ("drift-reports/*" also matches the folder "drift-reports/"
    # itself): pipelines/drift_state.py lists a version's state.json before reading it, so a first
    # check finds "none yet" whatever S3 would answer a GetObject of a missing key.
    list_drift_reports = {
      sid        = "ListDriftReports"
      actions    = ["s3:ListBucket"]
      resources  = [var.bucket_arns["artifacts"]]
      conditions = [["StringLike", "s3:prefix", ["drift-reports/*"]]]
    }
    write_drift_reports = {
      sid       = "WriteDriftReports"
      actions   = ["s3:PutObject"]
      resources = ["${var.bucket_arns["artifacts"]}/drift-reports/*"]
    }
    decrypt = {
      sid       = "DecryptWithDataKey"
      actions   = ["kms:Decrypt"]
      resources = [var.kms_key_arn]
    }
    encrypt = {
      sid       = "EncryptWithDataKey"
      actions   = ["kms:GenerateDataKey"]
      resources = [var.kms_key_arn]
    }
    describe_serving = {
      sid       = "DescribeServing"
      actions   = ["ecs:DescribeServices"]
      resources = [local.serving_service_arn]
    }
    serving_service = {
      sid       = "DeployServing"
      actions   = ["ecs:DescribeServices", "ecs:UpdateService"]
      resources = [local.serving_service_arn]
    }
    canary_service = {
      sid       = "RunCanary"
      actions   = ["ecs:DescribeServices", "ecs:UpdateService"]
      resources = [local.canary_service_arn]
    }
    revisions = {
      sid       = "ServingRevisions"
      actions   = ["ecs:DescribeTaskDefinition", "ecs:RegisterTaskDefinition"]
      resources = ["*"] # neither action has resource-level permissions
    }
    tag_revisions = {
      sid        = "TagNewRevisions"
      actions    = ["ecs:TagResource"]
      resources  = ["arn:${format(local.arn_prefix, "ecs")}:task-definition/${var.serving_task_family}:*"]
      conditions = [["StringEquals", "ecs:CreateAction", ["RegisterTaskDefinition"]]]
    }
    pass_serving = {
      sid        = "PassServingRoles"
      actions    = ["iam:PassRole"]
      resources  = var.serving_role_arns
      conditions = [["StringEquals", "iam:PassedToService", ["ecs-tasks.amazonaws.com"]]]
    }
    shift_traffic = {
      sid       = "ShiftTraffic"
      actions   = ["elasticloadbalancing:ModifyListener"]
      resources = [var.listener_arn]
    }
    mark_shadow = {
      sid       = "MarkShadowTargetGroup"
      actions   = ["elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags"]
      resources = [var.canary_target_group_arn]
    }
    canary_alarms = {
      sid       = "CanaryAlarms"
      actions   = ["cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms", "cloudwatch:TagResource"]
      resources = ["arn:${format(local.arn_prefix, "cloudwatch")}:alarm:${local.canary_alarm_prefix}-*"]
    }
    read_metrics = {
      sid       = "ReadMetricsAndAlarms"
      actions   = ["cloudwatch:GetMetricData", "cloudwatch:ListMetrics", "cloudwatch:DescribeAlarms"]
      resources = ["*"] # read-only; GetMetricData and ListMetrics have no resource-level permissions
    }
    publish_metrics = {
      sid        = "PublishMetrics"
      actions    = ["cloudwatch:PutMetricData"]
      resources  = ["*"] # no resource-level permissions; the namespace condition scopes it
      conditions = [["StringEquals", "cloudwatch:namespace", [var.metrics_namespace]]]
    }
    lock_items = {
      sid       = "LockItems"
      actions   = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"]
      resources = [aws_dynamodb_table.lock.arn]
    }
    start_workflow = {
      sid       = "StartWorkflow"
      actions   = ["states:StartExecution"]
      resources = [local.state_machine_arn]
    }
    # The topic is encrypted with the stack's key (modules/monitoring): Publish also needs
    # kms:GenerateDataKey and kms:Decrypt on it (the encrypt and decrypt grants).
    notify = {
      sid       = "Notify"
      actions   = ["sns:Publish"]
      resources = [var.sns_topic_arn]
    }
    # Only the item whose partition key is "retrain-paused" (pipelines/retrain_trigger.py honours it):
    # never the workflow lock or the cooldown item.
    pause_retraining = {
      sid        = "PauseRetraining"
      actions    = ["dynamodb:PutItem"]
      resources  = [aws_dynamodb_table.lock.arn]
      conditions = [["ForAllValues:StringEquals", "dynamodb:LeadingKeys", ["retrain-paused"]]]
    }
  }
  # The training task (esteira train) and the SageMaker job: --reference recent-traffic reads the previous
  # champion's drift state and the captured requests to build the new model's reference profile.
  train_grants = ["read_capture", "read_drift_state", "list_drift_reports"]
}

resource "aws_iam_role" "lambda" {
  for_each             = local.functions
  name                 = local.function_names[each.key]
  description          = "Lambda ${local.function_names[each.key]}: what lambdas/${each.key}.py calls"
  assume_role_policy   = data.aws_iam_policy_document.lambda_assume.json
  permissions_boundary = var.permissions_boundary_arn
  tags                 = var.tags
}

# ENI management, only for the functions that run in the private subnets.
resource "aws_iam_role_policy_attachment" "lambda_vpc" {
  for_each   = toset(local.in_vpc)
  role       = aws_iam_role.lambda[each.key].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
}

data "aws_iam_policy_document" "lambda" {
  #checkov:skip=CKV_AWS_356:Only actions without resource-level permissions use "*": ecs:RegisterTaskDefinition/DescribeTaskDefinition, cloudwatch:PutMetricData (namespace condition), GetMetricData, ListMetrics, DescribeAlarms, xray:Put*.
  #checkov:skip=CKV_AWS_111:See CKV_AWS_356: RegisterTaskDefinition and PutMetricData do not support resource ARNs; PutMetricData is limited to the Esteira namespace.
  for_each = local.functions
  statement {
    sid       = "WriteOwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.lambda[each.key].arn}:*"]
  }
  statement {
    sid       = "Tracing"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"] # X-Ray has no resource-level permissions
  }
  # Lambda decrypts the function's environment (encrypted with the stack's key) as the execution role.
  statement {
    sid       = "DecryptOwnEnvironment"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
    condition {
      test     = "StringEquals"
      variable = "kms:EncryptionContext:LambdaFunctionName"
      values   = [local.function_names[each.key]]
    }
  }
  dynamic "statement" {
    for_each = [for g in lookup(local.function_grants, each.key, []) : local.grants[g]]
    content {
      sid       = statement.value.sid
      actions   = statement.value.actions
      resources = statement.value.resources
      dynamic "condition" {
        for_each = lookup(statement.value, "conditions", [])
        content {
          test     = condition.value[0]
          variable = condition.value[1]
          values   = condition.value[2]
        }
      }
    }
  }
}

resource "aws_iam_role_policy" "lambda" {
  for_each = local.functions
  name     = "function"
  role     = aws_iam_role.lambda[each.key].id
  policy   = data.aws_iam_policy_document.lambda[each.key].json
}

resource "aws_cloudwatch_log_group" "lambda" {
  for_each          = local.functions
  name              = "/aws/lambda/${local.function_names[each.key]}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_lambda_function" "this" {
  #checkov:skip=CKV_AWS_116:Step Functions invokes these synchronously and owns retries and Catch; EventBridge targets carry their own retry policy.
  #checkov:skip=CKV_AWS_115:Reserved concurrency would eat into small accounts' unreserved pool (new accounts have 10); the DynamoDB lock serialises the workflow.
  #checkov:skip=CKV_AWS_272:Code signing applies to zip packages; these functions run a container image from an immutable-tag, scan-on-push ECR repository.
  #checkov:skip=CKV_AWS_117:All functions but those in functions_outside_vpc (default: smoke_test, which only calls the internet-facing ALB) run in the private subnets.
  for_each      = local.functions
  function_name = local.function_names[each.key]
  description   = each.value.description
  role          = aws_iam_role.lambda[each.key].arn
  package_type  = "Image"
  image_uri     = var.lambda_image_uri
  timeout       = each.value.timeout
  memory_size   = each.value.memory_size
  architectures = ["x86_64"]
  kms_key_arn   = var.kms_key_arn

  image_config {
    command = ["lambdas.${each.key}.handler"]
  }

  environment {
    variables = local.function_environments[each.key]
  }

  # The smoke test calls the public service URL: from a private subnet without a NAT gateway the
  # internet-facing ALB's public addresses are unreachable, so it runs outside the VPC.
  dynamic "vpc_config" {
    for_each = contains(var.functions_outside_vpc, each.key) ? [] : [1]
    content {
      subnet_ids         = var.private_subnet_ids
      security_group_ids = [aws_security_group.workflow.id]
    }
  }

  tracing_config {
    mode = "Active"
  }

  logging_config {
    log_format = "JSON"
    log_group  = aws_cloudwatch_log_group.lambda[each.key].name
  }

  lifecycle {
    precondition {
      condition     = each.value != null
      error_message = "contract.yaml names the Lambda ${each.key}, which var.functions gives no description, timeout or memory."
    }
    precondition {
      condition     = contains(keys(local.function_grants), each.key)
      error_message = "modules/workflow local.function_grants says nothing about what the Lambda ${each.key} may call."
    }
  }

  depends_on = [aws_iam_role_policy.lambda, aws_iam_role_policy_attachment.lambda_vpc]
  tags       = var.tags
}

# ---- training task (ECS Fargate in private subnets)
data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "train_execution" {
  name                 = "${var.name}-train-exec"
  assume_role_policy   = data.aws_iam_policy_document.ecs_tasks_assume.json
  permissions_boundary = var.permissions_boundary_arn
  tags                 = var.tags
}

resource "aws_iam_role_policy_attachment" "train_execution" {
  role       = aws_iam_role.train_execution.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

# ECS reads the workflow's MLflow credential for the training container (its `secrets`): training
# registers the new version, so it is the writing user.
data "aws_iam_policy_document" "train_execution" {
  statement {
    sid       = local.grants.mlflow_workflow.sid
    actions   = local.grants.mlflow_workflow.actions
    resources = local.grants.mlflow_workflow.resources
  }
  statement {
    sid       = "DecryptMlflowCredential"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_role_policy" "train_execution" {
  name   = "train-secrets"
  role   = aws_iam_role.train_execution.id
  policy = data.aws_iam_policy_document.train_execution.json
}

resource "aws_iam_role" "train_task" {
  name                 = "${var.name}-train-task"
  assume_role_policy   = data.aws_iam_policy_document.ecs_tasks_assume.json
  permissions_boundary = var.permissions_boundary_arn
  tags                 = var.tags
}

data "aws_iam_policy_document" "train_task" {
  statement {
    sid       = "ReadData"
    actions   = ["s3:GetObject", "s3:ListBucket"]
    resources = [var.bucket_arns["data"], "${var.bucket_arns["data"]}/*"]
  }
  # --reference recent-traffic: the capture and the previous champion's drift state (local.train_grants).
  dynamic "statement" {
    for_each = [for g in local.train_grants : local.grants[g]]
    content {
      sid       = statement.value.sid
      actions   = statement.value.actions
      resources = statement.value.resources
      dynamic "condition" {
        for_each = lookup(statement.value, "conditions", [])
        content {
          test     = condition.value[0]
          variable = condition.value[1]
          values   = condition.value[2]
        }
      }
    }
  }
  # Runs, metrics and the model go to MLflow over HTTP (the server proxies its artifact store).
  # The data, capture and artifacts buckets are SSE-KMS under the stack's key.
  statement {
    sid       = "UseDataKey"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_role_policy" "train_task" {
  name   = "train"
  role   = aws_iam_role.train_task.id
  policy = data.aws_iam_policy_document.train_task.json
}

resource "aws_cloudwatch_log_group" "train" {
  name              = "/esteira/${var.name}/train"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

# The training container, shared by the Fargate and the EC2 task definitions.
locals {
  train_container = {
    name                   = "train"
    image                  = var.training_image_uri
    essential              = true
    readonlyRootFilesystem = true
    command                = var.train_command
    environment            = [for k in sort(keys(local.train_environment)) : { name = k, value = local.train_environment[k] }]
    mountPoints            = [{ sourceVolume = "tmp", containerPath = "/tmp", readOnly = false }]
    # MLflow's clients read these natively: the workflow's (writing) user, modules/mlflow.
    secrets = [
      { name = "MLFLOW_TRACKING_USERNAME", valueFrom = "${var.mlflow_credential_secret_arns["workflow"]}:username::" },
      { name = "MLFLOW_TRACKING_PASSWORD", valueFrom = "${var.mlflow_credential_secret_arns["workflow"]}:password::" },
    ]
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.train.name
        awslogs-region        = local.region
        awslogs-stream-prefix = "train"
      }
    }
  }
}

resource "aws_ecs_task_definition" "train" {
  family                   = "${var.name}-train"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.train_cpu
  memory                   = var.train_memory
  execution_role_arn       = aws_iam_role.train_execution.arn
  task_role_arn            = aws_iam_role.train_task.arn

  volume {
    name = "tmp"
  }

  container_definitions = jsonencode([local.train_container])

  lifecycle {
    precondition {
      condition     = length(local.environment_mismatch) == 0
      error_message = "The workflow environment differs from contract.yaml workflow_environment in: ${join(", ", sort(local.environment_mismatch))}."
    }
    precondition {
      condition     = !contains(var.environment_names, var.image_variable)
      error_message = "contract.yaml workflow_environment names ${var.image_variable}, the image_variable: the module sets it per resource to the image each runs, outside that list."
    }
  }

  tags = var.tags
}

# ---- optional EC2 training backend (docs/training-capacity.md): the same container on the EC2
# capacity provider, sized beyond Fargate's 16 vCPU / 120 GB and with GPUs.
resource "aws_ecs_task_definition" "train_ec2" {
  count                    = var.ec2_training == null ? 0 : 1
  family                   = "${var.name}-train-ec2"
  requires_compatibilities = ["EC2"]
  network_mode             = "awsvpc"
  cpu                      = var.ec2_training.cpu
  memory                   = var.ec2_training.memory
  execution_role_arn       = aws_iam_role.train_execution.arn
  task_role_arn            = aws_iam_role.train_task.arn

  volume {
    name = "tmp"
  }

  container_definitions = jsonencode([
    merge(
      local.train_container,
      { for k, v in { resourceRequirements = [{ type = "GPU", value = tostring(var.ec2_training.gpus) }] } : k => v if var.ec2_training.gpus > 0 },
    )
  ])

  tags = var.tags
}

# ---- optional SageMaker training backend
data "aws_iam_policy_document" "sagemaker_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["sagemaker.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "sagemaker" {
  count                = var.training_backend == "sagemaker" ? 1 : 0
  name                 = "${var.name}-sagemaker-train"
  assume_role_policy   = data.aws_iam_policy_document.sagemaker_assume.json
  permissions_boundary = var.permissions_boundary_arn
  tags                 = var.tags
}

data "aws_iam_policy_document" "sagemaker" {
  #checkov:skip=CKV_AWS_356:ecr:GetAuthorizationToken, cloudwatch:PutMetricData (namespace condition) and ec2:Describe* have no resource-level permissions.
  #checkov:skip=CKV_AWS_111:The ENI actions are limited to the private subnets, the workflow security group and network interfaces in this VPC; PutMetricData to SageMaker's namespace.
  statement {
    sid       = "Data"
    actions   = ["s3:GetObject", "s3:ListBucket"]
    resources = [var.bucket_arns["data"], "${var.bucket_arns["data"]}/*", var.bucket_arns["artifacts"], "${var.bucket_arns["artifacts"]}/*"]
  }
  # The job's output upload goes to the artifacts bucket only: nothing in the data bucket (the data
  # snapshots above all, pipelines/snapshot.py) may be written by training.
  statement {
    sid       = "JobOutput"
    actions   = ["s3:PutObject"]
    resources = ["${var.bucket_arns["artifacts"]}/*"]
  }
  # --reference recent-traffic, as the ECS training task (local.train_grants); the drift state under
  # the artifacts bucket is already in Data above, which the job's output upload needs.
  statement {
    sid       = local.grants.read_capture.sid
    actions   = local.grants.read_capture.actions
    resources = local.grants.read_capture.resources
  }
  statement {
    sid       = "UseDataKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }
  # `esteira train` reads the workflow's MLflow credential itself (ESTEIRA_MLFLOW_CREDENTIALS_SECRET in
  # the job's environment, from the state machine): a training job has no secrets injection.
  statement {
    sid       = local.grants.mlflow_workflow.sid
    actions   = local.grants.mlflow_workflow.actions
    resources = local.grants.mlflow_workflow.resources
  }
  statement {
    sid       = "PullImage"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }
  statement {
    sid       = "PullTrainingImage"
    actions   = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"]
    resources = ["arn:${format(local.arn_prefix, "ecr")}:repository/*"]
  }
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
    resources = ["arn:${format(local.arn_prefix, "logs")}:log-group:/aws/sagemaker/TrainingJobs*"]
  }
  statement {
    sid       = "Metrics"
    actions   = ["cloudwatch:PutMetricData"]
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "cloudwatch:namespace"
      values   = ["/aws/sagemaker/TrainingJobs"]
    }
  }
  # VPC mode (the job's VpcConfig: private subnets, workflow security group, to reach MLflow):
  # SageMaker creates and deletes the job's network interfaces with this role.
  statement {
    sid = "DescribeNetwork"
    actions = [
      "ec2:DescribeNetworkInterfaces", "ec2:DescribeVpcs", "ec2:DescribeDhcpOptions",
      "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups",
    ]
    resources = ["*"] # Describe* have no resource-level permissions
  }
  statement {
    sid     = "CreateTrainingEnis"
    actions = ["ec2:CreateNetworkInterface"]
    resources = concat(
      [for id in var.private_subnet_ids : "arn:${format(local.arn_prefix, "ec2")}:subnet/${id}"],
      [aws_security_group.workflow.arn, "arn:${format(local.arn_prefix, "ec2")}:network-interface/*"],
    )
  }
  statement {
    sid = "ManageTrainingEnis"
    actions = [
      "ec2:CreateNetworkInterfacePermission", "ec2:DeleteNetworkInterface", "ec2:DeleteNetworkInterfacePermission",
    ]
    resources = ["arn:${format(local.arn_prefix, "ec2")}:network-interface/*"]
    condition {
      test     = "ArnEquals"
      variable = "ec2:Vpc"
      values   = ["arn:${format(local.arn_prefix, "ec2")}:vpc/${var.vpc_id}"]
    }
  }
}

resource "aws_iam_role_policy" "sagemaker" {
  count  = var.training_backend == "sagemaker" ? 1 : 0
  name   = "train"
  role   = aws_iam_role.sagemaker[0].id
  policy = data.aws_iam_policy_document.sagemaker.json
}

# ---- the state machines: the workflow, and the release it starts as a child (states:startExecution.sync:2)
resource "aws_cloudwatch_log_group" "sfn" {
  name              = "/aws/vendedlogs/states/${local.state_machine_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_cloudwatch_log_group" "release" {
  name              = "/aws/vendedlogs/states/${local.release_state_machine_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

data "aws_iam_policy_document" "sfn_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["states.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "sfn" {
  name                 = "${var.name}-workflow-sfn"
  assume_role_policy   = data.aws_iam_policy_document.sfn_assume.json
  permissions_boundary = var.permissions_boundary_arn
  tags                 = var.tags
}

data "aws_iam_policy_document" "sfn" {
  #checkov:skip=CKV_AWS_356:CloudWatch Logs delivery and X-Ray actions used by Step Functions logging/tracing only accept "*" (AWS documents this).
  #checkov:skip=CKV_AWS_111:See CKV_AWS_356: logs:*LogDelivery and xray:Put* do not support resource ARNs.
  statement {
    sid       = "InvokeSteps"
    actions   = ["lambda:InvokeFunction"]
    resources = flatten([for f in aws_lambda_function.this : [f.arn, "${f.arn}:*"]])
  }
  statement {
    sid       = "RunTraining"
    actions   = ["ecs:RunTask"]
    resources = [for f in concat([aws_ecs_task_definition.train.family], aws_ecs_task_definition.train_ec2[*].family) : "arn:${format(local.arn_prefix, "ecs")}:task-definition/${f}:*"]
    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = [var.cluster_arn]
    }
  }
  statement {
    sid       = "WatchTraining"
    actions   = ["ecs:StopTask", "ecs:DescribeTasks"]
    resources = ["arn:${format(local.arn_prefix, "ecs")}:task/${var.cluster_name}/*"]
  }
  statement {
    sid       = "PassTrainingRoles"
    actions   = ["iam:PassRole"]
    resources = concat([aws_iam_role.train_execution.arn, aws_iam_role.train_task.arn], aws_iam_role.sagemaker[*].arn)
  }
  statement {
    sid       = "StartRelease"
    actions   = ["states:StartExecution"]
    resources = [local.release_state_machine_arn]
  }
  statement {
    sid       = "WatchRelease"
    actions   = ["states:DescribeExecution", "states:StopExecution"]
    resources = ["arn:${format(local.arn_prefix, "states")}:execution:${local.release_state_machine_name}:*"]
  }
  statement {
    sid     = "SyncIntegrationRules"
    actions = ["events:PutTargets", "events:PutRule", "events:DescribeRule"]
    resources = [
      "arn:${format(local.arn_prefix, "events")}:rule/StepFunctionsGetEventsForECSTaskRule",
      "arn:${format(local.arn_prefix, "events")}:rule/StepFunctionsGetEventsForSageMakerTrainingJobsRule",
      "arn:${format(local.arn_prefix, "events")}:rule/StepFunctionsGetEventsForStepFunctionsExecutionRule",
    ]
  }
  statement {
    sid       = "SageMakerTraining"
    actions   = ["sagemaker:CreateTrainingJob", "sagemaker:DescribeTrainingJob", "sagemaker:StopTrainingJob"]
    resources = ["arn:${format(local.arn_prefix, "sagemaker")}:training-job/esteira-*"]
  }
  statement {
    sid       = "Notify"
    actions   = ["sns:Publish"]
    resources = [var.sns_topic_arn]
  }
  statement {
    sid       = "EncryptedTopic"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }
  statement {
    sid = "LogDelivery"
    actions = [
      "logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery", "logs:DeleteLogDelivery",
      "logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies", "logs:DescribeLogGroups",
    ]
    resources = ["*"]
  }
  statement {
    sid       = "Tracing"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets"]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "sfn" {
  name   = "workflow"
  role   = aws_iam_role.sfn.id
  policy = data.aws_iam_policy_document.sfn.json
}

# The values of the ASL template's variables (contract.yaml asl_variables); extra ones are harmless.
locals {
  definition_variables = merge(
    { for k, f in aws_lambda_function.this : "${k}_function_arn" => f.arn },
    {
      sns_topic_arn                 = var.sns_topic_arn
      ecs_cluster_arn               = var.cluster_arn
      train_task_definition_arn     = aws_ecs_task_definition.train.arn
      train_container_name          = "train"
      train_subnets                 = join(",", var.private_subnet_ids) # States.StringSplit in the ASL
      train_security_groups         = aws_security_group.workflow.id
      training_backend              = var.training_backend
      sagemaker_enabled             = tostring(var.training_backend == "sagemaker")
      ec2_training_enabled          = tostring(var.ec2_training != null)
      ec2_capacity_provider         = try(var.ec2_training.capacity_provider, "")
      train_ec2_task_definition_arn = try(aws_ecs_task_definition.train_ec2[0].arn, "")
      sagemaker_role_arn            = try(aws_iam_role.sagemaker[0].arn, "")
      training_image_uri            = var.training_image_uri
      image_variable                = var.image_variable
      mlflow_credentials_secret     = var.mlflow_credential_secret_arns["workflow"]
      lock_table_name               = aws_dynamodb_table.lock.name
      data_bucket                   = var.bucket_names["data"]
      artifacts_bucket              = var.bucket_names["artifacts"]
      deployment_strategy           = var.deployment_strategy
      canary_steps                  = jsonencode(var.canary_steps)
      canary_bake_seconds           = tostring(var.canary_bake_seconds)
      shadow_seconds                = tostring(var.shadow_seconds)
      release_state_machine_arn     = local.release_state_machine_arn
    },
  )
}

# One role for both machines: the release's Lambdas and SNS are the workflow's, and Step Functions
# signs a child's service calls with the child's role. A role of its own would narrow each machine to
# its half of the Lambdas (docs/security.md lists this as a known gap).
resource "aws_sfn_state_machine" "release" {
  name     = local.release_state_machine_name
  role_arn = aws_iam_role.sfn.arn
  type     = "STANDARD"

  definition = templatefile(var.release_definition_path, local.definition_variables)

  logging_configuration {
    log_destination        = "${aws_cloudwatch_log_group.release.arn}:*"
    include_execution_data = true
    level                  = "ALL"
  }

  tracing_configuration {
    enabled = true
  }

  encryption_configuration {
    type                              = "CUSTOMER_MANAGED_KMS_KEY"
    kms_key_id                        = var.kms_key_arn
    kms_data_key_reuse_period_seconds = 300
  }

  # The checks the workflow machine makes too: this machine is planned first (the workflow depends on
  # it), so a missing template value must be reported here, naming the contract, not as a templatefile error.
  lifecycle {
    precondition {
      condition     = length(setsubtract(var.template_variables, keys(local.definition_variables))) == 0
      error_message = "No value for the ASL template variable(s) ${join(", ", sort(setsubtract(var.template_variables, keys(local.definition_variables))))} of contract.yaml asl_variables."
    }
    precondition {
      condition     = length(setsubtract(keys(var.functions), var.function_keys)) == 0
      error_message = "var.functions sizes ${join(", ", sort(setsubtract(keys(var.functions), var.function_keys)))}, which contract.yaml lambda_functions does not name."
    }
  }

  depends_on = [aws_iam_role_policy.sfn]
  tags       = var.tags
}

resource "aws_sfn_state_machine" "this" {
  name     = local.state_machine_name
  role_arn = aws_iam_role.sfn.arn
  type     = "STANDARD"

  definition = templatefile(var.definition_path, local.definition_variables)

  logging_configuration {
    log_destination        = "${aws_cloudwatch_log_group.sfn.arn}:*"
    include_execution_data = true
    level                  = "ALL"
  }

  tracing_configuration {
    enabled = true
  }

  encryption_configuration {
    type                              = "CUSTOMER_MANAGED_KMS_KEY"
    kms_key_id                        = var.kms_key_arn
    kms_data_key_reuse_period_seconds = 300
  }

  lifecycle {
    precondition {
      condition     = length(setsubtract(var.template_variables, keys(local.definition_variables))) == 0
      error_message = "No value for the ASL template variable(s) ${join(", ", sort(setsubtract(var.template_variables, keys(local.definition_variables))))} of contract.yaml asl_variables."
    }
    precondition {
      condition     = var.training_backend != "ec2" || var.ec2_training != null
      error_message = "training_backend = \"ec2\" needs the EC2 capacity (ec2_training.enabled = true)."
    }
    precondition {
      condition     = length(setsubtract(keys(var.functions), var.function_keys)) == 0
      error_message = "var.functions sizes ${join(", ", sort(setsubtract(keys(var.functions), var.function_keys)))}, which contract.yaml lambda_functions does not name."
    }
  }

  # The release machine exists before the workflow can start it.
  depends_on = [aws_iam_role_policy.sfn, aws_sfn_state_machine.release]
  tags       = var.tags
}
