variable "name" {
  description = "Name prefix for every resource (e.g. esteira-dev)."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,30}$", var.name))
    error_message = "name must be 3-31 lowercase letters, digits or dashes, starting with a letter."
  }
}

# ---- names from contract.yaml (the root module reads it and passes them here)
variable "function_keys" {
  description = "The workflow Lambdas (contract.yaml lambda_functions). Key k runs handler lambdas.<k>.handler from the one Lambda image, is named <name>-<k with - for _>, and its ARN reaches the state machine template as <k>_function_arn."
  type        = list(string)
  validation {
    condition     = length(var.function_keys) > 0 && length(distinct(var.function_keys)) == length(var.function_keys) && alltrue([for k in var.function_keys : can(regex("^[a-z][a-z0-9_]*$", k))])
    error_message = "function_keys must be distinct snake_case module names."
  }
}

variable "environment_names" {
  description = "Names of the environment variables every Lambda and the training task get (contract.yaml workflow_environment); the module sets exactly these, extra_environment may add others."
  type        = list(string)
  validation {
    condition     = length(var.environment_names) > 0 && alltrue([for n in var.environment_names : can(regex("^[A-Z][A-Z0-9_]*$", n))])
    error_message = "environment_names must be UPPER_SNAKE_CASE names."
  }
}

variable "image_variable" {
  description = "Environment variable each Lambda, the training task and the SageMaker training job get with the image it runs: lambda_image_uri or training_image_uri (contract.yaml image_variable); not one of environment_names."
  type        = string
  validation {
    condition     = can(regex("^[A-Z][A-Z0-9_]*$", var.image_variable))
    error_message = "image_variable must be an UPPER_SNAKE_CASE name."
  }
}

variable "template_variables" {
  description = "Variables of the ASL template (contract.yaml asl_variables); the module must give each a value."
  type        = list(string)
  validation {
    condition     = alltrue([for v in var.template_variables : can(regex("^[a-z][a-z0-9_]*$", v))])
    error_message = "template_variables must be snake_case names."
  }
}

variable "labels_key" {
  description = "Key of the intent taxonomy in the data bucket (contract.yaml labels_key): ESTEIRA_LABELS_URI = s3://<data bucket>/<labels_key>."
  type        = string
  validation {
    condition     = length(var.labels_key) > 0 && !startswith(var.labels_key, "/")
    error_message = "labels_key must be a relative S3 key."
  }
}

variable "snapshots_prefix" {
  description = "Prefix of the immutable data snapshots in the data bucket (contract.yaml snapshots_prefix): ESTEIRA_SNAPSHOT_URI = s3://<data bucket>/<snapshots_prefix>/; only the validate step may add under it, no role may delete."
  type        = string
  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9_.-]+)*$", var.snapshots_prefix))
    error_message = "snapshots_prefix must be a relative S3 prefix without leading or trailing \"/\"."
  }
}

variable "mlflow_credential_secret_arns" {
  description = "Secrets Manager secrets {username, password} of MLflow's users (modules/mlflow): `workflow` (may write and move aliases: training and the functions that change the registry) and `reader` (read-only: the drift check)."
  type = object({
    workflow = string
    reader   = string
  })
}

variable "capture_s3_uri" {
  description = "ESTEIRA_CAPTURE_S3_URI: where the service captures inference traffic, s3://<capture bucket>/<contract.yaml capture.prefix>/ (the drift check reads it)."
  type        = string
  validation {
    condition     = startswith(var.capture_s3_uri, "s3://") && endswith(var.capture_s3_uri, "/")
    error_message = "capture_s3_uri must be s3://bucket/prefix/."
  }
}

variable "alarm_prefixes" {
  description = "Alarm-name prefixes after <name> (contract.yaml alarms): retrain (model-health alarms, e.g. -model-) and canary (per-version canary alarms, e.g. -canary)."
  type        = object({ retrain = string, canary = string })
  validation {
    condition     = startswith(var.alarm_prefixes.retrain, "-") && startswith(var.alarm_prefixes.canary, "-") && !startswith(var.alarm_prefixes.canary, var.alarm_prefixes.retrain)
    error_message = "alarm_prefixes start with - and canary alarms must not match the retrain prefix."
  }
}

