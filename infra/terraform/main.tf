# esteira reference deployment: the whole model life cycle on AWS.
#   network -> storage (KMS, S3) -> registry (ECR) -> serving (ECS cluster, ALB, service)
#   -> mlflow (RDS + ECS service) -> monitoring (SNS, alarms, dashboard, EventBridge)
#   -> workflow (Lambdas, training task, Step Functions) -> ci (GitHub OIDC roles)

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

data "aws_availability_zones" "available" {
  #checkov:skip=CKV_AWS_394:Only the first az_count zone names are used (slice); a newly added zone sorts after them and does not change the selection. Pin availability_zones explicitly to freeze it.
  state = "available"
  filter {
    name   = "opt-in-status"
    values = ["opt-in-not-required"]
  }
}

locals {
  # The names shared with the CDK app and the Python code (Lambda keys, environment variable names,
  # metric and alarm names, the capture layout, the labels key), defined once at the repository root.
  # The modules get what they need as typed variables; they never read the file themselves.
  contract = yamldecode(file("${path.root}/../../contract.yaml"))

  name = "${var.project}-${var.environment}"
  # Cloud Map: mlflow.<namespace> (MLflow) and canary.<namespace> (shadow copies to the candidate).
  discovery_namespace = "${local.name}.internal"
  tags = merge(var.tags, {
    Project     = var.project
    Environment = var.environment
    ManagedBy   = "terraform"
  })
  azs = length(var.availability_zones) > 0 ? var.availability_zones : slice(data.aws_availability_zones.available.names, 0, var.az_count)

  images = {
    serving  = coalesce(var.serving_image_uri, "${module.registry.repository_urls["serving"]}:${var.image_tag}")
    training = coalesce(var.training_image_uri, "${module.registry.repository_urls["training"]}:${var.image_tag}")
    lambdas  = coalesce(var.lambda_image_uri, "${module.registry.repository_urls["lambdas"]}:${var.image_tag}")
    mlflow   = coalesce(var.mlflow_image_uri, "${module.registry.repository_urls["mlflow"]}:${var.image_tag}")
  }
  model_uri      = var.pinned_model_version == null ? "models:/${var.model_name}@champion" : "models:/${var.model_name}/${var.pinned_model_version}"
  capture_s3_uri = "s3://${module.storage.bucket_names["capture"]}/${local.contract.capture.prefix}/"

  # The AWS APIs the stack's compute calls from the private subnets, by interface endpoint, and who
  # calls them. Without a NAT gateway each needs its endpoint (S3 and DynamoDB have gateway
  # endpoints); modules/network refuses to plan without them. Nothing private calls SNS today.
  private_aws_apis = {
    "ecr.api"              = "image pulls of the Fargate tasks (serving, MLflow, training)"
    "ecr.dkr"              = "image pulls of the Fargate tasks"
    "logs"                 = "awslogs of the Fargate tasks; SageMaker training logs in VPC mode"
    "secretsmanager"       = "the MLflow users' credentials and database password (ECS secrets, the workflow Lambdas)"
    "ecs"                  = "deploy, service_stable, rollback and canary_check Lambdas"
    "elasticloadbalancing" = "canary_check Lambda: listener weights and the shadow tag"
    "monitoring"           = "drift_check and canary_check Lambdas; SageMaker training metrics in VPC mode"
    "states"               = "retrain_trigger Lambda: StartExecution"
    "sns"                  = "drift_check Lambda: the notice when a drift retrain did not absorb the shift"
  }
  # The ECS agent of the EC2 training hosts registers and reports through these; without them (and no
  # NAT) the hosts never join the cluster and a training task waits in PROVISIONING until it times out.
  ec2_training_apis = var.ec2_training.enabled && !var.enable_nat_gateway ? {
    "ecs-agent"     = "the ECS agent of the EC2 training hosts (ec2_training)"
    "ecs-telemetry" = "the ECS agent's metrics of the EC2 training hosts (ec2_training)"
  } : {}
  # The EC2 backend's training task, as the workflow module takes it (null: no EC2 backend).
  ec2_training_task = var.ec2_training.enabled ? {
    capacity_provider = module.ec2_capacity[0].capacity_provider_name
    cpu               = var.ec2_training.task_cpu
    memory            = var.ec2_training.task_memory
    gpus              = var.ec2_training.gpus
  } : null
}

