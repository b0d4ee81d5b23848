# ---- where and what
variable "aws_region" {
  description = "AWS region to deploy into."
  type        = string
  default     = "us-east-1"
  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.aws_region))
    error_message = "aws_region must be a region name such as us-east-1."
  }
}

variable "project" {
  description = "Project name, first part of every resource name."
  type        = string
  default     = "esteira"
  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,11}$", var.project))
    error_message = "project must be 2-12 lowercase letters or digits."
  }
}

variable "environment" {
  description = "Deployment environment; resources are named <project>-<environment>-*."
  type        = string
  validation {
    condition     = contains(["dev", "staging", "prod"], var.environment)
    error_message = "environment must be dev, staging or prod."
  }
}

variable "tags" {
  description = "Extra tags on every resource (Project and Environment are always set)."
  type        = map(string)
  default     = {}
}

# ---- emulator (tests only)
variable "aws_endpoint_url" {
  description = "Send every AWS API call to this endpoint (a local emulator such as moto, e.g. http://127.0.0.1:5000) and skip credential/account checks. Null for real AWS."
  type        = string
  default     = null
  validation {
    condition     = var.aws_endpoint_url == null || can(regex("^https?://", var.aws_endpoint_url))
    error_message = "aws_endpoint_url must be an http(s) URL or null."
  }
}

# ---- network
variable "vpc_cidr" {
  description = "IPv4 CIDR of the VPC."
  type        = string
  default     = "10.40.0.0/16"
  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0))
    error_message = "vpc_cidr must be a valid IPv4 CIDR."
  }
}

variable "availability_zones" {
  description = "AZs to use; empty picks the region's first az_count zones."
  type        = list(string)
  default     = []
}

variable "az_count" {
  description = "How many AZs to use when availability_zones is empty."
  type        = number
  default     = 2
  validation {
    condition     = var.az_count >= 2 && var.az_count <= 4
    error_message = "az_count must be between 2 and 4."
  }
}

variable "enable_nat_gateway" {
  description = "Add NAT gateway(s) for outbound internet from private subnets (not needed: VPC endpoints cover AWS APIs)."
  type        = bool
  default     = false
}

variable "interface_endpoints" {
  description = "Interface VPC endpoints (service short names) giving private tasks and Lambdas AWS APIs without NAT. Without a NAT gateway the plan fails unless it holds every service in main.tf's local.private_aws_apis."
  type        = set(string)
  default     = ["ecr.api", "ecr.dkr", "logs", "secretsmanager", "ecs", "elasticloadbalancing", "states", "monitoring", "sns"]
  validation {
    condition     = alltrue([for s in var.interface_endpoints : can(regex("^[a-z0-9.-]+$", s))])
    error_message = "interface_endpoints are service short names like \"ecr.api\"."
  }
}

variable "endpoint_subnet_count" {
  description = "Number of AZs each interface endpoint is placed in (1 is cheapest, 2+ survives an AZ outage)."
  type        = number
  default     = 2
  validation {
    condition     = var.endpoint_subnet_count >= 1 && var.endpoint_subnet_count <= 4
    error_message = "endpoint_subnet_count must be between 1 and 4."
  }
}

# ---- images
variable "image_tag" {
  description = "Tag of the serving, training, lambdas and mlflow images in this stack's ECR repositories (used when an *_image_uri is null)."
  type        = string
  default     = "0.1.0"
  validation {
    condition     = can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.image_tag))
    error_message = "image_tag must be a valid image tag."
  }
}

variable "serving_image_uri" {
  description = "Override the serving image URI."
  type        = string
  default     = null
}

variable "training_image_uri" {
  description = "Override the training image URI."
  type        = string
  default     = null
}

variable "lambda_image_uri" {
  description = "Override the Lambda image URI (one image for every workflow function)."
  type        = string
  default     = null
}

variable "mlflow_image_uri" {
  description = "Override the MLflow server image URI."
  type        = string
  default     = null
}

# ---- model and serving
variable "model_name" {
  description = "Registered model name in MLflow."
  type        = string
  default     = "esteira-intent"
  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9_.-]*$", var.model_name))
    error_message = "model_name must be letters, digits, dot, dash or underscore."
  }
}

