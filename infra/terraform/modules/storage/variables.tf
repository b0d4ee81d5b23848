variable "name" {
  description = "Name prefix for every resource (e.g. esteira-dev); bucket names append the account ID to be globally unique."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,30}$", var.name))
    error_message = "name must be 3-31 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "force_destroy" {
  description = "Allow destroying non-empty buckets (dev convenience; keep false in prod)."
  type        = bool
  default     = false
}

variable "noncurrent_version_days" {
  description = "Days to keep non-current object versions before expiring them."
  type        = number
  default     = 90
  validation {
    condition     = var.noncurrent_version_days >= 1
    error_message = "noncurrent_version_days must be at least 1."
  }
}

variable "capture_expiration_days" {
  description = "Days to keep captured inference requests/responses (they feed drift checks and retraining)."
  type        = number
  default     = 180
  validation {
    condition     = var.capture_expiration_days >= 7
    error_message = "capture_expiration_days must be at least 7 (the drift window)."
  }
}

variable "access_log_expiration_days" {
  description = "Days to keep S3 server access logs and ALB access logs."
  type        = number
  default     = 365
  validation {
    condition     = var.access_log_expiration_days >= 1
    error_message = "access_log_expiration_days must be at least 1."
  }
}

variable "key_deletion_window_days" {
  description = "Waiting period before the KMS key is deleted after destroy."
  type        = number
  default     = 30
  validation {
    condition     = var.key_deletion_window_days >= 7 && var.key_deletion_window_days <= 30
    error_message = "key_deletion_window_days must be between 7 and 30."
  }
}

variable "encrypted_volumes_for_autoscaling" {
  description = "Let EC2 Auto Scaling (its service-linked role) use the key for the EBS volumes of the instances it launches (the EC2 training hosts); without it those launches fail."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
