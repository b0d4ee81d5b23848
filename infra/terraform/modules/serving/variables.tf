variable "name" {
  description = "Name prefix for every resource (e.g. esteira-dev)."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,24}$", var.name))
    error_message = "name must be 3-25 lowercase letters, digits or dashes (ALB names are limited to 32 characters)."
  }
}

variable "service_name" {
  description = "ECS service name (contract.yaml serving_service_name); also the Service dimension of the Esteira CloudWatch metrics."
  type        = string
  validation {
    condition     = can(regex("^[A-Za-z][A-Za-z0-9_-]{0,254}$", var.service_name))
    error_message = "service_name must be a valid ECS service name."
  }
}

variable "vpc_id" {
  description = "VPC to run in."
  type        = string
}

variable "vpc_cidr_block" {
  description = "VPC CIDR; serving tasks may reach the MLflow port inside it."
  type        = string
}

variable "public_subnet_ids" {
  description = "Public subnets for the internet-facing ALB (at least two AZs)."
  type        = list(string)
  validation {
    condition     = length(var.public_subnet_ids) >= 2
    error_message = "An ALB needs subnets in at least two availability zones."
  }
}

variable "private_subnet_ids" {
  description = "Private subnets for the Fargate tasks."
  type        = list(string)
  validation {
    condition     = length(var.private_subnet_ids) >= 1
    error_message = "Give at least one private subnet."
  }
}

variable "kms_key_arn" {
  description = "KMS key encrypting logs."
  type        = string
}

variable "image_uri" {
  description = "Serving container image (ECR URI with an immutable tag or digest)."
  type        = string
  validation {
    condition     = length(var.image_uri) > 0
    error_message = "image_uri must not be empty."
  }
}

variable "model_uri" {
  description = "ESTEIRA_MODEL_URI the service loads at start: models:/<name>@champion, or a pinned models:/<name>/<version>."
  type        = string
  validation {
    condition     = can(regex("^models:/[^/@]+(@[A-Za-z0-9_-]+|/[0-9]+)$", var.model_uri))
    error_message = "model_uri must look like models:/<name>@<alias> or models:/<name>/<version>."
  }
}

variable "mlflow_tracking_uri" {
  description = "MLFLOW_TRACKING_URI for the service (the private MLflow endpoint)."
  type        = string
}

variable "mlflow_credential_secret_arn" {
  description = "Secrets Manager secret {username, password} of MLflow's read-only user (modules/mlflow): the tasks' MLFLOW_TRACKING_USERNAME/PASSWORD."
  type        = string
  validation {
    condition     = can(regex("^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:.+$", var.mlflow_credential_secret_arn))
    error_message = "mlflow_credential_secret_arn must be a Secrets Manager secret ARN."
  }
}

variable "discovery_namespace" {
  description = "Name of the Cloud Map private DNS namespace (e.g. esteira-dev.internal). The canary service registers as canary.<namespace>, the address every serving task copies traffic to during a shadow release (ESTEIRA_SHADOW_URL)."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]+[a-z0-9]$", var.discovery_namespace))
    error_message = "discovery_namespace must be a DNS name."
  }
}

variable "discovery_namespace_id" {
  description = "ID of that Cloud Map namespace (the MLflow module creates it)."
  type        = string
  validation {
    condition     = startswith(var.discovery_namespace_id, "ns-")
    error_message = "discovery_namespace_id must be a Cloud Map namespace ID (ns-...)."
  }
}

variable "capture_s3_uri" {
  description = "ESTEIRA_CAPTURE_S3_URI: s3://bucket/prefix where inference requests/responses are captured."
  type        = string
  validation {
    condition     = startswith(var.capture_s3_uri, "s3://")
    error_message = "capture_s3_uri must start with s3://."
  }
}

variable "capture_bucket_arn" {
  description = "ARN of the capture bucket (the task may write to it)."
  type        = string
}

variable "extra_environment" {
  description = "Additional container environment variables for the serving task."
  type        = map(string)
  default     = {}
}

variable "container_port" {
  description = "Port the inference service listens on."
  type        = number
  default     = 8080
  validation {
    condition     = var.container_port > 0 && var.container_port < 65536
    error_message = "container_port must be a TCP port."
  }
}

variable "health_check_path" {
  description = "Readiness path the ALB target group checks."
  type        = string
  default     = "/ready"
  validation {
    condition     = startswith(var.health_check_path, "/")
    error_message = "health_check_path must start with /."
  }
}