# ---- one permissions boundary on every role the stack creates
# The ceiling of what any role of the stack can ever do, whatever its own policies say: the services
# the stack uses, IAM only on the stack's own roles, never a role without this boundary, and never a
# change to this policy or to the CI roles. The CI deploy role carries it too.
locals {
  iam_arn       = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}"
  boundary_name = "${local.name}-boundary"
  # Known at plan time (name and path are configuration) and a reference, so roles wait for the policy.
  boundary_arn = "${local.iam_arn}:policy${aws_iam_policy.boundary.path}${aws_iam_policy.boundary.name}"
  stack_services = [
    "application-autoscaling", "autoscaling", "cloudwatch", "codebuild", "codepipeline", "dynamodb", "ec2",
    "ecr", "ecs", "elasticloadbalancing", "events", "kms", "lambda", "logs", "rds", "route53", "s3",
    "sagemaker", "secretsmanager", "servicediscovery", "sns", "states", "xray",
  ]
}

data "aws_iam_policy_document" "boundary" {
  #checkov:skip=CKV_AWS_355:A permissions boundary grants nothing: it caps what the stack's roles' own (scoped) policies can allow at the services the stack uses.
  #checkov:skip=CKV_AWS_290:See CKV_AWS_355: a ceiling, not a grant.
  #checkov:skip=CKV_AWS_289:IAM in the boundary is limited to the stack's own roles and, by explicit denies, never to a role without this boundary, to this policy or to the CI roles.
  #checkov:skip=CKV_AWS_288:See CKV_AWS_355: S3 and Secrets Manager are services the stack's roles use; their own policies scope them.
  #checkov:skip=CKV_AWS_287:See CKV_AWS_355.
  #checkov:skip=CKV_AWS_286:See CKV_AWS_289: PassRole only on the stack's roles, which all carry this boundary.
  #checkov:skip=CKV_AWS_109:See CKV_AWS_289.
  #checkov:skip=CKV_AWS_111:See CKV_AWS_355.
  #checkov:skip=CKV_AWS_356:See CKV_AWS_355.
  statement {
    sid       = "StackServices"
    actions   = [for s in local.stack_services : "${s}:*"]
    resources = ["*"]
  }
  # AWS's public parameters only (the ECS-optimised AMI ID the EC2 training hosts launch from).
  statement {
    sid       = "PublicParameters"
    actions   = ["ssm:GetParameter", "ssm:GetParameters"]
    resources = ["arn:${data.aws_partition.current.partition}:ssm:*::parameter/aws/service/*"]
  }
  statement {
    sid       = "ReadIam"
    actions   = ["iam:Get*", "iam:List*", "sts:GetCallerIdentity"]
    resources = ["*"]
  }
  statement {
    sid     = "StackIam"
    actions = ["iam:*"]
    resources = [
      "${local.iam_arn}:role/${local.name}-*",
      "${local.iam_arn}:policy/${local.name}-*",
      "${local.iam_arn}:instance-profile/${local.name}-*",
      "${local.iam_arn}:role/aws-service-role/*",
      "${local.iam_arn}:oidc-provider/token.actions.githubusercontent.com",
    ]
  }
  statement {
    sid       = "NoRoleWithoutThisBoundary"
    effect    = "Deny"
    actions   = ["iam:CreateRole", "iam:PutRolePolicy", "iam:AttachRolePolicy", "iam:PutRolePermissionsBoundary"]
    resources = ["*"]
    condition {
      test     = "StringNotEquals"
      variable = "iam:PermissionsBoundary"
      values   = ["${local.iam_arn}:policy/${local.boundary_name}"]
    }
  }
  statement {
    sid       = "KeepBoundaries"
    effect    = "Deny"
    actions   = ["iam:DeleteRolePermissionsBoundary"]
    resources = ["*"]
  }
  statement {
    sid    = "BoundaryIsFixed"
    effect = "Deny"
    actions = [
      "iam:CreatePolicyVersion", "iam:DeletePolicy", "iam:DeletePolicyVersion", "iam:SetDefaultPolicyVersion",
      "iam:TagPolicy", "iam:UntagPolicy",
    ]
    resources = ["${local.iam_arn}:policy/${local.boundary_name}"]
  }
  statement {
    sid    = "CiRolesAreFixed"
    effect = "Deny"
    actions = [
      "iam:CreateRole", "iam:DeleteRole", "iam:UpdateRole", "iam:UpdateRoleDescription", "iam:UpdateAssumeRolePolicy",
      "iam:PutRolePolicy", "iam:DeleteRolePolicy", "iam:AttachRolePolicy", "iam:DetachRolePolicy",
      "iam:PutRolePermissionsBoundary", "iam:DeleteRolePermissionsBoundary", "iam:TagRole", "iam:UntagRole", "iam:PassRole",
    ]
    resources = ["${local.iam_arn}:role/${local.name}-github-*"]
  }
}