variable "metrics_namespace" {
  description = "CloudWatch namespace of the Esteira custom metrics (contract.yaml metrics.namespace)."
  type        = string
  validation {
    condition     = can(regex("^[A-Za-z0-9._/#:-]{1,255}$", var.metrics_namespace)) && !startswith(var.metrics_namespace, "AWS/")
    error_message = "metrics_namespace must be a custom CloudWatch namespace (not AWS/...)."
  }
}

# ---- settings
variable "functions" {
  description = "Description, timeout and memory of each workflow Lambda, by key; the keys must be function_keys."
  type = map(object({
    description = string
    timeout     = optional(number, 60)
    memory_size = optional(number, 1024)
    environment = optional(map(string), {})
  }))
  default = {
    validate_data   = { description = "Validate the dataset and record its content hash", timeout = 300, memory_size = 2048 }
    evaluate        = { description = "Evaluate the candidate model against the test split and the champion", timeout = 600, memory_size = 3008 }
    promote         = { description = "Register the candidate and move the champion alias" }
    deploy          = { description = "Register a task-definition revision for the model version and update the service" }
    service_stable  = { description = "Report whether the ECS deployment has reached steady state", timeout = 30 }
    smoke_test      = { description = "Send known requests to the new deployment and check the answers", timeout = 120 }
    rollback        = { description = "Restore the previous task-definition revision and champion alias", timeout = 120 }
    drift_check     = { description = "Compare captured inference traffic with the reference profile", timeout = 600, memory_size = 3008 }
    retrain_trigger = { description = "Start the training workflow when a model-health alarm fires, honouring a cooldown", timeout = 30, memory_size = 512 }
    lock            = { description = "Acquire or release the single-workflow lock", timeout = 30, memory_size = 512 }
    canary_check    = { description = "Canary and shadow releases: start, shift weights, judge live metrics, finalize or roll back", timeout = 300 }
  }
  validation {
    condition     = alltrue([for k, f in var.functions : can(regex("^[a-z][a-z0-9_]*$", k)) && f.timeout >= 1 && f.timeout <= 900 && f.memory_size >= 128 && f.memory_size <= 10240])
    error_message = "Function keys are snake_case module names; timeout 1-900 s; memory 128-10240 MB."
  }
}

variable "lambda_image_uri" {
  description = "The one container image holding every Lambda handler (ECR URI with tag or digest)."
  type        = string
  validation {
    condition     = length(var.lambda_image_uri) > 0
    error_message = "lambda_image_uri must not be empty."
  }
}

variable "training_image_uri" {
  description = "Training image; runs `esteira train` on ECS (or SageMaker)."
  type        = string
  validation {
    condition     = length(var.training_image_uri) > 0
    error_message = "training_image_uri must not be empty."
  }
}

variable "train_command" {
  description = "Command of the training container."
  type        = list(string)
  default     = ["esteira", "train"]
}

variable "train_cpu" {
  description = "Fargate CPU units of the training task."
  type        = number
  default     = 2048
  validation {
    condition     = contains([256, 512, 1024, 2048, 4096, 8192, 16384], var.train_cpu)
    error_message = "train_cpu must be a Fargate CPU size."
  }
}

variable "train_memory" {
  description = "Memory (MiB) of the training task."
  type        = number
  default     = 8192
  validation {
    condition     = var.train_memory >= 512
    error_message = "train_memory must be at least 512 MiB."
  }
}

variable "training_backend" {
  description = "Where the state machine trains unless an execution's input names another (training_backend): ecs (Fargate task), ec2 (ECS task on the EC2 capacity provider; needs ec2_training) or sagemaker (training job; its role exists only with this default)."
  type        = string
  default     = "ecs"
  validation {
    condition     = contains(["ecs", "ec2", "sagemaker"], var.training_backend)
    error_message = "training_backend must be ecs, ec2 or sagemaker."
  }
}