variable "cpu" {
  description = "Fargate task CPU units."
  type        = number
  default     = 512
  validation {
    condition     = contains([256, 512, 1024, 2048, 4096, 8192, 16384], var.cpu)
    error_message = "cpu must be a Fargate CPU size."
  }
}

variable "memory" {
  description = "Fargate task memory (MiB); must be valid for the CPU size."
  type        = number
  default     = 1024
  validation {
    condition     = var.memory >= 512 && var.memory <= 122880
    error_message = "memory must be between 512 and 122880 MiB."
  }
}

variable "desired_count" {
  description = "Tasks at creation; afterwards autoscaling owns the count."
  type        = number
  default     = 2
  validation {
    condition     = var.desired_count >= 0
    error_message = "desired_count must be >= 0."
  }
}

variable "min_capacity" {
  description = "Autoscaling minimum number of tasks."
  type        = number
  default     = 2
  validation {
    condition     = var.min_capacity >= 1
    error_message = "min_capacity must be at least 1."
  }
}

variable "max_capacity" {
  description = "Autoscaling maximum number of tasks."
  type        = number
  default     = 6
  validation {
    condition     = var.max_capacity >= 1
    error_message = "max_capacity must be at least 1."
  }
}

variable "cpu_target_percent" {
  description = "Target average CPU utilisation for target-tracking scaling."
  type        = number
  default     = 60
  validation {
    condition     = var.cpu_target_percent > 0 && var.cpu_target_percent <= 100
    error_message = "cpu_target_percent must be in (0, 100]."
  }
}

variable "requests_per_target" {
  description = "Target ALB requests per task per minute for request-count scaling."
  type        = number
  default     = 30000
  validation {
    condition     = var.requests_per_target > 0
    error_message = "requests_per_target must be positive."
  }
}

variable "use_fargate_spot" {
  description = "Run tasks on Fargate Spot (cheaper, may be interrupted: dev only)."
  type        = bool
  default     = false
}

variable "certificate_arn" {
  description = "ACM certificate for HTTPS on the ALB. Null serves plain HTTP (no domain in the reference); set it for anything public."
  type        = string
  default     = null
}

variable "allowed_ingress_cidrs" {
  description = "CIDRs allowed to reach the ALB."
  type        = list(string)
  default     = ["0.0.0.0/0"]
  validation {
    condition     = alltrue([for c in var.allowed_ingress_cidrs : can(cidrhost(c, 0))])
    error_message = "allowed_ingress_cidrs must be IPv4 CIDRs."
  }
}

variable "alb_logs_bucket" {
  description = "Bucket for ALB access logs (prefix alb/)."
  type        = string
}

variable "deletion_protection" {
  description = "Protect the ALB against deletion."
  type        = bool
  default     = true
}

variable "metrics_namespace" {
  description = "CloudWatch namespace the service publishes EMF/custom metrics to (contract.yaml metrics.namespace)."
  type        = string
  validation {
    condition     = can(regex("^[A-Za-z0-9._/#:-]{1,255}$", var.metrics_namespace)) && !startswith(var.metrics_namespace, "AWS/")
    error_message = "metrics_namespace must be a custom CloudWatch namespace (not AWS/...)."
  }
}

variable "environment_names" {
  description = "Names of the container environment variables the service reads (contract.yaml serving_environment); the module sets exactly these, extra_environment may add others."
  type        = list(string)
  validation {
    condition     = length(var.environment_names) > 0 && alltrue([for n in var.environment_names : can(regex("^[A-Z][A-Z0-9_]*$", n))])
    error_message = "environment_names must be UPPER_SNAKE_CASE names."
  }
}

variable "image_variable" {
  description = "Environment variable the container gets with its own image reference, image_uri (contract.yaml image_variable); not one of environment_names."
  type        = string
  validation {
    condition     = can(regex("^[A-Z][A-Z0-9_]*$", var.image_variable))
    error_message = "image_variable must be an UPPER_SNAKE_CASE name."
  }
}

variable "log_retention_days" {
  description = "Retention of the service and exec-command log groups, in days."
  type        = number
  default     = 365
  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts."
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

variable "extra_capacity_providers" {
  description = "Capacity providers of the cluster besides FARGATE and FARGATE_SPOT (the EC2 training capacity); the default strategy stays Fargate."
  type        = list(string)
  default     = []
}