resource "aws_iam_policy" "boundary" {
  name        = local.boundary_name
  description = "Permissions boundary of every role of ${local.name} (see infra/terraform/main.tf)"
  policy      = data.aws_iam_policy_document.boundary.json
  tags        = local.tags
}

module "storage" {
  source        = "./modules/storage"
  name          = local.name
  force_destroy = var.force_destroy
  tags          = local.tags

  encrypted_volumes_for_autoscaling = var.ec2_training.enabled
}

module "network" {
  source                = "./modules/network"
  name                  = local.name
  cidr_block            = var.vpc_cidr
  availability_zones    = local.azs
  enable_nat_gateway    = var.enable_nat_gateway
  interface_endpoints   = setunion(var.interface_endpoints, keys(local.ec2_training_apis))
  endpoint_subnet_count = var.endpoint_subnet_count
  kms_key_arn           = module.storage.kms_key_arn
  log_retention_days    = var.log_retention_days
  tags                  = local.tags

  required_interface_endpoints = concat(keys(local.private_aws_apis), keys(local.ec2_training_apis))
  permissions_boundary_arn     = local.boundary_arn
}

module "registry" {
  source       = "./modules/registry"
  name         = local.name
  kms_key_arn  = module.storage.kms_key_arn
  force_delete = var.force_destroy
  tags         = local.tags
}

module "serving" {
  source                       = "./modules/serving"
  name                         = local.name
  service_name                 = local.contract.serving_service_name
  environment_names            = local.contract.serving_environment
  image_variable               = local.contract.image_variable
  metrics_namespace            = local.contract.metrics.namespace
  vpc_id                       = module.network.vpc_id
  vpc_cidr_block               = module.network.vpc_cidr_block
  public_subnet_ids            = module.network.public_subnet_ids
  private_subnet_ids           = module.network.private_subnet_ids
  kms_key_arn                  = module.storage.kms_key_arn
  image_uri                    = local.images.serving
  model_uri                    = local.model_uri
  mlflow_tracking_uri          = module.mlflow.tracking_uri
  mlflow_credential_secret_arn = module.mlflow.reader_credential_secret_arn
  capture_s3_uri               = local.capture_s3_uri
  discovery_namespace          = local.discovery_namespace
  discovery_namespace_id       = module.mlflow.discovery_namespace_id
  capture_bucket_arn           = module.storage.bucket_arns["capture"]
  cpu                          = var.serving_cpu
  memory                       = var.serving_memory
  desired_count                = var.serving_min_capacity
  min_capacity                 = var.serving_min_capacity
  max_capacity                 = var.serving_max_capacity
  use_fargate_spot             = var.use_fargate_spot
  extra_capacity_providers     = module.ec2_capacity[*].capacity_provider_name
  certificate_arn              = var.certificate_arn
  allowed_ingress_cidrs        = var.allowed_ingress_cidrs
  alb_logs_bucket              = module.storage.logs_bucket_name
  deletion_protection          = var.deletion_protection
  log_retention_days           = var.log_retention_days
  tags                         = local.tags
  permissions_boundary_arn     = local.boundary_arn
}

