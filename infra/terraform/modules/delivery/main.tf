# Delivery through AWS CodePipeline (delivery = "codepipeline"): Jenkins publishes a release zip to the
# artifact bucket; its S3 "Object Created" event (EventBridge) starts the pipeline:
#   Source (S3: the release zip) -> [Approve (manual, prod only)] -> Deploy (CodeBuild: make release-deploy,
#   i.e. tf-plan + tf-apply with the manifest's digests + smoke-test; then Step Functions: the
#   train-evaluate-deploy state machine with workflow-input.json from the zip).
# A FAILED pipeline execution is sent to the stack's SNS topic. See docs/delivery.md.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account_id    = data.aws_caller_identity.current.account_id
  partition     = data.aws_partition.current.partition
  region        = data.aws_region.current.region
  bucket_name   = "${var.name}-delivery-${local.account_id}"
  pipeline_name = "${var.name}-delivery"
  project_name  = "${var.name}-deploy"
  log_group     = "/aws/codebuild/${local.project_name}"
  pipeline_arn  = "arn:${local.partition}:codepipeline:${local.region}:${local.account_id}:${local.pipeline_name}"
  project_arn   = "arn:${local.partition}:codebuild:${local.region}:${local.account_id}:project/${local.project_name}"
  executions    = "${replace(var.state_machine_arn, ":stateMachine:", ":execution:")}:*"
  approval      = var.environment == "prod"
  # The zip's file the Step Functions action reads as the execution input (written by make publish-release).
  workflow_input_file = "workflow-input.json"
  buildspec = yamlencode({
    version = "0.2"
    env     = { shell = "bash" }
    phases = {
      install = { commands = ["make venv tools"] }
      build   = { commands = ["make release-deploy RELEASE_MANIFEST=release.json"] }
    }
  })
}

# ---- artifact bucket: the release zips Jenkins publishes and the pipeline's artifacts
resource "aws_s3_bucket" "artifacts" {
  #checkov:skip=CKV_AWS_144:Single-region reference deployment; releases are rebuilt from git and ECR.
  #checkov:skip=CKV_AWS_18:Object-level access to releases is in CloudTrail data events; the stack's log bucket holds ALB and data-bucket logs only.
  bucket        = local.bucket_name
  force_destroy = var.force_destroy
  tags          = merge(var.tags, { Purpose = "delivery" })
}