variable "ec2_training" {
  description = "The EC2 training backend, or null for none: the ECS capacity provider the task is placed with (modules/ec2_capacity) and the task's size. cpu in CPU units, memory in MiB, gpus reserved per task."
  type = object({
    capacity_provider = string
    cpu               = number
    memory            = number
    gpus              = number
  })
  default = null
  validation {
    condition     = var.ec2_training == null || try(var.ec2_training.cpu >= 256 && var.ec2_training.memory >= 512 && var.ec2_training.gpus >= 0, false)
    error_message = "ec2_training needs cpu >= 256 units, memory >= 512 MiB and gpus >= 0."
  }
}

variable "definition_path" {
  description = "Path of the workflow's ASL template (stepfunctions/train_evaluate_deploy.asl.json)."
  type        = string
}

variable "release_definition_path" {
  description = "Path of the release's ASL template (stepfunctions/release.asl.json), the child the workflow starts."
  type        = string
}

variable "vpc_id" {
  description = "VPC the Lambdas and the training task run in."
  type        = string
}

variable "vpc_cidr_block" {
  description = "VPC CIDR (MLflow port allowed inside it)."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets for Lambdas and training tasks."
  type        = list(string)
  validation {
    condition     = length(var.private_subnet_ids) >= 1
    error_message = "Give at least one private subnet."
  }
}

variable "kms_key_arn" {
  description = "KMS key for logs, Lambda environment, the lock table."
  type        = string
}

variable "cluster_arn" {
  description = "ECS cluster for training tasks and the serving service."
  type        = string
}

variable "cluster_name" {
  description = "ECS cluster name."
  type        = string
}

variable "serving_service_name" {
  description = "ECS service the deploy/rollback steps update."
  type        = string
}

variable "serving_task_family" {
  description = "Task-definition family of the serving service."
  type        = string
}

variable "serving_role_arns" {
  description = "Task and execution role ARNs of the serving task (the deploy step passes them to new revisions)."
  type        = list(string)
}

variable "serving_url" {
  description = "Base URL of the inference service (smoke test)."
  type        = string
}

variable "bucket_names" {
  description = "Bucket names by purpose: data, artifacts, capture."
  type        = map(string)
  validation {
    condition     = alltrue([for k in ["data", "artifacts", "capture"] : contains(keys(var.bucket_names), k)])
    error_message = "bucket_names needs data, artifacts and capture."
  }
}

variable "bucket_arns" {
  description = "Bucket ARNs by purpose: data, artifacts, capture."
  type        = map(string)
}

variable "mlflow_tracking_uri" {
  description = "MLFLOW_TRACKING_URI for the Lambdas and the training task."
  type        = string
}

variable "model_name" {
  description = "Registered model name in MLflow."
  type        = string
}

variable "sns_topic_arn" {
  description = "Topic the workflow notifies (success, rejection, failure)."
  type        = string
}

variable "retrain_cooldown_seconds" {
  description = "Minimum seconds between two alarm-triggered retrainings (enforced by retrain_trigger)."
  type        = number
  default     = 21600
  validation {
    condition     = var.retrain_cooldown_seconds >= 0
    error_message = "retrain_cooldown_seconds must be >= 0."
  }
}

variable "extra_environment" {
  description = "Additional environment variables for every Lambda and the training task."
  type        = map(string)
  default     = {}
}

variable "deletion_protection" {
  description = "Protect the lock table against deletion."
  type        = bool
  default     = true
}

