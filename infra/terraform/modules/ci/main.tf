data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account_id   = data.aws_caller_identity.current.account_id
  partition    = data.aws_partition.current.partition
  provider_arn = var.create_oidc_provider ? aws_iam_openid_connect_provider.github[0].arn : var.oidc_provider_arn
  state_arn    = "arn:${local.partition}:s3:::${var.state_bucket}"
}

resource "aws_iam_openid_connect_provider" "github" {
  count          = var.create_oidc_provider ? 1 : 0
  url            = "https://token.actions.githubusercontent.com"
  client_id_list = ["sts.amazonaws.com"]
  # AWS trusts GitHub's OIDC through its root CAs; IAM still requires a thumbprint value.
  thumbprint_list = ["6938fd4d98bab03faadb97b34396831e3780aea1"]
  tags            = var.tags
}

# Who may assume each role: one trust document per role, differing only in the token subjects allowed.
# deploy: jobs in the protected GitHub environment; plan: pull requests (pr.yml) and the plan job of
# deploy.yml, dispatched on main; train: train.yml (schedule / workflow_dispatch on main).
locals {
  github_subjects = {
    deploy = ["repo:${var.github_repository}:environment:${var.github_environment}"]
    plan   = ["repo:${var.github_repository}:pull_request", "repo:${var.github_repository}:ref:${var.github_main_ref}"]
    train  = ["repo:${var.github_repository}:ref:${var.github_main_ref}"]
  }
}

data "aws_iam_policy_document" "github_trust" {
  for_each = local.github_subjects
  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [local.provider_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:aud"
      values   = ["sts.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:sub"
      values   = each.value
    }
  }
}

# ---- train role: starts the state machine, nothing else
resource "aws_iam_role" "train" {
  name                 = "${var.name}-github-train"
  description          = "Start the train-evaluate-deploy workflow from ${var.github_repository} (${var.github_main_ref})"
  assume_role_policy   = data.aws_iam_policy_document.github_trust["train"].json
  max_session_duration = var.max_session_duration
  tags                 = var.tags
}

data "aws_iam_policy_document" "train" {
  statement {
    sid       = "StartTraining"
    actions   = ["states:StartExecution"]
    resources = [var.state_machine_arn]
  }
  statement {
    sid       = "FollowExecutions"
    actions   = ["states:DescribeExecution"]
    resources = ["${replace(var.state_machine_arn, ":stateMachine:", ":execution:")}:*"]
  }
}

resource "aws_iam_role_policy" "train" {
  name   = "start-training"
  role   = aws_iam_role.train.id
  policy = data.aws_iam_policy_document.train.json
}

# ---- deploy role: GitHub environment jobs run `terraform apply` with it
resource "aws_iam_role" "deploy" {
  name                 = "${var.name}-github-deploy"
  description          = "terraform apply from ${var.github_repository} environment ${var.github_environment}"
  assume_role_policy   = data.aws_iam_policy_document.github_trust["deploy"].json
  max_session_duration = var.max_session_duration
  tags                 = var.tags
}

data "aws_iam_policy_document" "deploy" {
  #checkov:skip=CKV_AWS_355:A Terraform deploy role creates resources whose ARNs do not exist yet; service actions are limited to this region and IAM/S3 to the name prefix.
  #checkov:skip=CKV_AWS_290:See CKV_AWS_355: write access is bounded by aws:RequestedRegion and by name prefixes where the service supports them.
  #checkov:skip=CKV_AWS_289:The deploy role manages this stack's IAM roles and policies, limited to the ${var.name}- prefix.
  #checkov:skip=CKV_AWS_288:Managing S3 and Secrets Manager is the deploy role's purpose; S3 is limited to this stack's buckets.
  #checkov:skip=CKV_AWS_287:Secrets Manager access is needed to manage the RDS-owned secret's settings.
  #checkov:skip=CKV_AWS_286:iam:PassRole is limited to the ${var.name}- roles.
  #checkov:skip=CKV_AWS_109:IAM permissions-management actions are limited to the ${var.name}- prefix.
  #checkov:skip=CKV_AWS_111:See CKV_AWS_355.
  #checkov:skip=CKV_AWS_356:See CKV_AWS_355.
  statement {
    sid       = "StateObjects"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = ["${local.state_arn}/${var.state_key_prefix}*"]
  }
  statement {
    sid       = "StateBucket"
    actions   = ["s3:ListBucket", "s3:GetBucketVersioning"]
    resources = [local.state_arn]
  }
  statement {
    sid = "StackServices"
    actions = [
      "application-autoscaling:*", "cloudwatch:*", "dynamodb:*", "ec2:*", "ecr:*", "ecs:*",
      "elasticloadbalancing:*", "events:*", "kms:*", "lambda:*", "logs:*", "rds:*", "route53:*",
      "secretsmanager:*", "servicediscovery:*", "sns:*", "states:*", "xray:*",
    ]
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "aws:RequestedRegion"
      values   = [data.aws_region.current.region]
    }
  }
  statement {
    sid       = "StackBuckets"
    actions   = ["s3:*"]
    resources = ["arn:${local.partition}:s3:::${var.name}-*"]
  }
  statement {
    sid     = "StackIam"
    actions = ["iam:*"]
    resources = [
      "arn:${local.partition}:iam::${local.account_id}:role/${var.name}-*",
      "arn:${local.partition}:iam::${local.account_id}:policy/${var.name}-*",
      "arn:${local.partition}:iam::${local.account_id}:oidc-provider/token.actions.githubusercontent.com",
    ]
  }
  statement {
    sid       = "ServiceLinkedRoles"
    actions   = ["iam:CreateServiceLinkedRole"]
    resources = ["arn:${local.partition}:iam::${local.account_id}:role/aws-service-role/*"]
  }
  statement {
    sid       = "ReadIdentity"
    actions   = ["sts:GetCallerIdentity", "iam:GetPolicy", "iam:GetPolicyVersion", "iam:ListPolicyVersions"]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "deploy" {
  name   = "deploy"
  role   = aws_iam_role.deploy.id
  policy = data.aws_iam_policy_document.deploy.json
}

# ---- plan role: pull requests run `terraform plan` read-only
resource "aws_iam_role" "plan" {
  name                 = "${var.name}-github-plan"
  description          = "terraform plan (read-only) for pull requests of ${var.github_repository}"
  assume_role_policy   = data.aws_iam_policy_document.github_trust["plan"].json
  max_session_duration = var.max_session_duration
  tags                 = var.tags
}

resource "aws_iam_role_policy_attachment" "plan_read_only" {
  role       = aws_iam_role.plan.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/ReadOnlyAccess"
}

data "aws_iam_policy_document" "plan" {
  statement {
    sid       = "ReadState"
    actions   = ["s3:GetObject", "s3:ListBucket"]
    resources = [local.state_arn, "${local.state_arn}/${var.state_key_prefix}*"]
  }
  statement {
    sid       = "StateLockFile"
    actions   = ["s3:PutObject", "s3:DeleteObject"]
    resources = ["${local.state_arn}/${var.state_key_prefix}*.tflock"]
  }
}

resource "aws_iam_role_policy" "plan" {
  name   = "plan-state"
  role   = aws_iam_role.plan.id
  policy = data.aws_iam_policy_document.plan.json
}