variable "pinned_model_version" {
  description = "Serve this registered model version instead of the @champion alias (null follows the alias)."
  type        = number
  default     = null
}

variable "serving_cpu" {
  description = "Fargate CPU units per serving task."
  type        = number
  default     = 1024
}

variable "serving_memory" {
  description = "Memory (MiB) per serving task."
  type        = number
  default     = 2048
}

variable "serving_min_capacity" {
  description = "Minimum serving tasks."
  type        = number
  default     = 2
  validation {
    condition     = var.serving_min_capacity >= 1
    error_message = "serving_min_capacity must be at least 1."
  }
}

variable "serving_max_capacity" {
  description = "Maximum serving tasks."
  type        = number
  default     = 6
  validation {
    condition     = var.serving_max_capacity >= 1
    error_message = "serving_max_capacity must be at least 1."
  }
}

variable "use_fargate_spot" {
  description = "Run serving tasks on Fargate Spot (dev only)."
  type        = bool
  default     = false
}

variable "certificate_arn" {
  description = "ACM certificate ARN for HTTPS on the ALB; null serves HTTP only."
  type        = string
  default     = null
}

variable "allowed_ingress_cidrs" {
  description = "CIDRs allowed to reach the ALB."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

# ---- MLflow
variable "mlflow_db_instance_class" {
  description = "RDS PostgreSQL instance class of the MLflow backend store."
  type        = string
  default     = "db.t4g.small"
}

variable "mlflow_db_multi_az" {
  description = "Multi-AZ MLflow database."
  type        = bool
  default     = true
}

variable "mlflow_credential_version" {
  description = "Version of MLflow's generated credentials (Secrets Manager): increase it to generate new passwords, then force a new deployment of the MLflow service (docs/deploy.md, \"Who may move an alias\")."
  type        = number
  default     = 1
  validation {
    condition     = var.mlflow_credential_version >= 1 && floor(var.mlflow_credential_version) == var.mlflow_credential_version
    error_message = "mlflow_credential_version must be a positive integer."
  }
}

# ---- workflow and monitoring
variable "smoke_test_outside_vpc" {
  description = "Run the workflow's smoke-test Lambda outside the VPC: it only calls the service URL, and the internet-facing ALB is unreachable from private subnets without a NAT gateway. Set false with enable_nat_gateway (and allow the NAT addresses in allowed_ingress_cidrs)."
  type        = bool
  default     = true
}

variable "training_backend" {
  description = "Default training backend of the state machine (an execution's input may name another that is deployed): ecs (Fargate), ec2 (the EC2 capacity of ec2_training) or sagemaker (creates the SageMaker role)."
  type        = string
  default     = "ecs"
  validation {
    condition     = contains(["ecs", "ec2", "sagemaker"], var.training_backend)
    error_message = "training_backend must be ecs, ec2 or sagemaker."
  }
}

variable "ec2_training" {
  description = "EC2 capacity for heavy training (docs/training-capacity.md), off by default: an ECS capacity provider over an Auto Scaling group that managed scaling keeps at 0 instances while idle. task_cpu (CPU units) and task_memory (MiB) size the training task and must fit instance_type; gpus > 0 reserves GPUs and selects the ECS GPU AMI."
  type = object({
    enabled        = optional(bool, false)
    instance_type  = optional(string, "m6i.8xlarge")
    gpus           = optional(number, 0)
    max_instances  = optional(number, 1)
    volume_size_gb = optional(number, 100)
    task_cpu       = optional(number, 30720)
    task_memory    = optional(number, 114688)
  })
  default = {}
  validation {
    condition     = var.ec2_training.task_cpu >= 256 && var.ec2_training.task_memory >= 512
    error_message = "ec2_training.task_cpu must be at least 256 CPU units and task_memory at least 512 MiB."
  }
}

variable "retrain_cooldown_seconds" {
  description = "Minimum seconds between alarm-triggered retrainings."
  type        = number
  default     = 21600
}

variable "drift_check_schedule" {
  description = "Schedule expression of the drift check."
  type        = string
  default     = "rate(1 hour)"
}

variable "alarm_emails" {
  description = "E-mail addresses notified of alarms and workflow results."
  type        = list(string)
  default     = []
}

variable "lambda_extra_environment" {
  description = "Extra environment variables for every workflow Lambda and the training task."
  type        = map(string)
  default     = {}
}

# ---- CI (GitHub OIDC)
variable "enable_ci" {
  description = "Create the GitHub OIDC provider and the deploy/plan roles."
  type        = bool
  default     = true
}

variable "github_repository" {
  description = "GitHub <org>/<repo> allowed to deploy."
  type        = string
  default     = "esteira-mlops/esteira"
}

variable "github_environment" {
  description = "GitHub Actions environment whose jobs may apply (the deploy role trusts repo:<org>/<repo>:environment:<this>); .github/workflows/deploy.yml uses production."
  type        = string
  default     = "production"
  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+$", var.github_environment))
    error_message = "github_environment must be a GitHub environment name."
  }
}