variable "log_retention_days" {
  description = "Retention of Lambda, training and state-machine logs, in days."
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

# ---- releases (docs/canary.md)
variable "deployment_strategy" {
  description = "How the workflow releases a promoted model: all_at_once (update the service), canary (weighted steps with live checks) or shadow (mirrored traffic, never served). An execution input field of the same name overrides it."
  type        = string
  default     = "all_at_once"
  validation {
    condition     = contains(["all_at_once", "canary", "shadow"], var.deployment_strategy)
    error_message = "deployment_strategy must be all_at_once, canary or shadow."
  }
}

variable "canary_steps" {
  description = "Percentages of traffic the candidate gets, step by step; strictly increasing, ending at 100."
  type        = list(number)
  default     = [10, 50, 100]
  validation {
    condition = (
      length(var.canary_steps) > 0 && var.canary_steps[length(var.canary_steps) - 1] == 100 &&
      alltrue([for i, s in var.canary_steps : s >= 1 && s <= 100 && floor(s) == s && (i == 0 || s > var.canary_steps[max(i - 1, 0)])])
    )
    error_message = "canary_steps must be strictly increasing whole percentages in 1..100 ending at 100."
  }
}

variable "canary_bake_seconds" {
  description = "Bake time at each canary step before the live checks judge it (CloudWatch needs a few minutes of data)."
  type        = number
  default     = 600
  validation {
    condition     = var.canary_bake_seconds >= 1 && var.canary_bake_seconds <= 86400
    error_message = "canary_bake_seconds must be between 1 and 86400."
  }
}

variable "shadow_seconds" {
  description = "How long a shadow release mirrors traffic before its agreement rate is reported."
  type        = number
  default     = 1800
  validation {
    condition     = var.shadow_seconds >= 1 && var.shadow_seconds <= 86400
    error_message = "shadow_seconds must be between 1 and 86400."
  }
}

variable "canary_service_name" {
  description = "ECS service that runs the candidate (modules/serving output canary_service_name)."
  type        = string
}

variable "listener_arn" {
  description = "ALB listener whose weighted forward action releases move (modules/serving output listener_arn)."
  type        = string
}

variable "stable_target_group_arn" {
  description = "Target group of the stable service."
  type        = string
}

variable "canary_target_group_arn" {
  description = "Target group of the canary service."
  type        = string
}

variable "canary_thresholds" {
  description = "Live bars a canary must clear at every step: 5xx rate (0..1), 5xx per minute (per-version alarm), p99 latency (ms), low-confidence rate (0..1), prediction drift vs the champion (Jensen-Shannon, 0..1) and the fewest candidate requests a verdict needs."
  type = object({
    max_5xx_rate            = optional(number, 0.01)
    max_5xx_count           = optional(number, 5)
    max_p99_ms              = optional(number, 500)
    max_low_confidence_rate = optional(number, 0.5)
    max_prediction_drift    = optional(number, 0.2)
    min_requests            = optional(number, 30)
  })
  default = {}
  validation {
    condition = (
      var.canary_thresholds.max_5xx_rate >= 0 && var.canary_thresholds.max_5xx_rate <= 1 &&
      var.canary_thresholds.max_low_confidence_rate >= 0 && var.canary_thresholds.max_low_confidence_rate <= 1 &&
      var.canary_thresholds.max_prediction_drift >= 0 && var.canary_thresholds.max_prediction_drift <= 1 &&
      var.canary_thresholds.max_p99_ms > 0 && var.canary_thresholds.min_requests >= 1 && var.canary_thresholds.max_5xx_count >= 1
    )
    error_message = "Rates and drift are in 0..1; p99 > 0 ms; min_requests and max_5xx_count >= 1."
  }
}

variable "functions_outside_vpc" {
  description = "Functions that only call the public service URL and so run outside the VPC: from private subnets without a NAT gateway the internet-facing ALB is unreachable. Empty (with enable_nat_gateway, or an ALB reachable from the VPC) keeps every function in the private subnets."
  type        = set(string)
  default     = ["smoke_test"]
  validation {
    condition     = alltrue([for f in var.functions_outside_vpc : contains(["smoke_test"], f)])
    error_message = "Only smoke_test talks to nothing but the service URL; the other functions need the VPC endpoints or MLflow."
  }
}

variable "permissions_boundary_arn" {
  description = "Permissions boundary of every role this module creates (the stack's <name>-boundary policy)."
  type        = string
  validation {
    condition     = can(regex("^arn:[a-z-]+:iam::[0-9]{12}:policy/.+$", var.permissions_boundary_arn))
    error_message = "permissions_boundary_arn must be an IAM policy ARN."
  }
}
