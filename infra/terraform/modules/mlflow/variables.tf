variable "name" {
  description = "Name prefix for every resource (e.g. esteira-dev)."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,30}$", var.name))
    error_message = "name must be 3-31 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "vpc_id" {
  description = "VPC to run in."
  type        = string
}

variable "vpc_cidr_block" {
  description = "VPC CIDR; MLflow accepts connections from inside it only."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets for the MLflow task and the database (two AZs for the DB subnet group)."
  type        = list(string)
  validation {
    condition     = length(var.private_subnet_ids) >= 2
    error_message = "RDS needs a subnet group spanning at least two availability zones."
  }
}

variable "cluster_arn" {
  description = "ECS cluster hosting the MLflow service."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key encrypting the database, its secret and logs."
  type        = string
}

variable "artifacts_bucket_name" {
  description = "Bucket holding MLflow artifacts (under the mlflow/ prefix)."
  type        = string
}

variable "artifacts_bucket_arn" {
  description = "ARN of the artifacts bucket."
  type        = string
}

variable "image_uri" {
  description = "MLflow server image (mlflow + psycopg2 + boto3); see docs/deploy.md."
  type        = string
  validation {
    condition     = length(var.image_uri) > 0
    error_message = "image_uri must not be empty."
  }
}

variable "image_variable" {
  description = "Environment variable the container gets with its own image reference, image_uri (contract.yaml image_variable)."
  type        = string
  validation {
    condition     = can(regex("^[A-Z][A-Z0-9_]*$", var.image_variable))
    error_message = "image_variable must be an UPPER_SNAKE_CASE name."
  }
}

variable "discovery_namespace" {
  description = "Private DNS namespace (Cloud Map) in which MLflow is reachable as mlflow.<namespace>."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]+[a-z0-9]$", var.discovery_namespace))
    error_message = "discovery_namespace must be a DNS name."
  }
}

variable "cpu" {
  description = "Fargate CPU units of the MLflow task."
  type        = number
  default     = 512
  validation {
    condition     = contains([256, 512, 1024, 2048, 4096], var.cpu)
    error_message = "cpu must be a Fargate CPU size."
  }
}

variable "memory" {
  description = "Memory (MiB) of the MLflow task."
  type        = number
  default     = 1024
  validation {
    condition     = var.memory >= 512
    error_message = "memory must be at least 512 MiB."
  }
}

variable "desired_count" {
  description = "Number of MLflow server tasks."
  type        = number
  default     = 1
  validation {
    condition     = var.desired_count >= 0 && var.desired_count <= 10
    error_message = "desired_count must be between 0 and 10."
  }
}

variable "db_instance_class" {
  description = "RDS instance class for the PostgreSQL backend store."
  type        = string
  default     = "db.t4g.micro"
  validation {
    condition     = startswith(var.db_instance_class, "db.")
    error_message = "db_instance_class must be an RDS class such as db.t4g.micro."
  }
}

variable "db_engine_version" {
  description = "PostgreSQL major version (minor versions upgrade automatically)."
  type        = string
  default     = "17"
  validation {
    condition     = can(regex("^[0-9]+(\\.[0-9]+)?$", var.db_engine_version))
    error_message = "db_engine_version must look like 17 or 17.6."
  }
}

variable "db_allocated_storage" {
  description = "Allocated gp3 storage in GiB."
  type        = number
  default     = 20
  validation {
    condition     = var.db_allocated_storage >= 20
    error_message = "db_allocated_storage must be at least 20 GiB."
  }
}

variable "db_multi_az" {
  description = "Run the database Multi-AZ (prod)."
  type        = bool
  default     = true
}

variable "db_backup_retention_days" {
  description = "Automated backup retention in days."
  type        = number
  default     = 7
  validation {
    condition     = var.db_backup_retention_days >= 1 && var.db_backup_retention_days <= 35
    error_message = "db_backup_retention_days must be between 1 and 35."
  }
}

variable "db_performance_insights" {
  description = "Enable Performance Insights (7 days retention is free)."
  type        = bool
  default     = true
}

variable "deletion_protection" {
  description = "Protect the database against deletion (and take a final snapshot on destroy)."
  type        = bool
  default     = true
}

variable "log_retention_days" {
  description = "Retention of the MLflow log group, in days."
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

variable "model_name" {
  description = "The registered model the workflow releases (ESTEIRA_MODEL_NAME): the MLflow task creates it at start, so that no user but MLflow's admin (the workflow's) can own it and move its aliases."
  type        = string
  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9_.-]{0,255}$", var.model_name))
    error_message = "model_name must be 1-256 letters, digits, '_', '.' or '-', starting with a letter or digit."
  }
}

variable "auth_default_permission" {
  description = "What an authenticated MLflow user without a grant may do: READ, or NO_PERMISSIONS. Unauthenticated requests are always refused."
  type        = string
  default     = "READ"
  validation {
    condition     = contains(["READ", "NO_PERMISSIONS"], var.auth_default_permission)
    error_message = "auth_default_permission must be READ or NO_PERMISSIONS."
  }
}

variable "credential_version" {
  description = "Version of the generated MLflow credentials; increase it to generate new ones (then restart the MLflow service)."
  type        = number
  default     = 1
  validation {
    condition     = var.credential_version >= 1 && floor(var.credential_version) == var.credential_version
    error_message = "credential_version must be a positive integer."
  }
}