variable "create_oidc_provider" {
  description = "Create the account's GitHub OIDC provider (false when another stack owns it; then set oidc_provider_arn)."
  type        = bool
  default     = true
}

variable "oidc_provider_arn" {
  description = "Existing GitHub OIDC provider ARN (when create_oidc_provider is false)."
  type        = string
  default     = null
}

variable "state_bucket" {
  description = "Terraform state bucket the CI roles may use (see docs/deploy.md)."
  type        = string
  default     = "esteira-tfstate"
}

# ---- safety and retention
variable "deletion_protection" {
  description = "Deletion protection on the ALB, the database and the lock table (turn off to destroy dev)."
  type        = bool
  default     = true
}

variable "force_destroy" {
  description = "Allow destroying non-empty buckets and repositories (dev only)."
  type        = bool
  default     = false
}

variable "log_retention_days" {
  description = "CloudWatch Logs retention in days for every log group."
  type        = number
  default     = 365
}

# ---- releases (docs/canary.md)
variable "deployment_strategy" {
  description = "How promoted models are released: all_at_once, canary (weighted steps with live checks and automatic rollback) or shadow (mirrored traffic, agreement reported, never served). Executions may override it in their input."
  type        = string
  default     = "all_at_once"
  validation {
    condition     = contains(["all_at_once", "canary", "shadow"], var.deployment_strategy)
    error_message = "deployment_strategy must be all_at_once, canary or shadow."
  }
}

variable "canary_steps" {
  description = "Traffic percentages of a canary release, strictly increasing and ending at 100."
  type        = list(number)
  default     = [10, 50, 100]
}

variable "canary_bake_seconds" {
  description = "Bake time at each canary step before the live checks."
  type        = number
  default     = 600
}

variable "shadow_seconds" {
  description = "Mirroring time of a shadow release before its agreement rate is reported."
  type        = number
  default     = 1800
}

variable "canary_thresholds" {
  description = "Live bars of a canary (see modules/workflow variable canary_thresholds); unset fields keep their defaults."
  type = object({
    max_5xx_rate            = optional(number, 0.01)
    max_5xx_count           = optional(number, 5)
    max_p99_ms              = optional(number, 500)
    max_low_confidence_rate = optional(number, 0.5)
    max_prediction_drift    = optional(number, 0.2)
    min_requests            = optional(number, 30)
  })
  default = {}
}

# ---- delivery (docs/delivery.md)
variable "delivery" {
  description = "Who applies a release: github (Jenkins dispatches .github/workflows/deploy.yml) or codepipeline (Jenkins publishes a release zip that starts an AWS CodePipeline; needs enable_ci for the deploy policy)."
  type        = string
  default     = "github"
  validation {
    condition     = contains(["github", "codepipeline"], var.delivery)
    error_message = "delivery must be github or codepipeline."
  }
}

variable "release_object_key" {
  description = "Key of the release zip in the delivery bucket (delivery = codepipeline); make publish-release puts it there."
  type        = string
  default     = "releases/release.zip"
}
