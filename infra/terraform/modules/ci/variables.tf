variable "name" {
  description = "Name prefix (e.g. esteira-dev); the deploy role may manage resources named with it."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,30}$", var.name))
    error_message = "name must be 3-31 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "github_repository" {
  description = "GitHub repository allowed to assume the roles, as <org>/<repo>."
  type        = string
  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", var.github_repository))
    error_message = "github_repository must be <org>/<repo>."
  }
}

variable "github_environment" {
  description = "GitHub Actions environment whose jobs may deploy (token subject repo:<org>/<repo>:environment:<env>)."
  type        = string
  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+$", var.github_environment))
    error_message = "github_environment must be a GitHub environment name."
  }
}

variable "github_main_ref" {
  description = "Branch whose workflow_dispatch/schedule jobs (no environment) may plan and start training (token subject repo:<org>/<repo>:ref:<ref>)."
  type        = string
  default     = "refs/heads/main"
  validation {
    condition     = startswith(var.github_main_ref, "refs/heads/")
    error_message = "github_main_ref must be a branch ref such as refs/heads/main."
  }
}

variable "state_machine_arn" {
  description = "The train-evaluate-deploy state machine the train role may start (and whose executions it may describe)."
  type        = string
  validation {
    condition     = can(regex("^arn:[a-z-]+:states:[a-z0-9-]+:[0-9]{12}:stateMachine:[A-Za-z0-9_-]+$", var.state_machine_arn))
    error_message = "state_machine_arn must be a Step Functions state machine ARN."
  }
}

variable "kms_key_arn" {
  description = "The stack's KMS key: the state machine is encrypted with it, so starting and following an execution uses it."
  type        = string
}

variable "create_oidc_provider" {
  description = "Create the token.actions.githubusercontent.com OIDC provider (only one may exist per account; set false and pass oidc_provider_arn when it already does)."
  type        = bool
  default     = true
}

variable "oidc_provider_arn" {
  description = "ARN of an existing GitHub OIDC provider (when create_oidc_provider is false)."
  type        = string
  default     = null
}

variable "state_bucket" {
  description = "S3 bucket holding the Terraform state (see docs/deploy.md)."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.state_bucket))
    error_message = "state_bucket must be an S3 bucket name."
  }
}

variable "state_key_prefix" {
  description = "Key prefix of this deployment's state objects in the state bucket."
  type        = string
  default     = "esteira/"
}

variable "max_session_duration" {
  description = "Maximum session length of the CI roles, in seconds."
  type        = number
  default     = 3600
  validation {
    condition     = var.max_session_duration >= 900 && var.max_session_duration <= 43200
    error_message = "max_session_duration must be between 900 and 43200."
  }
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
