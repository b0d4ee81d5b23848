variable "name" {
  description = "Name prefix of every resource (<project>-<environment>)."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,30}$", var.name))
    error_message = "name must be 3-31 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "environment" {
  description = "Deployment environment (envs/<environment>.tfvars is what the deploy stage plans); prod gets a manual approval stage."
  type        = string
  validation {
    condition     = contains(["dev", "staging", "prod"], var.environment)
    error_message = "environment must be dev, staging or prod."
  }
}

variable "release_object_key" {
  description = "Key of the release zip (release.json + the repository tree at its commit) that Jenkins publishes (make publish-release) and the pipeline's source action watches."
  type        = string
  default     = "releases/release.zip"
  validation {
    condition     = can(regex("^[A-Za-z0-9!_.*'()/-]+\\.zip$", var.release_object_key)) && !startswith(var.release_object_key, "/")
    error_message = "release_object_key must be a relative S3 key ending in .zip."
  }
}

variable "kms_key_arn" {
  description = "The stack's KMS key: encrypts the artifact bucket, the CodeBuild project's artifacts and logs."
  type        = string
  validation {
    condition     = can(regex("^arn:[a-z-]+:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}

variable "sns_topic_arn" {
  description = "The stack's notification topic: approval requests (prod) and failed pipeline executions go there."
  type        = string
  validation {
    condition     = can(regex("^arn:[a-z-]+:sns:[a-z0-9-]+:[0-9]{12}:.+$", var.sns_topic_arn))
    error_message = "sns_topic_arn must be an SNS topic ARN."
  }
}

variable "state_machine_arn" {
  description = "The train-evaluate-deploy state machine the deploy stage starts after the apply."
  type        = string
  validation {
    condition     = can(regex("^arn:[a-z-]+:states:[a-z0-9-]+:[0-9]{12}:stateMachine:[A-Za-z0-9_-]+$", var.state_machine_arn))
    error_message = "state_machine_arn must be a Step Functions state machine ARN."
  }
}

variable "deploy_policy_json" {
  description = "The CI deploy role's policy (modules/ci output deploy_policy_json): the CodeBuild role applies Terraform with the same permissions. Needs enable_ci = true at the root."
  type        = string
  nullable    = true
  validation {
    condition     = var.deploy_policy_json != null && can(jsondecode(var.deploy_policy_json))
    error_message = "delivery = \"codepipeline\" reuses the CI deploy policy: set enable_ci = true."
  }
}

variable "state_bucket" {
  description = "S3 bucket holding the Terraform state (TF_STATE_BUCKET of the deploy build)."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.state_bucket))
    error_message = "state_bucket must be an S3 bucket name."
  }
}

variable "codebuild_image" {
  description = "CodeBuild image of the deploy build (an AWS curated image with Python 3.11, make, git and unzip)."
  type        = string
  default     = "aws/codebuild/amazonlinux-x86_64-standard:5.0"
}

variable "codebuild_compute_type" {
  description = "CodeBuild compute type of the deploy build (billed per build minute by type)."
  type        = string
  default     = "BUILD_GENERAL1_SMALL"
  validation {
    condition     = contains(["BUILD_GENERAL1_SMALL", "BUILD_GENERAL1_MEDIUM", "BUILD_GENERAL1_LARGE"], var.codebuild_compute_type)
    error_message = "codebuild_compute_type must be BUILD_GENERAL1_SMALL, _MEDIUM or _LARGE."
  }
}

variable "build_timeout_minutes" {
  description = "Timeout of the deploy build (toolchain set-up, plan, apply, smoke test)."
  type        = number
  default     = 60
  validation {
    condition     = var.build_timeout_minutes >= 5 && var.build_timeout_minutes <= 480
    error_message = "build_timeout_minutes must be between 5 and 480."
  }
}

variable "force_destroy" {
  description = "Let `destroy` delete the artifact bucket with its objects (dev)."
  type        = bool
  default     = false
}

variable "log_retention_days" {
  description = "Retention of the deploy build's CloudWatch logs."
  type        = number
  default     = 30
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

variable "permissions_boundary_arn" {
  description = "Permissions boundary of every role this module creates (the stack's <name>-boundary policy)."
  type        = string
  validation {
    condition     = can(regex("^arn:[a-z-]+:iam::[0-9]{12}:policy/.+$", var.permissions_boundary_arn))
    error_message = "permissions_boundary_arn must be an IAM policy ARN."
  }
}