# EC2 capacity for heavy training (off by default; docs/training-capacity.md).
module "ec2_capacity" {
  source                   = "./modules/ec2_capacity"
  count                    = var.ec2_training.enabled ? 1 : 0
  name                     = local.name
  cluster_name             = module.serving.cluster_name
  vpc_id                   = module.network.vpc_id
  private_subnet_ids       = module.network.private_subnet_ids
  instance_type            = var.ec2_training.instance_type
  gpus                     = var.ec2_training.gpus
  max_instances            = var.ec2_training.max_instances
  volume_size_gb           = var.ec2_training.volume_size_gb
  task_cpu                 = var.ec2_training.task_cpu
  task_memory              = var.ec2_training.task_memory
  kms_key_arn              = module.storage.kms_key_arn
  tags                     = local.tags
  permissions_boundary_arn = local.boundary_arn
}

module "mlflow" {
  source                = "./modules/mlflow"
  name                  = local.name
  vpc_id                = module.network.vpc_id
  vpc_cidr_block        = module.network.vpc_cidr_block
  private_subnet_ids    = module.network.private_subnet_ids
  cluster_arn           = module.serving.cluster_arn
  kms_key_arn           = module.storage.kms_key_arn
  artifacts_bucket_name = module.storage.bucket_names["artifacts"]
  artifacts_bucket_arn  = module.storage.bucket_arns["artifacts"]
  image_uri             = local.images.mlflow
  image_variable        = local.contract.image_variable
  discovery_namespace   = local.discovery_namespace
  db_instance_class     = var.mlflow_db_instance_class
  db_multi_az           = var.mlflow_db_multi_az
  credential_version    = var.mlflow_credential_version
  model_name            = var.model_name
  deletion_protection   = var.deletion_protection
  log_retention_days    = var.log_retention_days
  tags                  = local.tags

  permissions_boundary_arn = local.boundary_arn
}

module "workflow" {
  source                  = "./modules/workflow"
  name                    = local.name
  function_keys           = local.contract.lambda_functions
  environment_names       = local.contract.workflow_environment
  image_variable          = local.contract.image_variable
  template_variables      = local.contract.asl_variables
  labels_key              = local.contract.labels_key
  snapshots_prefix        = local.contract.snapshots_prefix
  capture_s3_uri          = local.capture_s3_uri
  metrics_namespace       = local.contract.metrics.namespace
  alarm_prefixes          = { retrain = local.contract.alarms.retrain_prefix, canary = local.contract.alarms.canary_prefix }
  lambda_image_uri        = local.images.lambdas
  training_image_uri      = local.images.training
  training_backend        = var.training_backend
  ec2_training            = local.ec2_training_task
  functions_outside_vpc   = var.smoke_test_outside_vpc ? ["smoke_test"] : []
  definition_path         = "${path.root}/../../stepfunctions/train_evaluate_deploy.asl.json"
  release_definition_path = "${path.root}/../../stepfunctions/release.asl.json"
  vpc_id                  = module.network.vpc_id
  vpc_cidr_block          = module.network.vpc_cidr_block
  private_subnet_ids      = module.network.private_subnet_ids
  kms_key_arn             = module.storage.kms_key_arn
  cluster_arn             = module.serving.cluster_arn
  cluster_name            = module.serving.cluster_name
  serving_service_name    = module.serving.service_name
  serving_task_family     = module.serving.task_definition_family
  serving_role_arns       = [module.serving.task_role_arn, module.serving.execution_role_arn]
  serving_url             = module.serving.url
  canary_service_name     = module.serving.canary_service_name
  listener_arn            = module.serving.listener_arn
  stable_target_group_arn = module.serving.stable_target_group_arn
  canary_target_group_arn = module.serving.canary_target_group_arn
  deployment_strategy     = var.deployment_strategy
  canary_steps            = var.canary_steps
  canary_bake_seconds     = var.canary_bake_seconds
  shadow_seconds          = var.shadow_seconds
  canary_thresholds       = var.canary_thresholds
  bucket_names            = module.storage.bucket_names
  bucket_arns             = module.storage.bucket_arns
  mlflow_tracking_uri     = module.mlflow.tracking_uri
  mlflow_credential_secret_arns = {
    workflow = module.mlflow.workflow_credential_secret_arn
    reader   = module.mlflow.reader_credential_secret_arn
  }
  model_name               = var.model_name
  sns_topic_arn            = module.monitoring.sns_topic_arn
  retrain_cooldown_seconds = var.retrain_cooldown_seconds
  extra_environment        = var.lambda_extra_environment
  deletion_protection      = var.deletion_protection
  log_retention_days       = var.log_retention_days
  tags                     = local.tags
  permissions_boundary_arn = local.boundary_arn
}

