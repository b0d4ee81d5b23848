data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account_id   = data.aws_caller_identity.current.account_id
  partition    = data.aws_partition.current.partition
  provider_arn = var.create_oidc_provider ? aws_iam_openid_connect_provider.github[0].arn : var.oidc_provider_arn
  state_arn    = "arn:${local.partition}:s3:::${var.state_bucket}"
  iam_arn      = "arn:${local.partition}:iam::${local.account_id}"
  # The CI roles themselves: no role of this stack, the deploy role included, may change them.
  ci_roles = "${local.iam_arn}:role/${var.name}-github-*"
  # Everything that changes a role, its policies, its trust or its boundary (and passing it on).
  role_changes = [
    "iam:CreateRole", "iam:DeleteRole", "iam:UpdateRole", "iam:UpdateRoleDescription", "iam:UpdateAssumeRolePolicy",
    "iam:PutRolePolicy", "iam:DeleteRolePolicy", "iam:AttachRolePolicy", "iam:DetachRolePolicy",
    "iam:PutRolePermissionsBoundary", "iam:DeleteRolePermissionsBoundary", "iam:TagRole", "iam:UntagRole", "iam:PassRole",
  ]
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
  permissions_boundary = var.permissions_boundary_arn
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
  # The state machine is encrypted with the stack's key: StartExecution encrypts the input
  # (GenerateDataKey) and DescribeExecution decrypts input and output, both as the caller.
  statement {
    sid       = "EncryptedStateMachine"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [var.kms_key_arn]
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
  permissions_boundary = var.permissions_boundary_arn
  max_session_duration = var.max_session_duration
  tags                 = var.tags
}

data "aws_iam_policy_document" "deploy" {
  #checkov:skip=CKV_AWS_355:A Terraform deploy role creates resources whose ARNs do not exist yet; service actions are limited to this region and IAM/S3 to the name prefix.
  #checkov:skip=CKV_AWS_290:See CKV_AWS_355: write access is bounded by aws:RequestedRegion and by name prefixes where the service supports them.
  #checkov:skip=CKV_AWS_289:Role management is limited to the ${var.name}- roles, and creating a role or adding to its policies requires the stack's permissions boundary (condition iam:PermissionsBoundary); the boundary and the CI roles are denied.
  #checkov:skip=CKV_AWS_288:Managing S3 and Secrets Manager is the deploy role's purpose; S3 is limited to this stack's buckets.
  #checkov:skip=CKV_AWS_287:Secrets Manager access is needed to manage the RDS-owned secret's settings.
  #checkov:skip=CKV_AWS_286:iam:PassRole is limited to the ${var.name}- roles, which all carry the permissions boundary; the CI roles are denied.
  #checkov:skip=CKV_AWS_109:IAM permissions-management actions are limited to the ${var.name}- roles and require the permissions boundary.
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
      "application-autoscaling:*", "autoscaling:*", "cloudwatch:*", "codebuild:*", "codepipeline:*", "dynamodb:*",
      "ec2:*", "ecr:*", "ecs:*",
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
  # A role of the stack is created, and its permissions grow, only with the stack's boundary on it:
  # whatever the deploy role writes into a role's policies, the role can do no more than the boundary.
  statement {
    sid       = "StackRolesWithBoundary"
    actions   = ["iam:CreateRole", "iam:PutRolePolicy", "iam:AttachRolePolicy", "iam:PutRolePermissionsBoundary"]
    resources = ["${local.iam_arn}:role/${var.name}-*"]
    condition {
      test     = "StringEquals"
      variable = "iam:PermissionsBoundary"
      values   = [var.permissions_boundary_arn]
    }
  }
  statement {
    sid = "StackRoles"
    actions = [
      "iam:DeleteRole", "iam:UpdateRole", "iam:UpdateRoleDescription", "iam:UpdateAssumeRolePolicy",
      "iam:DeleteRolePolicy", "iam:DetachRolePolicy", "iam:TagRole", "iam:UntagRole", "iam:PassRole",
    ]
    resources = ["${local.iam_arn}:role/${var.name}-*"]
  }
  # The EC2 training hosts (ec2_training): their instance profile, and the ECS-optimised AMI's ID
  # from AWS's public parameters.
  statement {
    sid = "StackInstanceProfiles"
    actions = [
      "iam:CreateInstanceProfile", "iam:DeleteInstanceProfile", "iam:AddRoleToInstanceProfile",
      "iam:RemoveRoleFromInstanceProfile", "iam:TagInstanceProfile", "iam:UntagInstanceProfile",
    ]
    resources = ["${local.iam_arn}:instance-profile/${var.name}-*"]
  }
  statement {
    sid       = "EcsOptimisedAmi"
    actions   = ["ssm:GetParameter", "ssm:GetParameters"]
    resources = ["arn:${local.partition}:ssm:${data.aws_region.current.region}::parameter/aws/service/ecs/*"]
  }
  statement {
    sid       = "GithubOidcProvider"
    actions   = ["iam:TagOpenIDConnectProvider", "iam:UntagOpenIDConnectProvider"]
    resources = ["${local.iam_arn}:oidc-provider/token.actions.githubusercontent.com"]
  }
  statement {
    sid       = "ServiceLinkedRoles"
    actions   = ["iam:CreateServiceLinkedRole"]
    resources = ["${local.iam_arn}:role/aws-service-role/*"]
  }
  statement {
    sid       = "ReadIdentity"
    actions   = ["sts:GetCallerIdentity", "iam:Get*", "iam:List*"]
    resources = ["*"]
  }
  # Explicit denies: no Allow here or added later can undo them.
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
    resources = [var.permissions_boundary_arn]
  }
  statement {
    sid       = "CiRolesAreFixed"
    effect    = "Deny"
    actions   = local.role_changes
    resources = [local.ci_roles]
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
  permissions_boundary = var.permissions_boundary_arn
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
  # `make tf-plan` takes the S3-native lock (a .tflock object next to the state) like any plan.
  statement {
    sid       = "StateLockFile"
    actions   = ["s3:PutObject", "s3:DeleteObject"]
    resources = ["${local.state_arn}/${var.state_key_prefix}*.tflock"]
  }
  # ReadOnlyAccess (and the boundary) let a plan describe every resource; a plan never needs the
  # data inside them, so object and item contents, secrets, logs, executions and image layers stay shut.
  statement {
    sid           = "NoObjectsButTheState"
    effect        = "Deny"
    actions       = ["s3:GetObject", "s3:GetObjectVersion"]
    not_resources = ["${local.state_arn}/${var.state_key_prefix}*"]
  }
  statement {
    sid    = "NoDataReads"
    effect = "Deny"
    actions = [
      "dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:Scan", "dynamodb:GetRecords",
      "secretsmanager:GetSecretValue", "logs:GetLogEvents", "logs:FilterLogEvents", "logs:StartQuery",
      "logs:GetQueryResults", "logs:StartLiveTail", "states:GetExecutionHistory", "states:DescribeExecution",
      "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer",
    ]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "plan" {
  name   = "plan-state"
  role   = aws_iam_role.plan.id
  policy = data.aws_iam_policy_document.plan.json
}
