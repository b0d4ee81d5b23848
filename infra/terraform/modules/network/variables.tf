variable "name" {
  description = "Name prefix for every resource (e.g. esteira-dev)."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,30}$", var.name))
    error_message = "name must be 3-31 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "cidr_block" {
  description = "IPv4 CIDR of the VPC; split into one public and one private /20-ish subnet per AZ."
  type        = string
  default     = "10.40.0.0/16"
  validation {
    condition     = can(cidrhost(var.cidr_block, 0)) && tonumber(split("/", var.cidr_block)[1]) <= 20
    error_message = "cidr_block must be a valid IPv4 CIDR of size /20 or larger."
  }
}

variable "availability_zones" {
  description = "AZ names to spread subnets over. At least two: an ALB needs subnets in two AZs."
  type        = list(string)
  validation {
    condition     = length(var.availability_zones) >= 2 && length(var.availability_zones) <= 4
    error_message = "Give between 2 and 4 availability zones."
  }
}

variable "enable_nat_gateway" {
  description = "Create NAT gateway(s) so private tasks reach the internet. Off by default: VPC endpoints cover AWS APIs."
  type        = bool
  default     = false
}

variable "single_nat_gateway" {
  description = "With NAT on, one shared NAT gateway (cheaper, single-AZ) instead of one per AZ."
  type        = bool
  default     = true
}

variable "interface_endpoints" {
  description = "AWS services reached through interface VPC endpoints (short names such as ecr.api, logs). S3 and DynamoDB always get free gateway endpoints."
  type        = set(string)
  default     = ["ecr.api", "ecr.dkr", "logs", "secretsmanager", "ecs", "elasticloadbalancing", "states", "monitoring", "sns"]
  validation {
    condition     = alltrue([for s in var.interface_endpoints : can(regex("^[a-z0-9.-]+$", s))])
    error_message = "interface_endpoints are service short names like \"ecr.api\"."
  }
}

variable "required_interface_endpoints" {
  description = "Interface endpoints the stack's private tasks and Lambdas cannot work without when there is no NAT gateway (the root module lists who calls what); a plan fails if interface_endpoints lacks one."
  type        = set(string)
  default     = []
}

variable "endpoint_subnet_count" {
  description = "In how many private subnets (AZs) each interface endpoint gets an ENI; each costs per hour, 1 is fine for dev."
  type        = number
  default     = 2
  validation {
    condition     = var.endpoint_subnet_count >= 1 && var.endpoint_subnet_count <= 4
    error_message = "endpoint_subnet_count must be between 1 and 4."
  }
}

variable "kms_key_arn" {
  description = "KMS key ARN encrypting the VPC flow log group."
  type        = string
}

variable "log_retention_days" {
  description = "Retention of the VPC flow log group, in days."
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