module "monitoring" {
  source                     = "./modules/monitoring"
  name                       = local.name
  alarm_suffixes             = local.contract.alarms.suffixes
  metrics_namespace          = local.contract.metrics.namespace
  service_dimension          = local.contract.metrics.dimensions.service
  drift_metric_name          = local.contract.metrics.names.drift_score
  low_confidence_metric_name = local.contract.metrics.names.low_confidence_rate
  kms_key_arn                = module.storage.kms_key_arn
  alarm_emails               = var.alarm_emails
  cluster_name               = module.serving.cluster_name
  service_name               = module.serving.service_name
  alb_arn_suffix             = module.serving.alb_arn_suffix
  target_group_arn_suffix    = module.serving.target_group_arn_suffix
  state_machine_arn          = module.workflow.state_machine_arn
  retrain_trigger_function = {
    arn  = module.workflow.function_arns["retrain_trigger"]
    name = module.workflow.function_names["retrain_trigger"]
  }
  drift_check_function = {
    arn  = module.workflow.function_arns["drift_check"]
    name = module.workflow.function_names["drift_check"]
  }
  drift_check_schedule = var.drift_check_schedule
  tags                 = local.tags
}

module "ci" {
  source               = "./modules/ci"
  count                = var.enable_ci ? 1 : 0
  name                 = local.name
  github_repository    = var.github_repository
  github_environment   = var.github_environment
  state_machine_arn    = module.workflow.state_machine_arn
  create_oidc_provider = var.create_oidc_provider
  oidc_provider_arn    = var.oidc_provider_arn
  state_bucket         = var.state_bucket
  state_key_prefix     = "${var.project}/${var.environment}/"
  kms_key_arn          = module.storage.kms_key_arn
  tags                 = local.tags

  permissions_boundary_arn = local.boundary_arn
}

# delivery = "codepipeline": Jenkins' release zip -> CodePipeline (approval in prod) -> CodeBuild apply
# -> the state machine (modules/delivery, docs/delivery.md). "github" (default): deploy.yml, no resources.
module "delivery" {
  source             = "./modules/delivery"
  count              = var.delivery == "codepipeline" ? 1 : 0
  name               = local.name
  environment        = var.environment
  release_object_key = var.release_object_key
  kms_key_arn        = module.storage.kms_key_arn
  sns_topic_arn      = module.monitoring.sns_topic_arn
  state_machine_arn  = module.workflow.state_machine_arn
  deploy_policy_json = try(module.ci[0].deploy_policy_json, null)
  state_bucket       = var.state_bucket
  force_destroy      = var.force_destroy
  log_retention_days = var.log_retention_days
  tags               = local.tags

  permissions_boundary_arn = local.boundary_arn
}