resource "aws_s3_bucket_versioning" "artifacts" {
  bucket = aws_s3_bucket.artifacts.id
  versioning_configuration {
    status = "Enabled" # CodePipeline's S3 source requires it: each execution reads one object version
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "artifacts" {
  bucket = aws_s3_bucket.artifacts.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "artifacts" {
  bucket                  = aws_s3_bucket.artifacts.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "artifacts" {
  bucket = aws_s3_bucket.artifacts.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "artifacts" {
  bucket = aws_s3_bucket.artifacts.id
  rule {
    id     = "expire-old-versions"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = 90
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

data "aws_iam_policy_document" "bucket" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.artifacts.arn, "${aws_s3_bucket.artifacts.arn}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "artifacts" {
  bucket     = aws_s3_bucket.artifacts.id
  policy     = data.aws_iam_policy_document.bucket.json
  depends_on = [aws_s3_bucket_public_access_block.artifacts]
}

# S3 sends its events to EventBridge (what AWS recommends over polling: PollForSourceChanges = false).
resource "aws_s3_bucket_notification" "artifacts" {
  bucket      = aws_s3_bucket.artifacts.id
  eventbridge = true
}

# ---- CodeBuild: the deploy build
resource "aws_cloudwatch_log_group" "build" {
  name              = local.log_group
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_iam_role" "codebuild" {
  name                 = "${var.name}-codebuild-deploy"
  description          = "CodeBuild deploy build of ${local.pipeline_name}: terraform apply with the CI deploy role's permissions"
  assume_role_policy   = data.aws_iam_policy_document.trust["codebuild"].json
  permissions_boundary = var.permissions_boundary_arn
  tags                 = var.tags
}

# What the GitHub deploy role may do (modules/ci), unchanged: the build runs the same make targets.
resource "aws_iam_role_policy" "codebuild_deploy" {
  name   = "deploy"
  role   = aws_iam_role.codebuild.id
  policy = var.deploy_policy_json
}

data "aws_iam_policy_document" "codebuild" {
  statement {
    sid       = "BuildLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.build.arn}:*"]
  }
  statement {
    sid       = "ReleaseArtifacts"
    actions   = ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"]
    resources = ["${aws_s3_bucket.artifacts.arn}/*"]
  }
  statement {
    sid       = "ArtifactKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_role_policy" "codebuild" {
  name   = "build"
  role   = aws_iam_role.codebuild.id
  policy = data.aws_iam_policy_document.codebuild.json
}

resource "aws_codebuild_project" "deploy" {
  #checkov:skip=CKV_AWS_316:Not privileged: the build runs make, Python and Terraform, never a Docker daemon.
  name           = local.project_name
  description    = "Apply a release of ${var.name}: make release-deploy (tf-plan, tf-apply, smoke-test)"
  service_role   = aws_iam_role.codebuild.arn
  build_timeout  = var.build_timeout_minutes
  encryption_key = var.kms_key_arn
  tags           = var.tags

  artifacts {
    type = "CODEPIPELINE"
  }

  source {
    type      = "CODEPIPELINE"
    buildspec = local.buildspec
  }

  environment {
    type                        = "LINUX_CONTAINER"
    compute_type                = var.codebuild_compute_type
    image                       = var.codebuild_image
    image_pull_credentials_type = "CODEBUILD"
    privileged_mode             = false

    environment_variable {
      name  = "DEPLOY_ENV"
      value = var.environment
    }
    environment_variable {
      name  = "TF_STATE_BUCKET"
      value = var.state_bucket
    }
    environment_variable {
      name  = "CI"
      value = "true"
    }
  }

  logs_config {
    cloudwatch_logs {
      group_name = aws_cloudwatch_log_group.build.name
    }
  }

  depends_on = [aws_iam_role_policy.codebuild, aws_iam_role_policy.codebuild_deploy]
}

# ---- the pipeline
# Who may assume each role: the service, for this account only (aws:SourceAccount: no confused deputy).
data "aws_iam_policy_document" "trust" {
  for_each = {
    codebuild = "codebuild.amazonaws.com"
    pipeline  = "codepipeline.amazonaws.com"
    events    = "events.amazonaws.com"
  }
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = [each.value]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "pipeline" {
  name                 = "${var.name}-codepipeline"
  description          = "CodePipeline ${local.pipeline_name}: read the release, run the deploy build, start the workflow"
  assume_role_policy   = data.aws_iam_policy_document.trust["pipeline"].json
  permissions_boundary = var.permissions_boundary_arn
  tags                 = var.tags
}

data "aws_iam_policy_document" "pipeline" {
  statement {
    sid       = "ArtifactBucket"
    actions   = ["s3:GetBucketVersioning", "s3:GetBucketLocation", "s3:ListBucket"]
    resources = [aws_s3_bucket.artifacts.arn]
  }
  statement {
    sid       = "Artifacts"
    actions   = ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"]
    resources = ["${aws_s3_bucket.artifacts.arn}/*"]
  }
  statement {
    sid       = "ArtifactKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }
  statement {
    sid       = "DeployBuild"
    actions   = ["codebuild:StartBuild", "codebuild:BatchGetBuilds"]
    resources = [local.project_arn]
  }
  statement {
    sid       = "StartWorkflow"
    actions   = ["states:DescribeStateMachine", "states:StartExecution"] # the action reads the machine's type first
    resources = [var.state_machine_arn]
  }
  statement {
    sid       = "FollowWorkflow"
    actions   = ["states:DescribeExecution"]
    resources = [local.executions]
  }
  dynamic "statement" {
    for_each = local.approval ? [1] : []
    content {
      sid       = "ApprovalNotice"
      actions   = ["sns:Publish"]
      resources = [var.sns_topic_arn]
    }
  }
}

resource "aws_iam_role_policy" "pipeline" {
  name   = "pipeline"
  role   = aws_iam_role.pipeline.id
  policy = data.aws_iam_policy_document.pipeline.json
}

resource "aws_codepipeline" "this" {
  name           = local.pipeline_name
  pipeline_type  = "V2"
  execution_mode = "QUEUED" # one release at a time, in order: a deploy is never superseded mid-apply
  role_arn       = aws_iam_role.pipeline.arn
  tags           = var.tags

  artifact_store {
    type     = "S3"
    location = aws_s3_bucket.artifacts.bucket
    encryption_key {
      id   = var.kms_key_arn
      type = "KMS"
    }
  }

  stage {
    name = "Source"
    action {
      name             = "Release"
      category         = "Source"
      owner            = "AWS"
      provider         = "S3"
      version          = "1"
      output_artifacts = ["release"]
      configuration = {
        S3Bucket             = aws_s3_bucket.artifacts.bucket
        S3ObjectKey          = var.release_object_key
        PollForSourceChanges = "false"
      }
    }
  }

  dynamic "stage" {
    for_each = local.approval ? [1] : []
    content {
      name = "Approve"
      action {
        name     = "Approve"
        category = "Approval"
        owner    = "AWS"
        provider = "Manual"
        version  = "1"
        configuration = {
          NotificationArn = var.sns_topic_arn
          CustomData      = "Deploy the release in s3://${local.bucket_name}/${var.release_object_key} to ${var.name}: release.json names the commit and the image digests."
        }
      }
    }
  }

  stage {
    name = "Deploy"
    action {
      name            = "Apply"
      category        = "Build"
      owner           = "AWS"
      provider        = "CodeBuild"
      version         = "1"
      run_order       = 1
      input_artifacts = ["release"]
      configuration = {
        ProjectName = aws_codebuild_project.deploy.name
      }
    }
    action {
      name            = "TrainEvaluateDeploy"
      category        = "Invoke"
      owner           = "AWS"
      provider        = "StepFunctions"
      version         = "1"
      run_order       = 2
      input_artifacts = ["release"]
      configuration = {
        StateMachineArn     = var.state_machine_arn
        ExecutionNamePrefix = "delivery"
        InputType           = "FilePath"
        Input               = local.workflow_input_file
      }
    }
  }

  depends_on = [aws_iam_role_policy.pipeline]
}

# ---- start on a new release: S3 Object Created -> EventBridge -> StartPipelineExecution
resource "aws_cloudwatch_event_rule" "release" {
  name        = "${var.name}-release-published"
  description = "A release zip published to ${local.bucket_name}/${var.release_object_key} starts ${local.pipeline_name}"
  event_pattern = jsonencode({
    source      = ["aws.s3"]
    detail-type = ["Object Created"]
    detail = {
      bucket = { name = [local.bucket_name] }
      object = { key = [var.release_object_key] }
    }
  })
  tags = var.tags
}

resource "aws_iam_role" "events" {
  name                 = "${var.name}-release-events"
  description          = "EventBridge starts ${local.pipeline_name} when a release is published"
  assume_role_policy   = data.aws_iam_policy_document.trust["events"].json
  permissions_boundary = var.permissions_boundary_arn
  tags                 = var.tags
}

data "aws_iam_policy_document" "events" {
  statement {
    sid       = "StartPipeline"
    actions   = ["codepipeline:StartPipelineExecution"]
    resources = [local.pipeline_arn]
  }
}

resource "aws_iam_role_policy" "events" {
  name   = "start-pipeline"
  role   = aws_iam_role.events.id
  policy = data.aws_iam_policy_document.events.json
}

resource "aws_cloudwatch_event_target" "release" {
  rule     = aws_cloudwatch_event_rule.release.name
  arn      = aws_codepipeline.this.arn
  role_arn = aws_iam_role.events.arn
}

# ---- a failed execution is an operator's business: the stack's topic (its policy lets EventBridge publish)
resource "aws_cloudwatch_event_rule" "failed" {
  name        = "${var.name}-delivery-failed"
  description = "A failed ${local.pipeline_name} execution notifies the stack's topic"
  event_pattern = jsonencode({
    source      = ["aws.codepipeline"]
    detail-type = ["CodePipeline Pipeline Execution State Change"]
    detail = {
      pipeline = [local.pipeline_name]
      state    = ["FAILED"]
    }
  })
  tags = var.tags
}

resource "aws_cloudwatch_event_target" "failed" {
  rule = aws_cloudwatch_event_rule.failed.name
  arn  = var.sns_topic_arn
}
