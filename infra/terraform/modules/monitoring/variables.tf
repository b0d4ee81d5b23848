variable "name" {
  description = "Name prefix for every resource (e.g. esteira-dev)."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,30}$", var.name))
    error_message = "name must be 3-31 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "kms_key_arn" {
  description = "KMS key encrypting the SNS topic."
  type        = string
}

variable "alarm_emails" {
  description = "E-mail addresses subscribed to the notification topic (each must confirm)."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for e in var.alarm_emails : can(regex("^[^@ ]+@[^@ ]+\\.[^@ ]+$", e))])
    error_message = "alarm_emails must be e-mail addresses."
  }
}

variable "cluster_name" {
  description = "ECS cluster of the inference service."
  type        = string
}

variable "service_name" {
  description = "ECS service of the inference service; also the Service dimension of Esteira metrics."
  type        = string
}

variable "alb_arn_suffix" {
  description = "ALB ARN suffix (LoadBalancer dimension)."
  type        = string
}

variable "target_group_arn_suffix" {
  description = "Target group ARN suffix (TargetGroup dimension)."
  type        = string
}

variable "state_machine_arn" {
  description = "State machine whose failed executions raise an alarm."
  type        = string
}

variable "retrain_trigger_function" {
  description = "The retrain_trigger Lambda (arn and name), target of model-health alarms."
  type        = object({ arn = string, name = string })
}

variable "drift_check_function" {
  description = "The drift_check Lambda (arn and name), run on a schedule."
  type        = object({ arn = string, name = string })
}

variable "drift_check_schedule" {
  description = "EventBridge schedule expression of the drift check."
  type        = string
  default     = "rate(1 hour)"
  validation {
    condition     = can(regex("^(rate|cron)\\(.+\\)$", var.drift_check_schedule))
    error_message = "drift_check_schedule must be a rate() or cron() expression."
  }
}

# ---- names from contract.yaml (the root module reads it and passes them here)
variable "alarm_suffixes" {
  description = "Alarm names after <name>- by purpose (contract.yaml alarms.suffixes); model-health alarms (drift, low_confidence) are the ones that retrain."
  type = object({
    error_rate        = string
    p99_latency       = string
    unhealthy_hosts   = string
    failed_executions = string
    drift             = string
    low_confidence    = string
  })
  validation {
    condition     = alltrue([for s in values(var.alarm_suffixes) : can(regex("^[a-z0-9][a-z0-9-]*$", s))]) && length(distinct(values(var.alarm_suffixes))) == 6
    error_message = "alarm_suffixes must be six distinct lowercase dash-separated names."
  }
}

variable "metrics_namespace" {
  description = "Namespace of the custom metrics the service and drift check publish (contract.yaml metrics.namespace)."
  type        = string
}

variable "service_dimension" {
  description = "Dimension naming the service in the custom metrics (contract.yaml metrics.dimensions.service); the alarms read the [<this>] roll-up."
  type        = string
}

variable "drift_metric_name" {
  description = "Custom metric carrying the drift score (contract.yaml metrics.names.drift_score)."
  type        = string
}

variable "low_confidence_metric_name" {
  description = "Custom metric carrying the share of predictions below the confidence threshold, 0-1 (contract.yaml metrics.names.low_confidence_rate)."
  type        = string
}

variable "error_rate_threshold_percent" {
  description = "Alarm when target 5xx responses exceed this share of requests (percent)."
  type        = number
  default     = 5
  validation {
    condition     = var.error_rate_threshold_percent > 0 && var.error_rate_threshold_percent <= 100
    error_message = "error_rate_threshold_percent must be in (0, 100]."
  }
}

variable "p99_latency_threshold_seconds" {
  description = "Alarm when the ALB's p99 target response time exceeds this (seconds)."
  type        = number
  default     = 0.5
  validation {
    condition     = var.p99_latency_threshold_seconds > 0
    error_message = "p99_latency_threshold_seconds must be positive."
  }
}

variable "drift_threshold" {
  description = "Alarm (and retrain) when DriftScore reaches this. 1.0 is the drift-check verdict, whose false-alarm rate per window is ESTEIRA_DRIFT_ALPHA (docs/drift.md); lower values alarm earlier and more often."
  type        = number
  default     = 1.0
  validation {
    condition     = var.drift_threshold > 0 && var.drift_threshold <= 1
    error_message = "drift_threshold must be in (0, 1]."
  }
}

variable "low_confidence_threshold" {
  description = "Alarm (and retrain) when the low-confidence rate exceeds this (0-1)."
  type        = number
  default     = 0.3
  validation {
    condition     = var.low_confidence_threshold > 0 && var.low_confidence_threshold < 1
    error_message = "low_confidence_threshold must be in (0, 1)."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
